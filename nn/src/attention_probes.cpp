#include <minitrain/nn/attention_probes.h>

#include <minitrain/core/ops.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace minitrain::nn {

namespace {

void check_qk(const Tensor& q, const Tensor& k, double scale, const char* op) {
  if (!q.defined() || !k.defined()) throw std::invalid_argument(std::string(op) + ": q or k is undefined");
  if (q.dim() < 2 || k.dim() < 2 || q.size(-1) != k.size(-1))
    throw std::invalid_argument(std::string(op) + ": q " + shape_str(q.shape()) + " and k " + shape_str(k.shape()) +
                                " are not (..., Tq, D) and (..., Tk, D)");
  if (!std::isfinite(scale)) throw std::invalid_argument(std::string(op) + ": scale must be finite");
}

// scores (..., Tq, Tk) with future keys at −inf when causal (the rule attention uses).
Tensor causal_masked(const Tensor& scores, bool causal) {
  if (!causal) return scores;
  const Tensor mask = causal_mask(scores.size(-2), scores.size(-1), scores.dtype());
  return masked_fill(scores, mask, -std::numeric_limits<double>::infinity());
}

}  // namespace

Tensor attention_probabilities(const Tensor& q, const Tensor& k, double scale, bool causal) {
  check_qk(q, k, scale, "attention_probabilities");
  return softmax(causal_masked(mul(matmul(q, k.transpose(-2, -1)), scale), causal), -1);  // (..., Tq, Tk)
}

AttentionStatistics attention_statistics(const Tensor& q, const Tensor& k, double scale, bool causal) {
  check_qk(q, k, scale, "attention_statistics");
  NoGradGuard no_grad;
  const Tensor scores =  // (..., Tq, Tk), float64 so that tiny weights keep their logs
      mul(matmul(q.detach().to(DType::Float64), k.detach().to(DType::Float64).transpose(-2, -1)), scale);
  const Tensor masked = causal_masked(scores, causal);
  return attention_statistics_of(masked, softmax(masked, -1));
}

}  // namespace minitrain::nn
