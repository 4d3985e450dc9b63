// Ops that produce or consume int64 indices along a dim: argmax/argmin, gather, index_select, topk,
// one_hot. gather and index_select are differentiable in their data operand (backward scatter-adds into
// the positions read); topk's values are a gather, so they are too.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "tensor_impl.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace minitrain {

namespace {

// A contiguous shape seen as (outer, n, inner) around one dim: element (o, j, i) is at (o * n + j) * inner + i.
struct AroundDim {
  int64_t outer = 1, n = 1, inner = 1;
  AroundDim(const Shape& shape, int64_t d) : n(shape[d]) {
    for (int64_t k = 0; k < d; ++k) outer *= shape[k];
    for (int64_t k = d + 1; k < static_cast<int64_t>(shape.size()); ++k) inner *= shape[k];
  }
};

template <class T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point<T>::value) return std::isnan(v);
  return false;
}

// Index of the first extreme element of each lane along `dim`; NaN counts as the extreme, as in torch.
Tensor arg_extreme(const char* op, const Tensor& x_in, int64_t dim, bool keepdim, bool largest) {
  check_defined(x_in, op);
  const int64_t d = wrap_dim(dim, x_in.dim(), op);
  if (x_in.shape()[d] == 0) throw_arg(op, "dim " + std::to_string(d) + " of shape " + shape_str(x_in.shape()) + " is empty");
  const Tensor x = x_in.detach().contiguous();
  const AroundDim a(x.shape(), d);
  Shape kept = x.shape();
  kept[d] = 1;
  Tensor out = make_tensor(kept, DType::Int64);
  int64_t* op_ = out.data<int64_t>();
  dispatch_all(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    for (int64_t o = 0; o < a.outer; ++o)
      for (int64_t i = 0; i < a.inner; ++i) {
        const T* lane = xp + o * a.n * a.inner + i;
        int64_t best = 0;
        for (int64_t j = 1; j < a.n && !is_nan(lane[best * a.inner]); ++j) {  // the first NaN ends the search
          const T v = lane[j * a.inner], b = lane[best * a.inner];
          if (is_nan(v) || (largest ? v > b : v < b)) best = j;  // strict: the first of equal extremes stays
        }
        op_[o * a.inner + i] = best;
      }
  });
  return keepdim ? out : out.squeeze(d);
}

void check_index_range(const Tensor& index, int64_t size, const char* op, const std::string& what) {
  const int64_t* p = index.data<int64_t>();
  for (int64_t k = 0; k < index.numel(); ++k)
    if (p[k] < 0 || p[k] >= size)
      throw_arg(op, "index " + std::to_string(p[k]) + " at position " + std::to_string(k) + " is outside " + what +
                        " [0, " + std::to_string(size) + ")");
}

// Calls f(k, x_pos) for every element k of a contiguous `index` (row-major) with the position in a
// contiguous tensor of shape `x_shape` that gather reads: index's own coordinates, except index[k] along dim.
template <class F>
void for_each_gather(const Shape& x_shape, int64_t d, const Tensor& index, F f) {
  const Shape& shape = index.shape();
  const int64_t nd = static_cast<int64_t>(shape.size());
  const Shape x_strides = contiguous_strides(x_shape);
  const int64_t* ip = index.data<int64_t>();
  std::vector<int64_t> coord(static_cast<std::size_t>(nd), 0);
  for (int64_t k = 0; k < index.numel(); ++k) {
    int64_t pos = 0;
    for (int64_t j = 0; j < nd; ++j) pos += (j == d ? ip[k] : coord[j]) * x_strides[j];
    f(k, pos);
    for (int64_t j = nd - 1; j >= 0; --j) {  // odometer step
      if (++coord[j] < shape[j]) break;
      coord[j] = 0;
    }
  }
}

}  // namespace

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return arg_extreme("argmax", x, dim, keepdim, true); }
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return arg_extreme("argmin", x, dim, keepdim, false); }
Tensor argmax(const Tensor& x) { check_defined(x, "argmax"); return argmax(x.reshape({-1}), 0, false); }
Tensor argmin(const Tensor& x) { check_defined(x, "argmin"); return argmin(x.reshape({-1}), 0, false); }

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index_in) {
  profiler::Scope scope("gather");
  check_floating(x, "gather");
  check_int64(index_in, "gather", "index");
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  if (index_in.dim() != x.dim())
    throw_arg("gather", "index of shape " + shape_str(index_in.shape()) + " must have as many dims as input " +
                            shape_str(x.shape()));
  for (int64_t k = 0; k < x.dim(); ++k)
    if (k != d && index_in.size(k) > x.size(k))
      throw_arg("gather", "index of shape " + shape_str(index_in.shape()) + " is larger than input " +
                              shape_str(x.shape()) + " in dim " + std::to_string(k));
  const Tensor index = index_in.detach().contiguous();
  check_index_range(index, x.size(d), "gather", "dim " + std::to_string(d) + " of input " + shape_str(x.shape()));
  const Tensor src = x.detach().contiguous();
  Tensor out = make_tensor(index.shape(), x.dtype());
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* sp = src.data<T>();
    T* op = out.data<T>();
    for_each_gather(src.shape(), d, index, [&](int64_t k, int64_t pos) { op[k] = sp[pos]; });
  });
  const Shape x_shape = x.shape();
  return attach(out, "gather", {x}, [index, x_shape, d](const Tensor& g_in, const std::vector<Tensor>&) {
    const Tensor g = g_in.contiguous();
    Tensor gx = zeros(x_shape, g.dtype());
    dispatch(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* gp = g.data<T>();
      T* xp = gx.data<T>();
      for_each_gather(x_shape, d, index, [&](int64_t k, int64_t pos) { xp[pos] += gp[k]; });  // repeats add up
    });
    return std::vector<Tensor>{gx};
  }, {index});
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index_in) {
  profiler::Scope scope("index_select");
  check_floating(x, "index_select");
  check_int64(index_in, "index_select", "index");
  const int64_t d = wrap_dim(dim, x.dim(), "index_select");
  if (index_in.dim() != 1)
    throw_arg("index_select", "index must be 1-D, got shape " + shape_str(index_in.shape()));
  const Tensor index = index_in.detach().contiguous();
  check_index_range(index, x.size(d), "index_select", "dim " + std::to_string(d) + " of input " + shape_str(x.shape()));
  const Tensor src = x.detach().contiguous();
  const AroundDim a(src.shape(), d);
  const int64_t m = index.numel();
  Shape out_shape = x.shape();
  out_shape[d] = m;
  Tensor out = make_tensor(out_shape, x.dtype());
  const int64_t* ip = index.data<int64_t>();
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* sp = src.data<T>();
    T* op = out.data<T>();
    for (int64_t o = 0; o < a.outer; ++o)
      for (int64_t j = 0; j < m; ++j)
        std::copy_n(sp + (o * a.n + ip[j]) * a.inner, a.inner, op + (o * m + j) * a.inner);
  });
  const Shape x_shape = x.shape();
  return attach(out, "index_select", {x}, [index, x_shape, a, m](const Tensor& g_in, const std::vector<Tensor>&) {
    const Tensor g = g_in.contiguous();
    Tensor gx = zeros(x_shape, g.dtype());
    const int64_t* ip = index.data<int64_t>();
    dispatch(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* gp = g.data<T>();
      T* xp = gx.data<T>();
      for (int64_t o = 0; o < a.outer; ++o)
        for (int64_t j = 0; j < m; ++j) {
          T* row = xp + (o * a.n + ip[j]) * a.inner;
          const T* src = gp + (o * m + j) * a.inner;
          for (int64_t i = 0; i < a.inner; ++i) row[i] += src[i];  // a repeated index adds up
        }
    });
    return std::vector<Tensor>{gx};
  }, {index});
}

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  profiler::Scope scope("topk");
  check_floating(x, "topk");
  const int64_t d = wrap_dim(dim, x.dim(), "topk");
  if (k < 0 || k > x.size(d))
    throw_arg("topk", "k = " + std::to_string(k) + " is outside [0, " + std::to_string(x.size(d)) + "] for dim " +
                          std::to_string(d) + " of shape " + shape_str(x.shape()));
  const Tensor src = x.detach().contiguous();
  const AroundDim a(src.shape(), d);
  Shape out_shape = x.shape();
  out_shape[d] = k;
  Tensor indices = make_tensor(out_shape, DType::Int64);
  int64_t* ip = indices.data<int64_t>();
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* sp = src.data<T>();
    std::vector<int64_t> order(static_cast<std::size_t>(a.n));
    for (int64_t o = 0; o < a.outer; ++o)
      for (int64_t i = 0; i < a.inner; ++i) {
        const T* lane = sp + o * a.n * a.inner + i;
        // NaN ranks first (as the largest and as the smallest, as in torch); equal values keep index order.
        auto before = [&](int64_t p, int64_t q) {
          const T u = lane[p * a.inner], v = lane[q * a.inner];
          if (std::isnan(u) || std::isnan(v)) return std::isnan(u) && !std::isnan(v);
          return largest ? u > v : u < v;
        };
        std::iota(order.begin(), order.end(), int64_t{0});
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int64_t p, int64_t q) { return before(p, q) || (!before(q, p) && p < q); });
        for (int64_t j = 0; j < k; ++j) ip[(o * k + j) * a.inner + i] = order[static_cast<std::size_t>(j)];
      }
  });
  return {gather(x, d, indices), indices};
}

Tensor one_hot(const Tensor& indices_in, int64_t num_classes) {
  check_int64(indices_in, "one_hot", "indices");
  const Tensor indices = indices_in.detach().contiguous();
  const int64_t* ip = indices.data<int64_t>();
  if (num_classes == -1) {
    if (indices.numel() == 0) throw_arg("one_hot", "cannot infer the number of classes from an empty tensor");
    num_classes = *std::max_element(ip, ip + indices.numel()) + 1;
  }
  if (num_classes < 1) throw_arg("one_hot", "num_classes must be positive or -1, got " + std::to_string(num_classes));
  check_index_range(indices, num_classes, "one_hot", "the classes");
  Shape out_shape = indices.shape();
  out_shape.push_back(num_classes);
  Tensor out = zeros(out_shape, DType::Int64);
  int64_t* op = out.data<int64_t>();
  for (int64_t k = 0; k < indices.numel(); ++k) op[k * num_classes + ip[k]] = 1;
  return out;
}

}  // namespace minitrain
