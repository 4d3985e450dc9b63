// Part 1 of the scale study: one attention layer at initialisation, measured over many samples.
//
// Each sample draws q (d_k), K and V (n keys × d_k) and a downstream direction u (d_k) with i.i.d.
// N(0, 1) components, the seeds' assumption, and takes the loss L = u·(softmax(c·Kq)ᵀV)/sqrt(d_k).
// The gradients come from minitrain's own ops in float64 (matmul, softmax, ...); a zero tensor added to
// the scores is a leaf whose gradient is dL/dscores. Every scale factor sees the same samples, so
// the differences between scales are not sampling noise.
#pragma once

#include "finite_difference.h"
#include "scale_rule.h"

#include <cstdint>
#include <string>
#include <vector>

namespace minitrain::study {

struct Estimate {
  double mean = 0, se = 0;  // the mean over samples ± its standard error (sample std / sqrt(samples))
};
Estimate estimate(const std::vector<double>& per_sample);

// How a per-sample quantity is spread: the mean hides a typical gradient that vanishes while rare ones
// explode, so the study reports the median, the 99th percentile and the share of samples below
// kVanished alongside it.
inline constexpr double kVanished = 1e-6;
struct Spread {
  double median = 0, p99 = 0;
  double vanished = 0;  // share of samples below kVanished, in [0, 1]
};
Spread spread(std::vector<double> per_sample);  // throws std::invalid_argument when empty

// ‖diag(p) − p·pᵀ‖₂, the spectral norm of the softmax Jacobian at weights p (which sum to 1): how much the
// softmax passes a gradient through. 1/n-ish for a flat softmax, ≈ 2·(1 − p_max) when saturated.
double softmax_jacobian_norm(const std::vector<double>& p);

// One sample's finite-difference check: the library's analytic gradients of q, K, V (from the composed
// ops and from the fused scaled_dot_product_attention kernel) against central differences of the
// hand-written float64 loss in finite_difference.h.
struct FiniteDifferenceCheck {
  double error = 0;      // worst relative_error over q, K, V and both kernels
  double runner_up = 0;  // the second-largest attention weight p_(2): 1 − p_max when n = 2
  double loss = 0;
  double rounding_floor = 0;  // the worst (over q, K, V) error rounding alone explains (finite_difference.h)
  // worst_excess over q, K, V and both kernels with atol = kRoundingFactor · numeric_uncertainty and
  // rtol = kFdTolerance: ≤ 1 when every entry agrees up to what rounding of L can hide.
  double excess = 0;
};

// A finite-difference check's verdict. Pass: relative error ≤ kFdTolerance. TooSmallToSee: it fails that,
// but every entry agrees within kRoundingFactor × the rounding noise of the numeric gradient (plus
// kFdTolerance relative), so the gradient is below what float64 differences of L resolve. Wrong: an entry
// is off by more than the rounding noise can explain. A sign-flipped, ×10 or zeroed gradient is Wrong
// whenever some entry of the true gradient is above the noise (dL/dV never vanishes: its largest entries
// are ~ p_max·|u|/sqrt(d_k)), which tests/study/test_fd_verdict.cpp checks at every d_k and scale.
enum class FdVerdict { Pass, TooSmallToSee, Wrong };
inline constexpr double kRoundingFactor = 20;
FdVerdict verdict(const FiniteDifferenceCheck& check);
const char* verdict_name(FdVerdict verdict);  // "pass", "too small to see", "WRONG"

// Judges analytic gradients of one sample against its numeric ones (the fields error, rounding_floor and
// excess; runner_up and loss are left 0). Exposed so that tests can feed deliberately wrong gradients.
FiniteDifferenceCheck judge_gradients(const AttentionSample& sample, double scale, double step,
                                      const SampleGradients& analytic, const SampleGradients& numeric);
// The library's analytic gradients of the sample's loss (composed ops, float64).
SampleGradients library_gradients(const AttentionSample& sample, double scale);

struct CaseResult {
  int64_t d_k = 0, n_keys = 0, samples = 0;
  ScaleRule rule;
  double scale = 0;      // rule.value(d_k)
  Estimate var_qk;       // variance of q·k about its known mean 0 (theory: d_k)
  Estimate var_scores;   // of scale·q·k (theory: scale²·d_k)
  Estimate max_prob;     // the largest attention weight
  Estimate entropy;      // attention entropy / log(n): 0 one-hot, 1 uniform
  Estimate grad_scores;  // ‖dL/dscores‖ (the softmax input, after scaling)
  Estimate grad_q, grad_k, grad_v;  // ‖dL/dq‖, ‖dL/dK‖_F, ‖dL/dV‖_F
  Estimate jacobian;                // softmax_jacobian_norm of each sample's weights
  Spread grad_scores_spread, grad_q_spread, grad_k_spread, grad_v_spread, jacobian_spread;
  std::vector<FiniteDifferenceCheck> fd;  // the first fd_samples samples
};

struct SingleLayerOptions {
  int64_t samples = 2000;
  int64_t fd_samples = 16;  // of those, checked against finite differences (the costly part)
  double fd_step = 1e-6;
  uint64_t seed = 20240611;  // with d_k and n, fixes the samples of a case whatever else is run
};

// Every scale rule on one shared set of samples of (d_k, n_keys). Throws std::invalid_argument for
// d_k < 1, n_keys < 2, samples < 2, fd_samples outside [0, samples], a step <= 0 or no rules.
std::vector<CaseResult> measure_single_layer(int64_t d_k, int64_t n_keys, const std::vector<ScaleRule>& rules,
                                             const SingleLayerOptions& options);

// A finite-difference check passes when its error is at most this, gradcheck's default rtol: healthy
// float64 central differences with step 1e-6 land near 1e-8 here, and a real bug shows up at 1e-2 or more.
inline constexpr double kFdTolerance = 1e-5;

}  // namespace minitrain::study
