// Checkpoints in the safetensors format: model tensors as "model.<name>", optimizer state as
// "optim.<name>.<slot>", and in the header's __metadata__ the iteration, optimizer step count, random
// generator states ("rng.<name>") and whatever the caller adds (config, tokenizer). Files are written to
// a temporary name and renamed, so a crash never leaves a half-written checkpoint.
#pragma once

#include <minitrain/core/random.h>
#include <minitrain/nn/module.h>
#include <minitrain/train/optimizer.h>

#include <map>
#include <string>

namespace minitrain::train {

struct CheckpointContents {
  int64_t iter = 0;
  nn::StateDict model;
  std::map<std::string, Tensor> optimizer;
  int64_t optimizer_steps = 0;
  std::map<std::string, Generator::State> generators;
  std::map<std::string, std::string> metadata;  // the caller's entries
};

void save_checkpoint(const std::string& path, int64_t iter, const nn::Module& model, const Optimizer* optimizer,
                     const std::map<std::string, const Generator*>& generators,
                     const std::map<std::string, std::string>& metadata);

// Reads and validates a checkpoint; errors name the file and what is wrong.
CheckpointContents load_checkpoint(const std::string& path);

// Restores model, optimizer and generators from loaded contents (strict: every tensor must match).
void restore_checkpoint(const CheckpointContents& contents, nn::Module& model, Optimizer* optimizer,
                        const std::map<std::string, Generator*>& generators);

}  // namespace minitrain::train
