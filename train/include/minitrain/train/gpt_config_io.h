// GPTConfig <-> JSON, for checkpoint metadata (so `sample` can rebuild the model it loads).
#pragma once

#include <minitrain/nn/gpt.h>

#include <string>

namespace minitrain::train {

std::string gpt_config_to_json(const nn::GPTConfig& config);
// Throws std::invalid_argument naming the missing or ill-typed field.
nn::GPTConfig gpt_config_from_json(const std::string& json);

}  // namespace minitrain::train
