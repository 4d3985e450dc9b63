// Cross-entropy over logits with a fused log-softmax: loss = logsumexp(x) − x[target], and
// backward = (softmax(x) − onehot(target)) / count. Never log(softmax) in two steps: that loses
// everything for logits of 1e4 and more.
//
// If every target is ignore_index the loss is 0 with a zero gradient (torch returns NaN).
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "fast_math.h"
#include "parallel.h"
#include "softmax_kernels.h"
#include "tensor_impl.h"

#include <cmath>

namespace minitrain {

namespace {
// Rows below this count per thread are not worth a second thread.
constexpr int64_t kRowsPerThread = 128;

template <class T>
double row_logsumexp(const T* x, int64_t n) {
  const T mx = lane_max(x, n, 1);
  return mx + std::log(lane_sum_exp(x, n, 1, mx));
}
}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& targets_in, int64_t ignore_index) {
  profiler::Scope scope("cross_entropy");
  check_floating(logits_in, "cross_entropy", "logits");
  check_int64(targets_in, "cross_entropy", "targets");
  if (logits_in.dim() < 1) throw_arg("cross_entropy", "logits must have a class dim, got a scalar");
  const Shape expected(logits_in.shape().begin(), logits_in.shape().end() - 1);
  if (targets_in.shape() != expected)
    throw_arg("cross_entropy", "targets of shape " + shape_str(targets_in.shape()) + " do not match logits " +
                                   shape_str(logits_in.shape()) + " (expected " + shape_str(expected) + ")");
  const Tensor targets = targets_in.detach().contiguous();
  const int64_t classes = logits_in.size(-1), rows = targets.numel();
  const int64_t* target_values = targets.data<int64_t>();
  int64_t count = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = target_values[r];
    if (t == ignore_index) continue;
    if (t < 0 || t >= classes)
      throw_arg("cross_entropy", "target " + std::to_string(t) + " at position " + std::to_string(r) +
                                     " is outside [0, " + std::to_string(classes) + ")");
    ++count;
  }
  Tensor logits = logits_in.detach().contiguous();
  double total = 0;
  // Each row's logsumexp, kept for the backward (which needs softmax = exp(x − lse)).
  auto lse = std::make_shared<std::vector<double>>(static_cast<std::size_t>(rows), 0.0);
  dispatch(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = logits.data<T>();
    const int64_t* tp = target_values;
    parallel_for(rows, kRowsPerThread, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        if (tp[r] != ignore_index) (*lse)[r] = row_logsumexp(x + r * classes, classes);
    });
    for (int64_t r = 0; r < rows; ++r)  // summed in row order, whatever the thread count
      if (tp[r] != ignore_index) total += (*lse)[r] - x[r * classes + tp[r]];
  });
  Tensor loss = full({}, count > 0 ? total / static_cast<double>(count) : 0.0, logits.dtype());
  return attach(loss, "cross_entropy", {logits_in},
                [logits, targets, lse, classes, count, ignore_index](const Tensor& g, const std::vector<Tensor>&) {
                  Tensor dx = zeros(logits.shape(), logits.dtype());
                  if (count == 0) return std::vector<Tensor>{dx};
                  const double scale = g.item() / static_cast<double>(count);
                  dispatch(logits.dtype(), [&](auto tag) {
                    using T = decltype(tag);
                    const T* x = logits.data<T>();
                    T* d = dx.data<T>();
                    const int64_t* tp = targets.data<int64_t>();
                    const T scale_t = static_cast<T>(scale);
                    parallel_for(targets.numel(), kRowsPerThread, [&](int64_t r0, int64_t r1) {
                      for (int64_t r = r0; r < r1; ++r) {
                        const int64_t t = tp[r];
                        if (t == ignore_index) continue;
                        const T* row = x + r * classes;
                        T* drow = d + r * classes;
                        const double lse_r = (*lse)[static_cast<std::size_t>(r)];
                        // softmax = exp(x − lse): the difference in double (lse may be 1e4), the exp in T
                        for (int64_t c = 0; c < classes; ++c)
                          drow[c] = fast::exp(static_cast<T>(row[c] - lse_r)) * scale_t;
                        drow[t] = static_cast<T>(drow[t] - scale);
                      }
                    });
                  });
                  return std::vector<Tensor>{dx};
                }, {logits, targets});
}

}  // namespace minitrain
