// The numbers a training run of the scale study is judged by: where its gradients vanished (q/k
// gradients small against v's, attention entropy at 0 or 1, loss stalling) and where they exploded
// (grad-norm spikes, loss spikes, NaN).
#pragma once

#include "gpt_runs.h"

#include <cstdint>
#include <string>
#include <vector>

namespace minitrain::study {

// A grad-norm spike: a step whose global grad norm is more than kGradSpikeFactor times the median of
// the kSpikeWindow steps before it. A loss spike: a step whose loss exceeds that window's median loss by
// more than kLossSpikeNats. Batch-to-batch noise of this corpus is about ±0.1 nats, far below it.
inline constexpr int64_t kSpikeWindow = 50;
inline constexpr double kGradSpikeFactor = 4.0;
inline constexpr double kLossSpikeNats = 0.5;
// Attention rows are "saturated" below this normalized entropy and "flat" above kFlatEntropy.
inline constexpr double kSaturatedEntropy = 0.1;
inline constexpr double kFlatEntropy = 0.9;
// The healthy runs of the default study still gain 0.25 nats or more between a quarter and half of
// their steps; a run that gains less than this there has stalled.
inline constexpr double kStallNats = 0.1;

struct RunSummary {
  std::string label;  // "scale 1/sqrt(dk), lr 0.001, seed 1337"
  std::string rule;   // "1/sqrt(dk)"
  double scale = 0, learning_rate = 0;
  uint64_t seed = 0;
  int64_t steps = 0;
  bool diverged = false;
  double final_val = 0, best_val = 0;  // val loss at the last evaluation / the lowest one
  double end_loss = 0;                 // mean training loss over the last 10% of steps
  double loss_at[4] = {0, 0, 0, 0};    // mean training loss of the 10 steps before 25%, 50%, 75%, 100%
  double ms_per_step = 0;
  double grad_norm_median = 0, grad_norm_max = 0;
  int64_t grad_norm_max_iter = 0, grad_spikes = 0, loss_spikes = 0;
  // Per layer: at step 0, and averaged over the last 10% of steps.
  std::vector<double> entropy_init, entropy_end, logit_std_init, logit_std_end;
  std::vector<double> qk_over_v_init, qk_over_v_end;  // (‖∇W_q‖ + ‖∇W_k‖) / (2 ‖∇W_v‖)
  int64_t saturated_layers = 0, flat_layers = 0;     // by entropy_end
  // The loss stalled: it fell by less than kStallNats between 25% and 50% of the steps.
  bool stalled = false;
};

// Throws std::invalid_argument for a run without steps.
RunSummary summarise(const RunResult& run);

double median(std::vector<double> values);  // of a non-empty vector

// The scales at one learning rate ordered by mean final val loss over their seeds, "scale 1 (0.7780 ±
// 0.0040, 3 seeds) ≈ scale 1/dk (...) < ...": neighbours whose means differ by no more than the sum of
// their sample standard deviations are joined by "≈" and named "not distinguishable".
std::string rank_by_final_val(const std::vector<RunSummary>& summaries, double learning_rate);

}  // namespace minitrain::study
