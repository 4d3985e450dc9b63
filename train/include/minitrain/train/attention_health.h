// Attention health in a training run: every `interval` steps, each attention layer's softmax statistics
// (entropy / log T, largest weight, logit spread, as the kernel computed them in that step's forward) and
// the gradients its W_q, W_k, W_v received (before clipping), written to metrics.csv as columns
// attn<i>_entropy, attn<i>_max_weight, attn<i>_logit_std, attn<i>_grad_q, attn<i>_grad_k, attn<i>_grad_v, and
// a warning line the first time layers go unhealthy in one of three ways (thresholds in HealthThresholds):
//
//   saturated  entropy / log T below `saturated_entropy`: one key takes nearly all the weight, so the
//              softmax passes almost no gradient to q and k (its Jacobian diag(p) − ppᵀ is nearly 0);
//   vanished   (‖∇W_q‖ + ‖∇W_k‖) / (2‖∇W_v‖) below `vanished_ratio`: q and k get a vanishing share of
//              what W_v gets (saturated or uniform attention);
//   spiking    ‖∇W_q‖ or ‖∇W_k‖ above `spike_factor` times the median of the layer's earlier records
//              (at least `spike_history` of them).
// Records from before `from_iter` (the learning-rate warmup) are not judged.
//
// Each kind is reported once per run (one line naming the layers and the numbers); metrics.csv has the rest.
//
//   train::AttentionHealth health(trainer, model.attention_layers(), 100);  // before trainer.run()
//   trainer.run();
//   health.plot(out_dir);  // attention_health.png from metrics.csv, when gnuplot is installed
//
// It uses the Trainer's on_after_backward and on_step hooks. Between records the layers carry no hook,
// so their forwards do no extra work.
#pragma once

#include <minitrain/train/attention_watch.h>
#include <minitrain/train/metrics.h>
#include <minitrain/train/trainer.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace minitrain::train {

struct HealthThresholds {
  double saturated_entropy = 0.02;
  double vanished_ratio = 1e-4;
  double spike_factor = 100;
  int64_t spike_history = 5;
  // Records before this iteration are neither judged nor remembered: at initialisation attention is
  // nearly uniform and q/k gradients are small by construction (1e-4 to 1e-2 of W_v's in a fresh GPT),
  // and growing from there is not a spike. train_gpt passes its --warmup_iters.
  int64_t from_iter = 0;
};

// Decides which warnings a record raises; kept apart from the Trainer so that it can be tested on numbers.
class HealthJudge {
 public:
  explicit HealthJudge(HealthThresholds thresholds = {}) : thresholds_(thresholds) {}
  // The warning lines the layers' record at `iter` raises (each kind at most once per judge), then
  // remembers the record for the spike rule.
  std::vector<std::string> assess(int64_t iter, const std::vector<LayerHealth>& layers);
  const HealthThresholds& thresholds() const { return thresholds_; }

 private:
  HealthThresholds thresholds_;
  bool warned_saturated_ = false, warned_vanished_ = false, warned_spike_ = false;
  std::vector<std::vector<double>> history_q_, history_k_;  // per layer
};

class AttentionHealth {
 public:
  // Registers metric columns and hooks on `trainer` (call before run(); the hooks point here, so this object
  // must outlive the run). `warn` receives the warning lines (default: spdlog::warn). Throws std::invalid_argument for an
  // interval below 1.
  AttentionHealth(Trainer& trainer, std::vector<std::shared_ptr<nn::MultiHeadAttention>> layers, int64_t interval,
                  HealthThresholds thresholds = {}, std::function<void(const std::string&)> warn = nullptr);
  AttentionHealth(const AttentionHealth&) = delete;
  AttentionHealth& operator=(const AttentionHealth&) = delete;

  // Draws attention_health.png in out_dir from its metrics.csv: entropy / log T and logit spread per layer.
  GnuplotResult plot(const std::string& out_dir) const;
  int64_t records() const { return records_; }

 private:
  Trainer& trainer_;
  AttentionWatch watch_;
  int64_t interval_;
  HealthJudge judge_;
  std::function<void(const std::string&)> warn_;
  int64_t records_ = 0;
};

}  // namespace minitrain::train
