// Piecewise-linear elementwise ops: abs, clamp, minimum, maximum. Each has kinks where its derivative
// jumps; the gradient chosen at a kink is torch's (checked against torch 1.13, listed at each op), and the
// gradient checks in tests/core/test_gradcheck_ops.cpp stay away from the kinks, where finite differences
// average the two sides.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include "elementwise_kernels.h"

#include <cmath>
#include <limits>
#include <string>

namespace minitrain {

// Kink at 0: the gradient there is 0 (sign(0) = 0, torch's sgn), not 1 or -1.
Tensor abs(const Tensor& x) {
  return pointwise("abs", x, [](auto v) { return std::abs(v); },
                   [](auto v, auto) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); });
}

// min(max(x, lo), hi), so lo > hi gives hi everywhere (torch's rule). NaN stays NaN. Kinks at the bounds:
// an element equal to a bound keeps its gradient (torch passes the gradient where lo <= x <= hi, edges
// included); a clamped element, and NaN, get 0.
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  if (!min && !max) throw_arg("clamp", "needs at least one of min and max");
  if ((min && std::isnan(*min)) || (max && std::isnan(*max))) throw_arg("clamp", "a bound is NaN");
  const double lo = min ? *min : -std::numeric_limits<double>::infinity();
  const double hi = max ? *max : std::numeric_limits<double>::infinity();
  return pointwise(
      "clamp", x,
      [lo, hi](auto v) {
        using T = decltype(v);
        if (std::isnan(v)) return v;
        const T low = v < static_cast<T>(lo) ? static_cast<T>(lo) : v;
        return low > static_cast<T>(hi) ? static_cast<T>(hi) : low;
      },
      [lo, hi](auto v, auto) { return v >= lo && v <= hi ? 1.0 : 0.0; });
}

Tensor clamp_min(const Tensor& x, double min) { return clamp(x, min, std::nullopt); }
Tensor clamp_max(const Tensor& x, double max) { return clamp(x, std::nullopt, max); }

namespace {

// maximum (largest) or minimum of a and b, broadcasting. NaN in either operand gives NaN. The kink is a
// tie a == b: each operand gets half the gradient (torch's rule, so the two halves add up to g); the other
// operand gets 0 elsewhere. Where one is NaN neither comparison holds and both get the full gradient, as
// in torch.
Tensor extreme_of_two(const char* op, const Tensor& a, const Tensor& b, bool largest) {
  Tensor out = binary_map(op, a, b, [largest](auto x, auto y) {
    if (std::isnan(x) || std::isnan(y)) return x + y;
    return (largest ? x > y : x < y) ? x : y;
  });
  return attach(out, op, {a, b}, [op, largest](const Tensor& g, const std::vector<Tensor>& in) {
    // Share of g for the first operand x against the other y.
    auto share = [largest](auto x, auto y) {
      using T = decltype(x);
      if (x == y) return T(0.5);
      return (largest ? x < y : x > y) ? T(0) : T(1);
    };
    Tensor ga, gb;
    if (in[0].requires_grad()) ga = sum_to_shape(mul(g, binary_map(op, in[0], in[1], share)), in[0].shape());
    if (in[1].requires_grad()) gb = sum_to_shape(mul(g, binary_map(op, in[1], in[0], share)), in[1].shape());
    return std::vector<Tensor>{ga, gb};
  }, {a, b});
}

}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extreme_of_two("maximum", a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extreme_of_two("minimum", a, b, false); }

}  // namespace minitrain
