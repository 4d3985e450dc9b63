#include <minitrain/nn/attention_probes.h>

#include <minitrain/core/ops.h>

#include <algorithm>
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

// scores (..., Tq, Tk) -> softmax weights, future keys at −inf when causal (the rule attention uses).
Tensor masked_softmax(const Tensor& scores, bool causal) {
  if (!causal) return softmax(scores, -1);
  const Tensor mask = causal_mask(scores.size(-2), scores.size(-1), scores.dtype());
  return softmax(masked_fill(scores, mask, -std::numeric_limits<double>::infinity()), -1);
}

}  // namespace

Tensor attention_probabilities(const Tensor& q, const Tensor& k, double scale, bool causal) {
  check_qk(q, k, scale, "attention_probabilities");
  return masked_softmax(mul(matmul(q, k.transpose(-2, -1)), scale), causal);  // (..., Tq, Tk)
}

AttentionStatistics attention_statistics(const Tensor& q, const Tensor& k, double scale, bool causal) {
  check_qk(q, k, scale, "attention_statistics");
  NoGradGuard no_grad;
  const Tensor scores =  // (..., Tq, Tk), float64 so that tiny weights keep their logs
      mul(matmul(q.detach().to(DType::Float64), k.detach().to(DType::Float64).transpose(-2, -1)), scale).contiguous();
  const Tensor probs = masked_softmax(scores, causal).contiguous();
  const int64_t Tq = scores.size(-2), Tk = scores.size(-1), n_rows = scores.numel() / std::max<int64_t>(Tk, 1);
  const double* s = scores.data<double>();
  const double* p = probs.data<double>();

  AttentionStatistics out;
  double entropy = 0, normalized = 0, max_p = 0, variance = 0;
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t i = r % Tq;  // query position: it sees keys [0, visible)
    const int64_t visible = causal ? std::clamp<int64_t>(i + 1 + Tk - Tq, 0, Tk) : Tk;
    if (visible < 2) continue;
    const double* sr = s + r * Tk;
    const double* pr = p + r * Tk;
    double h = 0, mx = 0, mean = 0, sq = 0;
    for (int64_t j = 0; j < visible; ++j) {
      if (pr[j] > 0) h -= pr[j] * std::log(pr[j]);
      mx = std::max(mx, pr[j]);
      mean += sr[j];
    }
    mean /= static_cast<double>(visible);
    for (int64_t j = 0; j < visible; ++j) sq += (sr[j] - mean) * (sr[j] - mean);
    entropy += h;
    normalized += h / std::log(static_cast<double>(visible));
    max_p += mx;
    variance += sq / static_cast<double>(visible);  // within the row: softmax ignores the row's mean
    ++out.rows;
  }
  if (out.rows == 0) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    out.entropy = out.normalized_entropy = out.max_probability = out.logit_std = nan;
    return out;
  }
  const double n = static_cast<double>(out.rows);
  out.entropy = entropy / n;
  out.normalized_entropy = normalized / n;
  out.max_probability = max_p / n;
  out.logit_std = std::sqrt(variance / n);
  return out;
}

}  // namespace minitrain::nn
