// Part 2 of the scale study: the GPT trained on the bundled corpus with each scale factor at each
// learning rate, recording per step what part 1 predicts: gradients of W_q / W_k against W_v per
// layer, attention entropy per layer, the global gradient norm and the loss.
#pragma once

#include "scale_rule.h"

#include <minitrain/data/text_dataset.h>
#include <minitrain/nn/gpt.h>

#include <functional>
#include <string>
#include <vector>

namespace minitrain::study {

struct GptStudyOptions {
  nn::GPTConfig model;  // vocab_size comes from the dataset, attention_scale from each run's rule
  int64_t batch_size = 12, iters = 800, warmup_iters = 50;
  int64_t eval_interval = 200, eval_iters = 10;  // val loss at 0, every eval_interval and at the end
  std::vector<double> learning_rates{1e-3, 1e-2};
  double min_lr_ratio = 0.1;  // cosine decay to learning_rate · this at the last iteration
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.99, grad_clip = 1.0;  // train_gpt's AdamW recipe
  uint64_t seed = 1337;  // initial weights and batches: every run starts from the same model and data
  int64_t seeds = 3;     // each (scale, learning rate) is trained from seeds seed, seed + 1, ...: the noise
  int jobs = 2;          // runs trained at once, one thread each
};

struct LayerStep {
  double grad_q = 0, grad_k = 0, grad_v = 0;  // ‖dL/dW_q‖, ‖dL/dW_k‖, ‖dL/dW_v‖ (before clipping)
  double entropy = 0, max_prob = 0, logit_std = 0;  // attention_statistics of the step's forward
};

struct StepRecord {
  int64_t iter = 0;
  double loss = 0, lr = 0, grad_norm = 0;  // grad_norm: global, before clipping
  std::vector<LayerStep> layers;
};

// (‖∇W_q‖ + ‖∇W_k‖) / (2‖∇W_v‖): how much gradient the softmax passes to W_q and W_k next to what W_v
// gets. The layer means are NaN for a step without layer records (its loss was not finite).
double qk_over_v(const LayerStep& layer);
double mean_qk_over_v(const StepRecord& step);
double mean_entropy(const StepRecord& step);

struct EvalRecord {
  int64_t iter = 0;
  double val_loss = 0;
};

struct RunResult {
  ScaleRule rule;
  double scale = 0, learning_rate = 0;
  uint64_t seed = 0;  // of the initial weights and the batches
  std::vector<StepRecord> steps;
  std::vector<EvalRecord> evals;
  bool diverged = false;  // the loss or gradient norm stopped being finite; steps ends there
  double seconds = 0;
};

using LogFn = std::function<void(const std::string&)>;

// One run; `log` (if set) gets a line at every evaluation. Throws std::invalid_argument for a
// non-positive batch size, iteration count, interval or learning rate.
RunResult train_gpt_run(const data::TextDataset& dataset, const GptStudyOptions& options, const ScaleRule& rule,
                        double learning_rate, const LogFn& log = nullptr);

// Every rule × learning rate × seed, `jobs` at a time (each single-threaded; results do not depend on
// jobs), in the order rules-major, seeds innermost. `log` receives one line per finished run and progress lines (serialised).
std::vector<RunResult> train_gpt_runs(const data::TextDataset& dataset, const GptStudyOptions& options,
                                      const std::vector<ScaleRule>& rules,
                                      const LogFn& log);

}  // namespace minitrain::study
