// The training loop: LR schedule, gradient accumulation, clipping, AdamW (or the optimizer the options
// make), periodic evaluation,
// atomic checkpoints, resume, NaN guard, logging (spdlog), progress display, metrics CSV and plot.
#pragma once

#include <minitrain/core/random.h>
#include <minitrain/nn/module.h>
#include <minitrain/train/distributed.h>
#include <minitrain/train/metrics.h>
#include <minitrain/train/optimizer.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace minitrain::train {

// Hyperparameters, named as nanoGPT's train.py.
struct TrainOptions {
  int64_t max_iters = 2000, eval_interval = 250, eval_iters = 20, log_interval = 10;
  int64_t gradient_accumulation_steps = 1;
  double learning_rate = 1e-3, min_lr = 1e-4;
  int64_t warmup_iters = 100, lr_decay_iters = 2000;
  bool decay_lr = true;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.99, grad_clip = 1.0;
  // Builds the optimizer from the model's named parameters, e.g. a MuonWithAdamW over split_for_muon's two
  // halves. Empty: AdamW with learning_rate, beta1, beta2 and weight_decay. The schedule sets the lrs with
  // Optimizer::scale_lr(lr, learning_rate): a group made with learning_rate follows the schedule exactly,
  // one made with another lr (Muon's 0.02 beside AdamW's 1e-3) keeps its ratio to it, as torch's LambdaLR.
  std::function<std::unique_ptr<Optimizer>(const NamedParameters& params)> make_optimizer;
  // Where checkpoints, metrics.csv and loss.png go. Empty: the run writes nothing (a run embedded in
  // another program, which keeps what it needs through the hooks); resume then has nothing to read.
  std::string out_dir = "out";
  bool resume = false;
  // A fresh run (resume false) refuses to start when out_dir already holds a checkpoint, unless this is
  // set: replacing a long run's checkpoint by iteration 5 of a new one must be asked for.
  bool overwrite = false;
  uint64_t seed = 1337;
  ReferenceLoss reference_loss;  // e.g. the corpus entropy: its gap shown beside the val loss, and plotted
  bool progress = true;          // a live progress line when stdout is a terminal
  bool log = true;               // false: no log lines either (the caller reports through the hooks)
  // Data parallelism (distributed.h): with a communicator of N > 1 ranks, every rank runs the Trainer;
  // each batch drawn is the global batch, of which each rank trains on its B/N rows (shard_rows);
  // gradients and eval losses are averaged across ranks; rank 0 alone logs and writes checkpoints and
  // metrics. nullptr (or one rank): this process alone, exactly as before.
  Communicator* communicator = nullptr;

  // Throws std::invalid_argument naming the first option outside its domain (a zero interval, a NaN
  // learning rate, a beta outside [0, 1), ...). The Trainer calls it before anything else.
  void validate() const;
};

struct TokenBatch {
  Tensor x, y;  // (B, T) int64 inputs and next-token targets
};
// Draws a batch of the train (true) or val (false) split with the given generator. Under data
// parallelism it is the global batch: every rank draws the same rows from the same stream and keeps its
// share, so N ranks see exactly the data of one process and a checkpoint resumes on any rank count.
using BatchSource = std::function<TokenBatch(bool train_split, Generator& gen)>;
using LossFn = std::function<Tensor(const Tensor& x, const Tensor& y)>;

struct TrainResult {
  int64_t iters = 0;
  double train_loss = NAN, val_loss = NAN;  // last evaluation
  double seconds = 0;
  std::string checkpoint;
};

// Thrown when the loss, the gradient norm, an evaluation or the weights stop being finite (on every rank
// at once, naming the rank whose loss or gradients were not finite). Nothing is saved from non-finite
// weights or after a non-finite evaluation: the message names the checkpoint actually kept (file and
// iteration) or says that this run wrote none.
struct TrainingDiverged : std::runtime_error {
  TrainingDiverged(int64_t iter_, const std::string& what) : std::runtime_error(what), iter(iter_) {}
  int64_t iter;  // the iteration that stopped
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

  // Hooks. Each call adds a callback (several may listen: a probe, a logger, a benchmark's timer); they
  // run on every rank, in the order added.
  //
  // After backward (gradients accumulated and, with several ranks, averaged), before clipping and the
  // optimizer step, with the iteration and the loss (mean over ranks): the gradients are those backward
  // produced. Not called for a step whose loss is not finite.
  void on_after_backward(std::function<void(int64_t iter, double loss)> callback) {
    on_after_backward_.push_back(std::move(callback));
  }
  // After each evaluation (before a non-finite one stops the run), with the losses.
  void on_eval(std::function<void(int64_t iter, double train_loss, double val_loss)> callback) {
    on_eval_.push_back(std::move(callback));
  }
  // After each optimizer step, with the iteration and the loss (mean over ranks).
  void on_step(std::function<void(int64_t iter, double loss)> callback) { on_step_.push_back(std::move(callback)); }
  // Extra metrics.csv columns (set before run()), filled by record_metrics, e.g. from a hook. A resumed run
  // must declare the same columns as the run it continues (MetricsCsv refuses another header).
  void add_metric_columns(const std::vector<std::string>& names);
  // Appends a metrics.csv row at `iter` with the extra columns' values (in add_metric_columns order); the
  // standard columns stay empty. Rank 0 writes it; elsewhere, and without an out_dir, it does nothing.
  void record_metrics(int64_t iter, const std::vector<double>& values);
  // Gradient all-reduce statistics; null for a single process.
  const GradientAverager* gradient_averager() const { return averager_.get(); }

  std::string checkpoint_path() const;
  Optimizer& optimizer() { return *optimizer_; }
  Generator& data_generator() { return data_gen_; }

 private:
  void save(int64_t iter);
  void prepare_out_dir();             // refuses to replace a checkpoint, removes dead writers' temporaries
  std::string kept_checkpoint() const;  // "the last good checkpoint, iter N, is kept at PATH" or "none"
  void check_finite_weights(int64_t iter, bool live);
  TokenBatch draw(bool train_split, Generator& gen);  // this rank's rows of the next global batch
  [[noreturn]] void diverged(int64_t iter, const std::vector<double>& loss_and_finite, double norm, bool live);
  nn::Module& model_;
  LossFn loss_fn_;
  BatchSource batches_;
  TrainOptions options_;
  std::map<std::string, Generator*> generators_;
  std::map<std::string, std::string> metadata_;
  std::unique_ptr<Optimizer> optimizer_;
  Generator data_gen_;
  SingleProcessCommunicator single_;  // used when options_.communicator is null
  Communicator* comm_;                // never null
  std::unique_ptr<GradientAverager> averager_;  // only with more than one rank
  std::vector<std::function<void(int64_t, double)>> on_after_backward_, on_step_;
  std::vector<std::function<void(int64_t, double, double)>> on_eval_;
  std::vector<std::string> metric_columns_;
  std::unique_ptr<MetricsCsv> metrics_;  // rank 0 with an out_dir, during run()
  int64_t last_saved_iter_ = -1;  // the iteration of the checkpoint on disk from this run (or resumed), -1: none
};

}  // namespace minitrain::train
