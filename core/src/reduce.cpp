// Reductions: sum, mean, var (composed), max along a dim.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "strided.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace minitrain {

namespace {

// Sorted, unique, non-negative dims; empty means all dims.
std::vector<int64_t> reduction_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, x.dim(), op));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end()) throw_arg(op, "a dim is listed twice");
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    const bool reduced = std::binary_search(dims.begin(), dims.end(), d);
    if (!reduced)
      out.push_back(shape[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

}  // namespace

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
  int64_t count = 1;
  for (int64_t d : dims) count *= x.shape()[d];
  if (count == 0) throw_arg("mean", "reducing over zero elements of shape " + shape_str(x.shape()));
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(count));
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim, int64_t correction) {
  check_floating(x, "var");
  const std::vector<int64_t> dims = reduction_dims(x, dims_in, "var");
  int64_t count = 1;
  for (int64_t d : dims) count *= x.shape()[d];
  if (count - correction <= 0)
    throw_arg("var", "needs more than " + std::to_string(correction) + " elements per reduction, got " +
                         std::to_string(count) + " from shape " + shape_str(x.shape()));
  // Two passes (subtract the mean first) keep precision on rows with a large mean.
  Tensor centered = sub(x, mean(x, dims, true));
  return mul(sum(mul(centered, centered), dims, keepdim), 1.0 / static_cast<double>(count - correction));
}

Tensor max(const Tensor& x_in, int64_t dim, bool keepdim) {
  check_floating(x_in, "max");
  const int64_t d = wrap_dim(dim, x_in.dim(), "max");
  if (x_in.shape()[d] == 0) throw_arg("max", "dim " + std::to_string(d) + " of shape " + shape_str(x_in.shape()) + " is empty");
  Tensor x = x_in.detach().contiguous();
  int64_t outer = 1, inner = 1;
  const int64_t n = x.shape()[d];
  for (int64_t k = 0; k < d; ++k) outer *= x.shape()[k];
  for (int64_t k = d + 1; k < x.dim(); ++k) inner *= x.shape()[k];
  Shape kept = x.shape();
  kept[d] = 1;
  Tensor out = make_tensor(kept, x.dtype());
  auto argmax = std::make_shared<std::vector<int64_t>>(static_cast<std::size_t>(outer * inner));
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const T* base = xp + o * n * inner + i;
        int64_t best = 0;
        for (int64_t j = 1; j < n; ++j) {  // strict '>' keeps the first of equal maxima; NaN wins
          const T v = base[j * inner], b = base[best * inner];
          if (v > b || (std::isnan(v) && !std::isnan(b))) best = j;
        }
        op[o * inner + i] = base[best * inner];
        (*argmax)[o * inner + i] = best;
      }
  });
  if (!keepdim) out = out.squeeze(d);
  const Shape in_shape = x.shape();
  return attach(out, "max", {x_in}, [in_shape, kept, n, inner, argmax](const Tensor& g, const std::vector<Tensor>&) {
    Tensor gk = g.reshape(kept).contiguous();
    Tensor gx = zeros(in_shape, g.dtype());
    dispatch(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* gp = gk.data<T>();
      T* xp = gx.data<T>();
      for (std::size_t k = 0; k < argmax->size(); ++k) {
        const int64_t o = static_cast<int64_t>(k) / inner, i = static_cast<int64_t>(k) % inner;
        xp[(o * n + (*argmax)[k]) * inner + i] = gp[k];
      }
    });
    return std::vector<Tensor>{gx};
  });
}

}  // namespace minitrain
