// Internal: the loops behind elementwise ops. Outputs are fresh contiguous tensors; inputs may be any
// view. Contiguous inputs of equal shape take a flat loop; everything else goes row by row.
#pragma once

#include "parallel.h"
#include "strided.h"

#include <minitrain/core/profiler.h>

#include <type_traits>

namespace minitrain {

// Below this many elements per thread, waking a second thread costs more than it saves.
constexpr int64_t kElementsPerThread = 32 * 1024;

// out = f(x) elementwise.
template <class F>
Tensor unary_map(const char* op, const Tensor& x, F f) {
  profiler::Scope scope(op);
  check_floating(x, op);
  Tensor out = make_tensor(x.shape(), x.dtype());
  TensorImpl& xi = *x.impl();
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = xi.storage->template ptr<T>();
    T* op_ = out.data<T>();
    if (xi.is_contiguous()) {
      xp += xi.offset;
      parallel_for(out.numel(), kElementsPerThread, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) op_[i] = static_cast<T>(f(xp[i]));
      });
      return;
    }
    int64_t o = 0;
    for_each_row<1>(xi.shape, {&xi.strides}, {xi.offset},
                    [&](const std::array<int64_t, 1>& p, int64_t n, const std::array<int64_t, 1>& s) {
                      for (int64_t i = 0; i < n; ++i) op_[o++] = static_cast<T>(f(xp[p[0] + i * s[0]]));
                    });
  });
  return out;
}

// out = f(a, b) with numpy broadcasting.
template <class F>
Tensor binary_map(const char* op, const Tensor& a, const Tensor& b, F f) {
  profiler::Scope scope(op);
  check_defined(a, op, "first operand");
  check_defined(b, op, "second operand");
  check_same_dtype(a, b, op);
  check_floating(a, op, "first operand");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = make_tensor(shape, a.dtype());
  Tensor ea = a.shape() == shape ? a.detach() : a.detach().expand(shape);
  Tensor eb = b.shape() == shape ? b.detach() : b.detach().expand(shape);
  TensorImpl& ai = *ea.impl();
  TensorImpl& bi = *eb.impl();
  dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* ap = ai.storage->template ptr<T>();
    const T* bp = bi.storage->template ptr<T>();
    T* op_ = out.data<T>();
    if (ai.is_contiguous() && bi.is_contiguous()) {
      ap += ai.offset;
      bp += bi.offset;
      parallel_for(out.numel(), kElementsPerThread, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) op_[i] = static_cast<T>(f(ap[i], bp[i]));
      });
      return;
    }
    int64_t o = 0;
    for_each_row<2>(shape, {&ai.strides, &bi.strides}, {ai.offset, bi.offset},
                    [&](const std::array<int64_t, 2>& p, int64_t n, const std::array<int64_t, 2>& s) {
                      for (int64_t i = 0; i < n; ++i)
                        op_[o++] = static_cast<T>(f(ap[p[0] + i * s[0]], bp[p[1] + i * s[1]]));
                    });
  });
  return out;
}

// out = f(a, b, c) for three tensors of one shape and dtype (backward helpers).
template <class F>
Tensor ternary_map(const Tensor& a, const Tensor& b, const Tensor& c, F f) {
  Tensor out = make_tensor(a.shape(), a.dtype());
  TensorImpl& ai = *a.impl();
  TensorImpl& bi = *b.impl();
  TensorImpl& ci = *c.impl();
  dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* ap = ai.storage->template ptr<T>();
    const T* bp = bi.storage->template ptr<T>();
    const T* cp = ci.storage->template ptr<T>();
    T* op_ = out.data<T>();
    if (ai.is_contiguous() && bi.is_contiguous() && ci.is_contiguous()) {
      ap += ai.offset;
      bp += bi.offset;
      cp += ci.offset;
      parallel_for(out.numel(), kElementsPerThread, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) op_[i] = static_cast<T>(f(ap[i], bp[i], cp[i]));
      });
      return;
    }
    int64_t o = 0;
    for_each_row<3>(ai.shape, {&ai.strides, &bi.strides, &ci.strides}, {ai.offset, bi.offset, ci.offset},
                    [&](const std::array<int64_t, 3>& p, int64_t n, const std::array<int64_t, 3>& s) {
                      for (int64_t i = 0; i < n; ++i)
                        op_[o++] = static_cast<T>(
                            f(ap[p[0] + i * s[0]], bp[p[1] + i * s[1]], cp[p[2] + i * s[2]]));
                    });
  });
  return out;
}

// The backward of y = f(x) where dy/dx is a function of x (and y): grad = g * dfdx(x, y), in one pass.
template <class Deriv>
BackwardFn pointwise_backward(Tensor saved_out, Deriv deriv) {
  return [saved_out, deriv](const Tensor& g, const std::vector<Tensor>& in) {
    return std::vector<Tensor>{ternary_map(g, in[0], saved_out, [deriv](auto gv, auto x, auto y) {
      return gv * deriv(x, y);
    })};
  };
}

// A differentiable unary op y = f(x) whose derivative deriv(x, y) is computed elementwise.
template <class F, class Deriv>
Tensor pointwise(const char* name, const Tensor& x, F f, Deriv deriv) {
  Tensor out = unary_map(name, x, f);
  const Tensor saved_out = out.detach();
  return attach(out, name, {x}, pointwise_backward(saved_out, deriv), {x, saved_out});
}

}  // namespace minitrain
