// Probes for what attention does: its weights and a summary of how sharp or flat they are.
//
// They answer "is my softmax saturated or uniform?" for any model, the measurement behind the
// attention-scale study (docs/scale_study/REPORT.md). To watch a model's attention layers, register a
// forward hook on them: MultiHeadAttention then reports the statistics its kernel computed from the
// weights it really used (MultiHeadAttention::observed_statistics()). On your own q and k, call these:
//
//   Tensor w = attention_probabilities(q, k, scale, /*causal=*/true);   // (..., Tq, Tk)
//   AttentionStatistics s = attention_statistics(q, k, scale, true);
//   // s.normalized_entropy near 0: one key takes all the weight (saturated, gradients vanish through the
//   // softmax); near 1: uniform weights (attention has lost focus).
#pragma once

#include <minitrain/core/attention_statistics.h>
#include <minitrain/core/tensor.h>

namespace minitrain::nn {

using minitrain::AttentionStatistics;

// softmax(q·kᵀ·scale), with future keys masked when causal, exactly as attention computes it.
// q (..., Tq, D), k (..., Tk, D) -> (..., Tq, Tk). Differentiable (composed ops); wrap it in a
// NoGradGuard when you only want to look. Query i sees keys j <= i + (Tk - Tq), as with a KV cache.
Tensor attention_probabilities(const Tensor& q, const Tensor& k, double scale, bool causal);

// The statistics (core/attention_statistics.h) of the weights attention_probabilities gives, computed in
// float64 without a graph so that tiny weights keep their logs. Costs one q·kᵀ and one softmax: call it
// when you want the numbers, not on every step.
AttentionStatistics attention_statistics(const Tensor& q, const Tensor& k, double scale, bool causal);

}  // namespace minitrain::nn
