// Reductions that add: sum, mean, var and std (composed from sum).
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "reduce_dims.h"
#include "strided.h"

namespace minitrain {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  profiler::Scope scope("sum");
  check_floating(x, "sum");
  const std::vector<int64_t> dims = reduction_dims(x, dims_in, "sum");
  const Shape kept = reduced_shape(x.shape(), dims, true);
  Tensor out = make_tensor(kept, x.dtype());
  // Walk x once, adding each element into its output slot (stride 0 along reduced dims), with a
  // double accumulator so float32 sums of long rows stay accurate.
  Shape out_strides = contiguous_strides(kept);
  for (int64_t d : dims) out_strides[d] = 0;
  std::vector<double> acc(static_cast<std::size_t>(out.numel()), 0.0);
  TensorImpl& xi = *x.impl();
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = xi.storage->template ptr<T>();
    for_each_row<2>(xi.shape, {&xi.strides, &out_strides}, {xi.offset, 0},
                    [&](const std::array<int64_t, 2>& p, int64_t n, const std::array<int64_t, 2>& s) {
                      if (s[1] == 0) {
                        double row = 0;
                        for (int64_t i = 0; i < n; ++i) row += xp[p[0] + i * s[0]];
                        acc[p[1]] += row;
                      } else {
                        for (int64_t i = 0; i < n; ++i) acc[p[1] + i * s[1]] += xp[p[0] + i * s[0]];
                      }
                    });
    T* op = out.data<T>();
    for (std::size_t i = 0; i < acc.size(); ++i) op[i] = static_cast<T>(acc[i]);
  });
  if (!keepdim) out = out.view(reduced_shape(x.shape(), dims, false));
  const Shape in_shape = x.shape();
  return attach(out, "sum", {x}, [in_shape, kept](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g.reshape(kept).expand(in_shape)};
  });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  check_floating(x, "mean");
  const std::vector<int64_t> dims = reduction_dims(x, dims_in, "mean");
  const int64_t count = reduced_count(x.shape(), dims);
  if (count == 0) throw_arg("mean", "reducing over zero elements of shape " + shape_str(x.shape()));
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(count));
}

namespace {

// var and std share the checks and the two-pass computation; `op` names the caller in errors.
Tensor variance(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim, int64_t correction,
                const char* op) {
  check_floating(x, op);
  const std::vector<int64_t> dims = reduction_dims(x, dims_in, op);
  const int64_t count = reduced_count(x.shape(), dims);
  if (count - correction <= 0)
    throw_arg(op, "needs more than " + std::to_string(correction) + " elements per reduction, got " +
                      std::to_string(count) + " from shape " + shape_str(x.shape()));
  // Two passes (subtract the mean first) keep precision on rows with a large mean.
  Tensor centered = sub(x, mean(x, dims, true));
  return mul(sum(mul(centered, centered), dims, keepdim), 1.0 / static_cast<double>(count - correction));
}

}  // namespace

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, int64_t correction) {
  return variance(x, dims, keepdim, correction, "var");
}

Tensor std(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, int64_t correction) {
  const Tensor v = variance(x, dims, keepdim, correction, "std");
  // sqrt's derivative 1/(2·std) is infinite where every element of a reduction is equal (std = 0); there
  // the gradient is 0, as torch's std_backward masks it, instead of the NaN that 0 · ∞ would give.
  Tensor out = sqrt(v.detach());
  const Tensor saved_out = out.detach();
  return attach(out, "std", {v}, [saved_out](const Tensor& g, const std::vector<Tensor>&) {
    const Tensor zero = zeros_like(saved_out);
    return std::vector<Tensor>{where(eq(saved_out, zero), zero, div(g, mul(saved_out, 2.0)))};
  }, {saved_out});
}

}  // namespace minitrain
