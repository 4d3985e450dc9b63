// GPTConfig <-> JSON, for checkpoint metadata (so `sample` can rebuild the model it loads).
#pragma once

#include <minitrain/nn/gpt.h>

#include <string>

namespace minitrain::train {

std::string gpt_config_to_json(const nn::GPTConfig& config);
// Throws std::invalid_argument naming the missing, ill-typed or out-of-range field: sizes must be JSON
// integers in [1, 2^24] (1e30 or 1.7 are refused, never converted), "activation" and "positional" one of
// their accepted names, numbers finite.
nn::GPTConfig gpt_config_from_json(const std::string& json);

// Checks, before any model is built, that `tensors` (nanoGPT / minitrain names, as in GPT::state_dict())
// are what `config` describes: n_layer layers, then every tensor of GPT::parameter_shapes(config) present
// with its shape (lm_head.weight may be absent: it is the tied token embedding). So a file whose config
// claims a huge model is refused instead of allocated: the model built afterwards holds exactly the
// file's parameters. Throws std::invalid_argument naming `source` and the disagreement.
void check_config_matches_tensors(const nn::GPTConfig& config, const nn::StateDict& tensors, const std::string& source);

}  // namespace minitrain::train
