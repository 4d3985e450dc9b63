// Reductions that pick: max / min along one dim (the gradient goes to one element, the first extreme),
// amax / amin over several dims (the gradient is shared by every element equal to the extreme, as torch).
// NaN counts as the extreme in all four, as in torch.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "reduce_dims.h"
#include "strided.h"

#include <cmath>
#include <limits>

namespace minitrain {

namespace {

// True when v should replace the current extreme b: strictly more extreme (so the first of equal extremes
// stays), or NaN over a number.
template <class T>
bool replaces(T v, T b, bool largest) {
  if (std::isnan(b)) return false;
  return std::isnan(v) || (largest ? v > b : v < b);
}

// max / min along `dim`, with the position of the first extreme of each lane kept for backward.
Tensor extreme_along_dim(const char* op, const Tensor& x_in, int64_t dim, bool keepdim, bool largest) {
  profiler::Scope scope(op);
  check_defined(x_in, op);
  check_floating(x_in, op);
  const int64_t d = wrap_dim(dim, x_in.dim(), op);
  if (x_in.shape()[d] == 0) throw_arg(op, "dim " + std::to_string(d) + " of shape " + shape_str(x_in.shape()) + " is empty");
  Tensor x = x_in.detach().contiguous();
  int64_t outer = 1, inner = 1;
  const int64_t n = x.shape()[d];
  for (int64_t k = 0; k < d; ++k) outer *= x.shape()[k];
  for (int64_t k = d + 1; k < x.dim(); ++k) inner *= x.shape()[k];
  Shape kept = x.shape();
  kept[d] = 1;
  Tensor out = make_tensor(kept, x.dtype());
  auto chosen = std::make_shared<std::vector<int64_t>>(static_cast<std::size_t>(outer * inner));
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* op_ = out.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const T* base = xp + o * n * inner + i;
        int64_t best = 0;
        for (int64_t j = 1; j < n; ++j)
          if (replaces(base[j * inner], base[best * inner], largest)) best = j;
        op_[o * inner + i] = base[best * inner];
        (*chosen)[o * inner + i] = best;
      }
  });
  if (!keepdim) out = out.squeeze(d);
  const Shape in_shape = x.shape();
  return attach(out, op, {x_in}, [in_shape, kept, n, inner, chosen](const Tensor& g, const std::vector<Tensor>&) {
    Tensor gk = g.reshape(kept).contiguous();
    Tensor gx = zeros(in_shape, g.dtype());
    dispatch(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* gp = gk.data<T>();
      T* xp = gx.data<T>();
      for (std::size_t k = 0; k < chosen->size(); ++k) {
        const int64_t o = static_cast<int64_t>(k) / inner, i = static_cast<int64_t>(k) % inner;
        xp[(o * n + (*chosen)[k]) * inner + i] = gp[k];
      }
    });
    return std::vector<Tensor>{gx};
  });
}

// amax / amin over `dims_in` (empty = all).
Tensor extreme_over_dims(const char* op, const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim,
                         bool largest) {
  profiler::Scope scope(op);
  check_defined(x, op);
  check_floating(x, op);
  const std::vector<int64_t> dims = reduction_dims(x, dims_in, op);
  if (reduced_count(x.shape(), dims) == 0)
    throw_arg(op, "reducing over zero elements of shape " + shape_str(x.shape()));
  const Shape kept = reduced_shape(x.shape(), dims, true);
  Tensor out = make_tensor(kept, x.dtype());
  // Walk x once, folding each element into its output slot (stride 0 along reduced dims).
  Shape out_strides = contiguous_strides(kept);
  for (int64_t d : dims) out_strides[d] = 0;
  TensorImpl& xi = *x.impl();
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* op_ = out.data<T>();
    const T start = largest ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    for (int64_t k = 0; k < out.numel(); ++k) op_[k] = start;
    const T* xp = xi.storage->template ptr<T>();
    for_each_row<2>(xi.shape, {&xi.strides, &out_strides}, {xi.offset, 0},
                    [&](const std::array<int64_t, 2>& p, int64_t n, const std::array<int64_t, 2>& s) {
                      for (int64_t i = 0; i < n; ++i) {
                        T& best = op_[p[1] + i * s[1]];
                        const T v = xp[p[0] + i * s[0]];
                        if (replaces(v, best, largest)) best = v;
                      }
                    });
  });
  const Tensor saved_out = out.detach();
  if (!keepdim) out = out.view(reduced_shape(x.shape(), dims, false));
  // Backward: every element equal to the extreme gets g / (how many are equal), as torch's amax/amin (and
  // its full max()/min()) do; a tie of two gets half each, so the gradient still sums to g.
  return attach(out, op, {x}, [saved_out, dims, kept](const Tensor& g, const std::vector<Tensor>& in) {
    const Tensor hit = eq(in[0], saved_out).to(g.dtype());
    const Tensor count = sum(hit, dims, true);
    return std::vector<Tensor>{mul(hit, div(g.reshape(kept), count))};
  }, {x, saved_out});
}

}  // namespace

Tensor max(const Tensor& x, int64_t dim, bool keepdim) { return extreme_along_dim("max", x, dim, keepdim, true); }
Tensor min(const Tensor& x, int64_t dim, bool keepdim) { return extreme_along_dim("min", x, dim, keepdim, false); }

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme_over_dims("amax", x, dims, keepdim, true);
}
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme_over_dims("amin", x, dims, keepdim, false);
}

}  // namespace minitrain
