// The training loop: LR schedule, gradient accumulation, clipping, AdamW, periodic evaluation,
// atomic checkpoints, resume, NaN guard, logging (spdlog), progress display, metrics CSV and plot.
#pragma once

#include <minitrain/core/random.h>
#include <minitrain/nn/module.h>
#include <minitrain/train/optimizer.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace minitrain::train {

// Hyperparameters, named as nanoGPT's train.py.
struct TrainOptions {
  int64_t max_iters = 2000, eval_interval = 250, eval_iters = 20, log_interval = 10;
  int64_t gradient_accumulation_steps = 1;
  double learning_rate = 1e-3, min_lr = 1e-4;
  int64_t warmup_iters = 100, lr_decay_iters = 2000;
  bool decay_lr = true;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.99, grad_clip = 1.0;
  std::string out_dir = "out";
  bool resume = false;
  uint64_t seed = 1337;
  double entropy_floor = NAN;  // shown beside the val loss when known
  bool progress = true;        // a live progress line when stdout is a terminal
};

struct TokenBatch {
  Indices x, y;  // (B, T) inputs and next-token targets
};
// Draws a batch of the train (true) or val (false) split with the given generator.
using BatchSource = std::function<TokenBatch(bool train_split, Generator& gen)>;
using LossFn = std::function<Tensor(const Indices& x, const Indices& y)>;

struct TrainResult {
  int64_t iters = 0;
  double train_loss = NAN, val_loss = NAN;  // last evaluation
  double seconds = 0;
  std::string checkpoint;
};

// Thrown when the loss or gradient norm stops being finite; the last good checkpoint is kept.
struct TrainingDiverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Trainer {
 public:
  // `generators` are extra random streams saved with checkpoints (e.g. the model's dropout generator);
  // `metadata` is stored in every checkpoint (model config, tokenizer).
  Trainer(nn::Module& model, LossFn loss_fn, BatchSource batches, TrainOptions options,
          std::map<std::string, Generator*> generators = {}, std::map<std::string, std::string> metadata = {});

  TrainResult run();  // from scratch, or from out_dir/ckpt.safetensors with options.resume

  // Mean loss over eval_iters batches of each split, in eval mode without a graph.
  std::pair<double, double> estimate_loss();
  // Forward and backward over the micro-batches, each loss divided by their count, so the
  // accumulated gradient is that of one batch as large as all of them. Returns the mean loss.
  double accumulate_gradients(const std::vector<TokenBatch>& micro_batches);

  std::string checkpoint_path() const;
  Optimizer& optimizer() { return *optimizer_; }
  Generator& data_generator() { return data_gen_; }

 private:
  void save(int64_t iter);
  nn::Module& model_;
  LossFn loss_fn_;
  BatchSource batches_;
  TrainOptions options_;
  std::map<std::string, Generator*> generators_;
  std::map<std::string, std::string> metadata_;
  std::unique_ptr<Optimizer> optimizer_;
  Generator data_gen_;
};

}  // namespace minitrain::train
