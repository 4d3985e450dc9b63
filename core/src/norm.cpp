// norm: the p-norm of x over `dims`, (sum |x|^p)^(1/p), for p >= 1 and p = infinity (max |x|), as
// torch.linalg.vector_norm. Forward and backward are written out (not composed) so that the gradient at
// the non-differentiable points is torch's choice instead of the NaN a composition gives there.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "elementwise_kernels.h"
#include "reduce_dims.h"

#include <cmath>
#include <sstream>

namespace minitrain {

Tensor norm(const Tensor& x, double p, const std::vector<int64_t>& dims_in, bool keepdim) {
  profiler::Scope scope("norm");
  check_defined(x, "norm");
  check_floating(x, "norm");
  const bool infinite = std::isinf(p) && p > 0;
  if (!(p >= 1) || (std::isinf(p) && !infinite)) {
    std::ostringstream got;
    got << p;
    throw_arg("norm", "p must be >= 1 or infinity, got " + got.str());
  }
  const std::vector<int64_t> dims = reduction_dims(x, dims_in, "norm");
  if (infinite && reduced_count(x.shape(), dims) == 0)
    throw_arg("norm", "the infinity norm of zero elements (shape " + shape_str(x.shape()) + ") is undefined");
  const Tensor xd = x.detach();
  Tensor out;
  if (infinite)
    out = amax(abs(xd), dims, keepdim);
  else if (p == 1)
    out = sum(abs(xd), dims, keepdim);
  else if (p == 2)
    out = sqrt(sum(mul(xd, xd), dims, keepdim));
  else
    out = pow(sum(pow(abs(xd), p), dims, keepdim), 1.0 / p);
  const Tensor saved_out = out.detach();
  const Shape kept = reduced_shape(x.shape(), dims, true);

  // Backward (torch's linalg_vector_norm_backward):
  //   finite p:  g · sgn(x)·|x|^(p-1) / norm^(p-1), which is g·x/norm for p = 2 and g·sgn(x) for p = 1.
  //     At x = 0 the first factor is 0 (sgn(0) = 0): for p = 1 that is abs's kink, where the gradient is 0.
  //     A reduction whose elements are all 0 (norm = 0) has no direction: its gradient is 0, not 0/0.
  //   infinity:  g · sgn(x) / (number of entries with |x| = norm), on those entries only (ties share).
  return attach(out, "norm", {x}, [p, infinite, dims, kept, saved_out](const Tensor& g, const std::vector<Tensor>& in) {
    const Tensor nk = saved_out.reshape(kept);
    const Tensor gk = g.reshape(kept);
    const Tensor zero = full({}, 0.0, g.dtype());
    if (infinite) {
      const Tensor hit = eq(abs(in[0]), nk).to(g.dtype());
      const Tensor sign = unary_map("norm", in[0], [](auto v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); });
      return std::vector<Tensor>{mul(mul(sign, hit), div(gk, sum(hit, dims, true)))};
    }
    const Tensor direction = unary_map("norm", in[0], [p](auto v) {
      const auto s = v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0);
      return s * std::pow(std::abs(static_cast<double>(v)), p - 1);
    });
    const Tensor scale = where(eq(nk, zero), zero, div(gk, p == 2 ? nk : pow(nk, p - 1)));
    return std::vector<Tensor>{mul(direction, scale)};
  }, {x, saved_out});
}

}  // namespace minitrain
