// Probes for what attention does: its weights and a summary of how sharp or flat they are.
//
// They answer "is my softmax saturated or uniform?" for any model, the measurement behind the
// attention-scale study (docs/scale_study/REPORT.md). MultiHeadAttention can record them on every
// forward (record_statistics); on your own q and k, call them directly:
//
//   Tensor w = attention_probabilities(q, k, scale, /*causal=*/true);   // (..., Tq, Tk)
//   AttentionStatistics s = attention_statistics(q, k, scale, true);
//   // s.normalized_entropy near 0: one key takes all the weight (saturated, gradients vanish through the
//   // softmax); near 1: uniform weights (attention has lost focus).
#pragma once

#include <minitrain/core/tensor.h>

#include <cstdint>

namespace minitrain::nn {

// softmax(q·kᵀ·scale), with future keys masked when causal, exactly as attention computes it.
// q (..., Tq, D), k (..., Tk, D) -> (..., Tq, Tk). Differentiable (composed ops); wrap it in a
// NoGradGuard when you only want to look. Query i sees keys j <= i + (Tk - Tq), as with a KV cache.
Tensor attention_probabilities(const Tensor& q, const Tensor& k, double scale, bool causal);

// Means over every attention row (all batch and head dims) of the weights attention would use.
// A row that sees only one key (the first query of a causal sequence) carries no information about
// sharpness (its weight is 1 whatever the scale), so it is left out of every mean.
struct AttentionStatistics {
  double entropy = 0;             // −Σ p log p, nats (0 log 0 = 0)
  double normalized_entropy = 0;  // entropy / log(visible keys): 0 one-hot, 1 uniform
  double max_probability = 0;     // the largest weight of the row
  double logit_std = 0;           // standard deviation of the scaled scores q·k·scale over visible keys
  int64_t rows = 0;               // rows averaged (0: all statistics are NaN)
};

// Computed in float64 without a graph (under NoGradGuard), from q and k as attention_probabilities
// takes them. Costs one q·kᵀ and one softmax: call it when you want the numbers, not on every step.
AttentionStatistics attention_statistics(const Tensor& q, const Tensor& k, double scale, bool causal);

}  // namespace minitrain::nn
