// Elementwise ops with numpy broadcasting, and the one helper that un-broadcasts gradients.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include "elementwise_kernels.h"
#include "gelu_kernels.h"

#include <cmath>

namespace minitrain {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw_arg(op, "shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor sum_to_shape(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  if (lead < 0)
    throw_arg("sum_to_shape", "cannot reduce " + shape_str(grad.shape()) + " to " + shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < grad.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && grad.shape()[d] != 1)) dims.push_back(d);
  return sum(grad, dims, true).reshape(shape);
}

// ---- binary ----------------------------------------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map("add", a, b, [](auto x, auto y) { return x + y; });
  Shape sa = a.shape(), sb = b.shape();
  return attach(out, "add", {a, b}, [sa, sb](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map("sub", a, b, [](auto x, auto y) { return x - y; });
  Shape sa = a.shape(), sb = b.shape();
  return attach(out, "sub", {a, b}, [sa, sb](const Tensor& g, const std::vector<Tensor>& in) {
    return std::vector<Tensor>{sum_to_shape(g, sa), in[1].requires_grad() ? sum_to_shape(neg(g), sb) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map("mul", a, b, [](auto x, auto y) { return x * y; });
  return attach(out, "mul", {a, b}, [](const Tensor& g, const std::vector<Tensor>& in) {
    return std::vector<Tensor>{
        in[0].requires_grad() ? sum_to_shape(mul(g, in[1]), in[0].shape()) : Tensor(),
        in[1].requires_grad() ? sum_to_shape(mul(g, in[0]), in[1].shape()) : Tensor()};
  }, {a, b});
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map("div", a, b, [](auto x, auto y) { return x / y; });
  return attach(out, "div", {a, b}, [](const Tensor& g, const std::vector<Tensor>& in) {
    Tensor ga, gb;
    if (in[0].requires_grad()) ga = sum_to_shape(div(g, in[1]), in[0].shape());
    if (in[1].requires_grad())  // d(a/b)/db = -a/b^2
      gb = sum_to_shape(neg(div(mul(g, in[0]), mul(in[1], in[1]))), in[1].shape());
    return std::vector<Tensor>{ga, gb};
  }, {a, b});
}

// ---- unary and scalar forms -----------------------------------------------------------------------

Tensor neg(const Tensor& x) {
  return pointwise("neg", x, [](auto v) { return -v; }, [](auto, auto) { return -1.0; });
}

Tensor add(const Tensor& a, double b) {
  return pointwise("add_scalar", a, [b](auto v) { return v + static_cast<decltype(v)>(b); },
                   [](auto, auto) { return 1.0; });
}

Tensor mul(const Tensor& a, double b) {
  return pointwise("mul_scalar", a, [b](auto v) { return v * static_cast<decltype(v)>(b); },
                   [b](auto, auto) { return b; });
}

Tensor rsub(double a, const Tensor& b) {
  return pointwise("rsub_scalar", b, [a](auto v) { return static_cast<decltype(v)>(a) - v; },
                   [](auto, auto) { return -1.0; });
}

Tensor rdiv(double a, const Tensor& b) {
  // d(a/x)/dx = -a/x^2 = -y/x
  return pointwise("rdiv_scalar", b, [a](auto v) { return static_cast<decltype(v)>(a) / v; },
                   [](auto x, auto y) { return -y / x; });
}

Tensor pow(const Tensor& x, double e) {
  return pointwise("pow", x, [e](auto v) { return static_cast<decltype(v)>(std::pow(v, e)); },
                   [e](auto v, auto) { return e * std::pow(v, e - 1); });
}

// x ** exponent elementwise, broadcasting. The masks are torch's: the base gets no gradient where the
// exponent is 0 (x^0 = 1 even at x = 0, where e·x^(e-1) would be 0·∞), and the exponent gets none where
// x = 0 and e >= 0 (x^e·log x is 0·(-∞) there, while x^e is flat in e from the right). A negative base gives
// the exponent a NaN gradient (log x), as in torch.
Tensor pow(const Tensor& x, const Tensor& exponent) {
  Tensor out = binary_map("pow", x, exponent, [](auto b, auto e) { return std::pow(b, e); });
  return attach(out, "pow", {x, exponent}, [](const Tensor& g, const std::vector<Tensor>& in) {
    Tensor gx, ge;
    if (in[0].requires_grad()) {
      const Tensor d = binary_map("pow", in[0], in[1], [](auto b, auto e) {
        return e == 0 ? decltype(b)(0) : e * std::pow(b, e - 1);
      });
      gx = sum_to_shape(mul(g, d), in[0].shape());
    }
    if (in[1].requires_grad()) {
      const Tensor d = binary_map("pow", in[0], in[1], [](auto b, auto e) {
        return b == 0 && e >= 0 ? decltype(b)(0) : std::pow(b, e) * std::log(b);
      });
      ge = sum_to_shape(mul(g, d), in[1].shape());
    }
    return std::vector<Tensor>{gx, ge};
  }, {x, exponent});
}

Tensor exp(const Tensor& x) {
  return pointwise("exp", x, [](auto v) { return std::exp(v); }, [](auto, auto y) { return y; });
}

Tensor log(const Tensor& x) {
  return pointwise("log", x, [](auto v) { return std::log(v); }, [](auto v, auto) { return 1 / v; });
}

Tensor sqrt(const Tensor& x) {
  return pointwise("sqrt", x, [](auto v) { return std::sqrt(v); }, [](auto, auto y) { return 0.5 / y; });
}

Tensor rsqrt(const Tensor& x) {
  // d(x^-1/2)/dx = -1/2 x^-3/2 = -1/2 y^3
  return pointwise("rsqrt", x, [](auto v) { return 1 / std::sqrt(v); },
                   [](auto, auto y) { return -0.5 * y * y * y; });
}

Tensor tanh(const Tensor& x) {
  return pointwise("tanh", x, [](auto v) { return std::tanh(v); }, [](auto, auto y) { return 1 - y * y; });
}

Tensor sigmoid(const Tensor& x) {
  return pointwise("sigmoid", x, [](auto v) { return 1 / (1 + std::exp(-v)); },
                   [](auto, auto y) { return y * (1 - y); });
}

// SiLU (swish): x·σ(x), the gate of SwiGLU. d/dx = σ(x)·(1 + x·(1 − σ(x))).
Tensor silu(const Tensor& x) {
  return pointwise("silu", x, [](auto v) { return v / (1 + std::exp(-v)); },
                   [](auto v, auto) {
                     const auto s = 1 / (1 + std::exp(-v));
                     return s * (1 + v * (1 - s));
                   });
}

Tensor relu(const Tensor& x) {
  return pointwise("relu", x, [](auto v) { return v > 0 ? v : decltype(v)(0); },
                   [](auto v, auto) { return v > 0 ? 1.0 : 0.0; });
}

namespace {
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kCubic = 0.044715;

// Exact GELU as its own kernel: y = x·Φ(x), and the backward g·(Φ(x) + x·φ(x)) recomputes Φ and φ from
// the saved input rather than keeping a second activation-sized tensor (recomputing costs two vectorised
// exps per element; keeping Φ cost 6 MB on the nano config).
Tensor gelu_erf(const Tensor& x_in) {
  profiler::Scope scope("gelu");
  check_floating(x_in, "gelu");
  Tensor x = x_in.detach().contiguous();
  Tensor out = empty(x.shape(), x.dtype());
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = out.data<T>();
    parallel_for(x.numel(), kElementsPerThread, [&](int64_t b, int64_t e) {
      kernels::gelu_forward(xp + b, yp + b, e - b);
    });
  });
  return attach(out, "gelu", {x_in}, [x](const Tensor& g_in, const std::vector<Tensor>&) {
    // The engine hands over the incoming gradient and drops it after this call. When nothing else holds
    // it, dx is written over it (it was just written by the next layer's backward and is still in cache;
    // a fresh buffer would be another activation-sized allocation).
    const bool overwrite = sole_owner(g_in) && g_in.is_contiguous() && g_in.dtype() == x.dtype();
    Tensor g = g_in.contiguous();
    Tensor dx = overwrite ? g : empty(x.shape(), x.dtype());
    dispatch(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.data<T>();
      const T* gp = g.data<T>();
      T* dp = dx.data<T>();
      parallel_for(x.numel(), kElementsPerThread, [&](int64_t b, int64_t e) {
        if (overwrite)
          kernels::gelu_backward_in_place(xp + b, dp + b, e - b);
        else
          kernels::gelu_backward(xp + b, gp + b, dp + b, e - b);
      });
    });
    return std::vector<Tensor>{dx};
  }, {x});
}
}  // namespace

Tensor gelu(const Tensor& x, GeluApproximation approximation) {
  // Exact: x·Φ(x), Φ'(x) = φ(x). Tanh form (GPT-2): 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))).
  // Computed in the tensor's own precision: vectorised float kernels (fast_math.h) for float32, the C
  // library's erfc/exp for float64 gradient checks.
  if (approximation == GeluApproximation::None) return gelu_erf(x);
  return pointwise(
      "gelu_tanh", x,
      [](auto v) {
        using T = decltype(v);
        return T(0.5) * v * (1 + std::tanh(T(kSqrt2OverPi) * (v + T(kCubic) * v * v * v)));
      },
      [](auto v, auto) {
        using T = decltype(v);
        const T t = std::tanh(T(kSqrt2OverPi) * (v + T(kCubic) * v * v * v));
        return T(0.5) * (1 + t) + T(0.5) * v * (1 - t * t) * T(kSqrt2OverPi) * (1 + 3 * T(kCubic) * v * v);
      });
}

}  // namespace minitrain
