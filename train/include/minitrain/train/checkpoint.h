// Checkpoints in the safetensors format: model tensors as "model.<name>", optimizer state as
// "optim.<name>.<slot>", and in the header's __metadata__ the iteration, optimizer step count, random
// generator states ("rng.<name>") and whatever the caller adds (config, tokenizer). Files are written to
// a temporary name and renamed, so a crash never leaves a half-written checkpoint.
#pragma once

#include <minitrain/core/random.h>
#include <minitrain/core/safetensors.h>
#include <minitrain/nn/module.h>
#include <minitrain/train/optimizer.h>

#include <map>
#include <string>

namespace minitrain::train {

struct CheckpointContents {
  std::string path;  // where it was read from, for messages
  int64_t iter = 0;
  nn::StateDict model;
  std::map<std::string, Tensor> optimizer;
  int64_t optimizer_steps = 0;
  std::map<std::string, Generator::State> generators;
  std::map<std::string, std::string> metadata;  // the caller's entries

  // metadata.at(key), or std::runtime_error "<path>: the checkpoint has no '<key>' in its metadata".
  const std::string& metadata_value(const std::string& key) const;
};

void save_checkpoint(const std::string& path, int64_t iter, const nn::Module& model, const Optimizer* optimizer,
                     const std::map<std::string, const Generator*>& generators,
                     const std::map<std::string, std::string>& metadata);

// Reads and validates a checkpoint; errors (std::runtime_error) name the file and what is wrong. The file
// is hostile until proven otherwise: besides the safetensors checks, "minitrain.format" must be 1, "iter"
// and "optimizer.steps" (required with optimizer tensors) non-negative integers, every generator state 64
// hex digits and not all zero, every tensor finite. Nothing is allocated beyond the file's own tensors.
CheckpointContents load_checkpoint(const std::string& path);
// The same checks on a file already parsed (e.g. by parse_safetensors); `path` names it in messages.
CheckpointContents checkpoint_from_safetensors(SafeTensors file, const std::string& path);

// Throws std::runtime_error "<source>: tensor '<name>' holds a non-finite value (nan) at element <i>" for
// the first NaN or infinity.
void check_finite_tensors(const std::map<std::string, Tensor>& tensors, const std::string& source);

// Restores model, optimizer and generators from loaded contents (strict: every tensor must match).
void restore_checkpoint(const CheckpointContents& contents, nn::Module& model, Optimizer* optimizer,
                        const std::map<std::string, Generator*>& generators);

}  // namespace minitrain::train
