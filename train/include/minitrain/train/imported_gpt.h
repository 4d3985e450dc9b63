// A GPT read from another framework's files (nanoGPT's state dict, a Hugging Face directory), with the
// metadata that came with its weights.
#pragma once

#include <minitrain/nn/gpt.h>

#include <map>
#include <memory>
#include <string>

namespace minitrain::train {

struct ImportedGPT {
  std::unique_ptr<nn::GPT> model;
  std::map<std::string, std::string> metadata;  // the weight file's, e.g. "tokenizer"
};

}  // namespace minitrain::train
