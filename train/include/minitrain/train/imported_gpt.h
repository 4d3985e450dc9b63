// A GPT read from another framework's files (nanoGPT's state dict, a Hugging Face directory), with the
// metadata that came with its weights.
#pragma once

#include <minitrain/nn/gpt.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

namespace minitrain::train {

struct ImportedGPT {
  std::unique_ptr<nn::GPT> model;
  std::map<std::string, std::string> metadata;  // the weight file's, e.g. "tokenizer"
};

// How an imported model is to run, where the files do not decide (they describe the weights, not the
// training): applied to the config before the model is built.
struct ImportSettings {
  std::optional<double> dropout;  // instead of the file's rate(s), e.g. for fine-tuning; in [0, 1)
  std::optional<uint64_t> seed;   // GPTConfig::seed: the dropout stream (the weights come from the file)
};

}  // namespace minitrain::train
