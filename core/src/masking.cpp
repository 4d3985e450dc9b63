// masked_fill, where and the causal mask.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include "elementwise_kernels.h"

#include <algorithm>

namespace minitrain {

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_floating(x, "masked_fill");
  check_defined(mask, "masked_fill", "mask");
  const Shape shape = broadcast_shapes(x.shape(), mask.shape(), "masked_fill");
  if (shape != x.shape())
    throw_arg("masked_fill", "mask of shape " + shape_str(mask.shape()) + " does not broadcast to input " +
                                 shape_str(x.shape()));
  const Tensor m = mask.detach().to(x.dtype());
  Tensor out = binary_map("masked_fill", x, m, [value](auto v, auto keep_out) {
    return keep_out != 0 ? static_cast<decltype(v)>(value) : v;
  });
  return attach(out, "masked_fill", {x}, [m](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{binary_map("masked_fill_backward", g, m, [](auto gv, auto masked) {
      return masked != 0 ? decltype(gv)(0) : gv;
    })};
  }, {m});
}

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  check_defined(condition, "where", "condition");
  check_defined(a, "where", "first operand");
  check_defined(b, "where", "second operand");
  check_same_dtype(a, b, "where");
  check_floating(a, "where", "first operand");
  const Shape shape =
      broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(), "where");
  const Tensor c = condition.detach().to(a.dtype()).expand(shape);
  Tensor out = ternary_map(c, a.detach().expand(shape), b.detach().expand(shape),
                           [](auto cv, auto av, auto bv) { return cv != 0 ? av : bv; });
  return attach(out, "where", {a, b}, [c](const Tensor& g, const std::vector<Tensor>& in) {
    const Tensor zero = zeros({}, g.dtype()).expand(g.shape());
    return std::vector<Tensor>{
        in[0].requires_grad() ? sum_to_shape(ternary_map(c, g, zero, [](auto cv, auto gv, auto z) { return cv != 0 ? gv : z; }), in[0].shape()) : Tensor(),
        in[1].requires_grad() ? sum_to_shape(ternary_map(c, zero, g, [](auto cv, auto z, auto gv) { return cv != 0 ? z : gv; }), in[1].shape()) : Tensor()};
  }, {c});
}

Tensor causal_mask(int64_t n, DType dtype) { return causal_mask(n, n, dtype); }

Tensor causal_mask(int64_t rows, int64_t cols, DType dtype) {
  if (rows < 0 || cols < 0)
    throw_arg("causal_mask", "negative size " + std::to_string(rows) + "x" + std::to_string(cols));
  Tensor m = zeros({rows, cols}, dtype);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = std::max<int64_t>(0, i + cols - rows + 1); j < cols; ++j) m.set({i, j}, 1.0);
  return m;
}

}  // namespace minitrain
