// The single-layer attention loss written out by hand in float64, and its central finite differences:
// an implementation independent of minitrain's ops, to check the library's analytic gradients against.
//
//   scores s_j = scale · q·k_j,  p = softmax(s),  L = u · (Σ_j p_j v_j) / sqrt(d)
//
// with q, u of size d and keys k_j / values v_j the n rows of K, V (row-major (n, d)).
#pragma once

#include <cstdint>
#include <vector>

namespace minitrain::study {

struct AttentionSample {
  int64_t d = 0, n = 0;
  std::vector<double> q, K, V, u;  // (d), (n, d), (n, d), (d)
};

// L as defined above, max-subtracted softmax, plain loops (no BLAS, no threads: deterministic).
double sample_loss(const AttentionSample& sample, double scale);
// The sorted-descending softmax weights p of the sample, for "how saturated is it".
std::vector<double> sample_probabilities(const AttentionSample& sample, double scale);

struct SampleGradients {
  std::vector<double> q, K, V;  // dL/dq (d), dL/dK (n, d), dL/dV (n, d)
};
// (L(x + h·e_i) − L(x − h·e_i)) / 2h for every entry of q, K and V. Each evaluation recomputes, from the
// perturbed input, every score and value projection it touches, with the same loops as sample_loss.
SampleGradients finite_difference_gradients(const AttentionSample& sample, double scale, double step);

// The absolute uncertainty float64 rounding alone gives every entry of these central differences: L is a
// sum of terms p_j·w_j of total size T = Σ_j p_j |w_j|, each evaluation is off by about ε·T, and the
// difference of two is divided by 2·step, so a numeric gradient entry is uncertain by ~ε·T / (2·step).
// A gradient near or below that cannot be checked by finite differences.
double numeric_uncertainty(const AttentionSample& sample, double scale, double step);
// The same as a relative error, for a gradient whose largest entry is `largest_gradient`.
double rounding_floor(const AttentionSample& sample, double scale, double step, double largest_gradient);

// max_i |a_i − n_i| / max(max_i |a_i|, max_i |n_i|): relative to the gradient's own size, so a tiny
// but nonzero analytic gradient that the finite difference sees as exactly 0 scores 1 (100% wrong).
// 0 when both are all zeros.
double relative_error(const std::vector<double>& analytic, const std::vector<double>& numeric);

// max_i |a_i − n_i| / (atol + rtol·|n_i|): at most 1 when every entry agrees within atol + rtol·|n_i|.
// Unlike relative_error this is unbounded, so with atol set from numeric_uncertainty it separates "too
// small for finite differences to see" (≤ 1) from a sign-flipped, scaled or zeroed gradient (≫ 1)
// wherever the true gradient is larger than the rounding noise.
double worst_excess(const std::vector<double>& analytic, const std::vector<double>& numeric, double atol, double rtol);

}  // namespace minitrain::study
