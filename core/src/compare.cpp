// Comparisons and logical ops: elementwise with numpy broadcasting, bool results, no gradient (their
// outputs are piecewise constant).
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include "strided.h"
#include "tensor_impl.h"

#include <cmath>

namespace minitrain {

namespace {

// out[i] = f(a[i], b[i]) as a bool tensor of the broadcast shape; a and b have one dtype, any of the four.
template <class F>
Tensor to_bool_map(const char* op, const Tensor& a, const Tensor& b, F f) {
  check_defined(a, op, "first operand");
  check_defined(b, op, "second operand");
  check_same_dtype(a, b, op);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = make_tensor(shape, DType::Bool);
  const Tensor ea = a.detach().expand(shape), eb = b.detach().expand(shape);
  TensorImpl& ai = *ea.impl();
  TensorImpl& bi = *eb.impl();
  bool* op_ = out.data<bool>();
  dispatch_all(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* ap = ai.storage->template ptr<T>();
    const T* bp = bi.storage->template ptr<T>();
    int64_t o = 0;
    for_each_row<2>(shape, {&ai.strides, &bi.strides}, {ai.offset, bi.offset},
                    [&](const std::array<int64_t, 2>& p, int64_t n, const std::array<int64_t, 2>& s) {
                      for (int64_t i = 0; i < n; ++i) op_[o++] = f(ap[p[0] + i * s[0]], bp[p[1] + i * s[1]]);
                    });
  });
  return out;
}

// The scalar operand of a comparison as a 0-dim tensor of x's dtype. An int64 tensor is compared with
// integers only: 2.5 against int64 has no exact meaning here without promotion, so it is refused.
Tensor scalar_operand(const Tensor& x, double value, const char* op) {
  check_defined(x, op);
  if (x.dtype() == DType::Int64 && (std::trunc(value) != value || !(std::fabs(value) < 9223372036854775808.0)))
    throw_arg(op, "cannot compare an int64 tensor with " + std::to_string(value) +
                      " exactly; convert the tensor with .to(DType::Float64) first");
  if (x.dtype() == DType::Bool && value != 0 && value != 1)
    throw_arg(op, "cannot compare a bool tensor with " + std::to_string(value));
  return full({}, value, x.dtype());
}

Tensor as_bool(const Tensor& x, const char* op, const char* name) {
  check_defined(x, op, name);
  return x.dtype() == DType::Bool ? x.detach() : x.detach().to(DType::Bool);
}

}  // namespace

// NaN compares unequal to everything, itself included, as IEEE and torch have it.
Tensor eq(const Tensor& a, const Tensor& b) { return to_bool_map("eq", a, b, [](auto x, auto y) { return x == y; }); }
Tensor ne(const Tensor& a, const Tensor& b) { return to_bool_map("ne", a, b, [](auto x, auto y) { return x != y; }); }
Tensor lt(const Tensor& a, const Tensor& b) { return to_bool_map("lt", a, b, [](auto x, auto y) { return x < y; }); }
Tensor le(const Tensor& a, const Tensor& b) { return to_bool_map("le", a, b, [](auto x, auto y) { return x <= y; }); }
Tensor gt(const Tensor& a, const Tensor& b) { return to_bool_map("gt", a, b, [](auto x, auto y) { return x > y; }); }
Tensor ge(const Tensor& a, const Tensor& b) { return to_bool_map("ge", a, b, [](auto x, auto y) { return x >= y; }); }

Tensor eq(const Tensor& a, double b) { return eq(a, scalar_operand(a, b, "eq")); }
Tensor ne(const Tensor& a, double b) { return ne(a, scalar_operand(a, b, "ne")); }
Tensor lt(const Tensor& a, double b) { return lt(a, scalar_operand(a, b, "lt")); }
Tensor le(const Tensor& a, double b) { return le(a, scalar_operand(a, b, "le")); }
Tensor gt(const Tensor& a, double b) { return gt(a, scalar_operand(a, b, "gt")); }
Tensor ge(const Tensor& a, double b) { return ge(a, scalar_operand(a, b, "ge")); }

Tensor logical_and(const Tensor& a, const Tensor& b) {
  return to_bool_map("logical_and", as_bool(a, "logical_and", "first operand"),
                     as_bool(b, "logical_and", "second operand"), [](bool x, bool y) { return x && y; });
}

Tensor logical_or(const Tensor& a, const Tensor& b) {
  return to_bool_map("logical_or", as_bool(a, "logical_or", "first operand"),
                     as_bool(b, "logical_or", "second operand"), [](bool x, bool y) { return x || y; });
}

Tensor logical_not(const Tensor& x) {
  const Tensor b = as_bool(x, "logical_not", "input");
  return to_bool_map("logical_not", b, full({}, 0, DType::Bool), [](bool v, bool) { return !v; });
}

}  // namespace minitrain
