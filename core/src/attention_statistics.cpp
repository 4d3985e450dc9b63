#include <minitrain/core/attention_statistics.h>

#include <minitrain/core/ops.h>

#include "tensor_impl.h"

#include <limits>

namespace minitrain {

void AttentionStatisticsSum::add(const AttentionStatisticsSum& other) {
  entropy_ += other.entropy_;
  normalized_ += other.normalized_;
  max_ += other.max_;
  variance_ += other.variance_;
  rows_ += other.rows_;
}

AttentionStatistics AttentionStatisticsSum::mean() const {
  AttentionStatistics out;
  out.rows = rows_;
  if (rows_ == 0) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    out.entropy = out.normalized_entropy = out.max_probability = out.logit_std = nan;
    return out;
  }
  const double n = static_cast<double>(rows_);
  out.entropy = entropy_ / n;
  out.normalized_entropy = normalized_ / n;
  out.max_probability = max_ / n;
  out.logit_std = std::sqrt(variance_ / n);
  return out;
}

AttentionStatistics attention_statistics_of(const Tensor& scores, const Tensor& weights) {
  const char* op = "attention_statistics_of";
  check_defined(scores, op, "scores");
  check_defined(weights, op, "weights");
  check_floating(scores, op, "scores");
  check_floating(weights, op, "weights");
  if (scores.dim() < 1 || scores.shape() != weights.shape())
    throw_arg(op, "scores " + shape_str(scores.shape()) + " and weights " + shape_str(weights.shape()) +
                      " must have one shape (..., Tq, Tk)");
  const Tensor s = scores.detach().to(DType::Float64).contiguous();
  const Tensor w = weights.detach().to(DType::Float64).contiguous();
  const int64_t n = scores.size(-1), rows = n > 0 ? scores.numel() / n : 0;
  AttentionStatisticsSum sum;
  for (int64_t r = 0; r < rows; ++r) sum.add_row(s.data<double>() + r * n, w.data<double>() + r * n, n);
  return sum.mean();
}

}  // namespace minitrain
