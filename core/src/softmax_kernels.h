// Internal: softmax over one lane of `n` elements `s` apart, and its backward, shared by the softmax
// ops and the fused attention kernel. A fully masked lane (all -inf) gives zeros (log: -inf) and a zero
// gradient. Output and input may be the same buffer.
#pragma once

#include "fast_math.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace minitrain {

// The largest element of a lane (-inf for an empty or fully masked one). A contiguous lane keeps 16
// running maxima, updated elementwise (vector max instructions; the last partial chunk with masked
// loads), then halved in a tree: GCC left `omp simd reduction(max)` over floats as one scalar chain of
// dependent maxima, 40% of attention's softmax time on rows of 64. The maximum does not depend on the
// order it is taken in.
template <class T>
T lane_max(const T* x, int64_t n, int64_t s) {
  constexpr T kLowest = -std::numeric_limits<T>::infinity();
  if (s != 1) {
    T mx = kLowest;
    for (int64_t i = 0; i < n; ++i) mx = x[i * s] > mx ? x[i * s] : mx;
    return mx;
  }
  constexpr int64_t kLanes = 16;
  T running[kLanes];
  std::fill(running, running + kLanes, kLowest);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
#pragma omp simd
    for (int64_t j = 0; j < kLanes; ++j) running[j] = x[i + j] > running[j] ? x[i + j] : running[j];
  if (i < n) {
    const int64_t rest = n - i;
#pragma omp simd
    for (int64_t j = 0; j < kLanes; ++j) {
      const T v = j < rest ? x[i + j] : kLowest;
      running[j] = v > running[j] ? v : running[j];
    }
  }
  for (int64_t half = kLanes / 2; half >= 1; half /= 2)
#pragma omp simd
    for (int64_t j = 0; j < half; ++j) running[j] = running[j + half] > running[j] ? running[j + half] : running[j];
  return running[0];
}

// Σ exp(x − shift) over a lane: the exps in T (vectorised for float32), the sum in double, in a fixed
// order for a given build (`omp simd`).
template <class T>
double lane_sum_exp(const T* x, int64_t n, int64_t s, T shift) {
  double total = 0;
#pragma omp simd reduction(+ : total)
  for (int64_t i = 0; i < n; ++i) total += fast::exp(x[i * s] - shift);
  return total;
}

template <class T>
void softmax_lane(const T* x, T* y, int64_t n, int64_t s, bool log_output) {
  const T mx = lane_max(x, n, s);
  if (mx == -std::numeric_limits<T>::infinity()) {  // fully masked lane
    for (int64_t i = 0; i < n; ++i) y[i * s] = log_output ? mx : T(0);
    return;
  }
  // One exp per element, sums in double. x and y may be the same buffer.
  if (log_output) {
    const T log_total = static_cast<T>(std::log(lane_sum_exp(x, n, s, mx)));
    for (int64_t i = 0; i < n; ++i) y[i * s] = x[i * s] - mx - log_total;
  } else {
    for (int64_t i = 0; i < n; ++i) y[i * s] = fast::exp(x[i * s] - mx);
    double total = 0;
#pragma omp simd reduction(+ : total)
    for (int64_t i = 0; i < n; ++i) total += y[i * s];
    const T inv = static_cast<T>(1.0 / total);
    for (int64_t i = 0; i < n; ++i) y[i * s] *= inv;
  }
}

// dx = y ⊙ (g − Σ g⊙y)              for softmax
// dx = g − exp(y) ⊙ Σ g              for log_softmax
template <class T>
void softmax_lane_backward(const T* g, const T* y, T* dx, int64_t n, int64_t s, bool log_output) {
  double dot = 0;
  if (log_output) {
    if (n > 0 && y[0] == -std::numeric_limits<T>::infinity()) {
      bool all_masked = true;
      for (int64_t i = 0; i < n && all_masked; ++i) all_masked = y[i * s] == -std::numeric_limits<T>::infinity();
      if (all_masked) {
        for (int64_t i = 0; i < n; ++i) dx[i * s] = 0;
        return;
      }
    }
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < n; ++i) dot += g[i * s];
    const T sum_g = static_cast<T>(dot);
    for (int64_t i = 0; i < n; ++i) dx[i * s] = g[i * s] - fast::exp(y[i * s]) * sum_g;
  } else {
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(g[i * s]) * y[i * s];
    for (int64_t i = 0; i < n; ++i) dx[i * s] = static_cast<T>(y[i * s] * (g[i * s] - dot));
  }
}

}  // namespace minitrain
