// How sharp or flat attention's softmax rows are, read from the scores and weights attention actually
// computed. The attention ops fill it when given somewhere to put it (the `observed` argument of
// scaled_dot_product_attention and multi_head_attention), so a probe reports what the forward pass did,
// with the scale and masks it really applied, not a recomputation from what was asked for.
//
//   AttentionStatistics s;
//   Tensor y = scaled_dot_product_attention(q, k, v, scale, /*causal=*/true, 0.0, false, nullptr, &s);
//   // s.normalized_entropy near 0: one key takes all the weight (saturated, gradients vanish through the
//   // softmax); near 1: uniform weights (attention has lost focus).
#pragma once

#include <minitrain/core/tensor.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace minitrain {

// Means over the attention rows that see at least two keys (a row with one key has weight 1 whatever the
// scale, so it says nothing about sharpness). A key takes part in a row unless its score is −inf (masked
// by causality or by an attention mask).
struct AttentionStatistics {
  double entropy = 0;             // −Σ p log p, nats (0 log 0 = 0)
  double normalized_entropy = 0;  // entropy / log(keys taking part): 0 one-hot, 1 uniform
  double max_probability = 0;     // the largest weight of the row
  double logit_std = 0;           // standard deviation of the row's scores as softmax saw them (scaled, masks added)
  int64_t rows = 0;               // rows averaged (0: all statistics are NaN)
};

// Sums of the per-row statistics. Kernels keep one per slice and add them up in slice order, so the
// result does not depend on the thread count.
class AttentionStatisticsSum {
 public:
  // One row of n keys: `scores` as softmax saw them (−inf = the key takes no part), `weights` its softmax.
  template <class T>
  void add_row(const T* scores, const T* weights, int64_t n) {
    int64_t keys = 0;
    double mean = 0, entropy = 0, max_weight = 0;
    for (int64_t j = 0; j < n; ++j) {
      if (std::isinf(scores[j]) && scores[j] < 0) continue;
      ++keys;
      mean += static_cast<double>(scores[j]);
      const double p = static_cast<double>(weights[j]);
      if (p > 0) entropy -= p * std::log(p);
      max_weight = std::max(max_weight, p);
    }
    if (keys < 2) return;
    mean /= static_cast<double>(keys);
    double squares = 0;  // within the row: softmax ignores the row's mean
    for (int64_t j = 0; j < n; ++j)
      if (!(std::isinf(scores[j]) && scores[j] < 0)) squares += (scores[j] - mean) * (scores[j] - mean);
    entropy_ += entropy;
    normalized_ += entropy / std::log(static_cast<double>(keys));
    max_ += max_weight;
    variance_ += squares / static_cast<double>(keys);
    ++rows_;
  }
  void add(const AttentionStatisticsSum& other);
  AttentionStatistics mean() const;  // NaN statistics when no row was added

 private:
  double entropy_ = 0, normalized_ = 0, max_ = 0, variance_ = 0;
  int64_t rows_ = 0;
};

// The statistics of scores (..., Tq, Tk) as softmax saw them and their weights (same shape), for attention
// written from composed ops. Reads the values only (no graph).
AttentionStatistics attention_statistics_of(const Tensor& scores, const Tensor& weights);

}  // namespace minitrain
