// Rotary position embedding: a fused kernel on contiguous rows, and the tables it reads.
//
// Each row of D channels belongs to one position t; channel pair i (its two members depend on the layout)
// is rotated by the angle a = position · frequency_i:
//   (u, v) -> (u·cos a − v·sin a,  u·sin a + v·cos a)
// The rotation is orthogonal, so the gradient is the incoming gradient rotated by −a: the same kernel with
// sin negated. cos and sin are constants (tables of positions), so nothing flows to them.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "parallel.h"
#include "tensor_impl.h"

#include <cmath>
#include <limits>
#include <string>

namespace minitrain {

namespace {
constexpr int64_t kElementsPerThread = 1 << 15;  // below that, a thread costs more than the rotation

// Geometry of a contiguous x viewed as (outer, T, inner, D): row r = (o·T + t)·inner + i is at position t.
struct RotaryGeometry {
  int64_t rows, positions, inner, width;
};

// out = in rotated by +angle (sign = 1) or −angle (sign = −1), rows [r0, r1). cos / sin: (T, D/2).
template <class T>
void rotate_rows(const T* in, const T* cos_table, const T* sin_table, T* out, const RotaryGeometry& g,
                 RotaryLayout layout, T sign, int64_t r0, int64_t r1) {
  const int64_t half = g.width / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t t = (r / g.inner) % g.positions;
    const T* c = cos_table + t * half;
    const T* s = sin_table + t * half;
    const T* x = in + r * g.width;
    T* y = out + r * g.width;
    if (layout == RotaryLayout::Halves) {
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        const T u = x[i], v = x[i + half], sn = sign * s[i];
        y[i] = u * c[i] - v * sn;
        y[i + half] = u * sn + v * c[i];
      }
    } else {
      for (int64_t i = 0; i < half; ++i) {
        const T u = x[2 * i], v = x[2 * i + 1], sn = sign * s[i];
        y[2 * i] = u * c[i] - v * sn;
        y[2 * i + 1] = u * sn + v * c[i];
      }
    }
  }
}

// Runs rotate_rows over every row of the contiguous `in` into a new tensor.
Tensor rotate(const Tensor& in, const Tensor& cos_table, const Tensor& sin_table, const RotaryGeometry& g,
              RotaryLayout layout, double sign) {
  Tensor out = make_tensor(in.shape(), in.dtype());
  dispatch(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* ip = in.data<T>();
    const T* cp = cos_table.data<T>();
    const T* sp = sin_table.data<T>();
    T* op = out.data<T>();
    const int64_t min_rows = std::max<int64_t>(1, kElementsPerThread / std::max<int64_t>(g.width, 1));
    parallel_for(g.rows, min_rows, [&](int64_t r0, int64_t r1) {
      rotate_rows(ip, cp, sp, op, g, layout, static_cast<T>(sign), r0, r1);
    });
  });
  return out;
}

void check_table(const Tensor& table, const char* name, const Tensor& x, int64_t positions, int64_t half) {
  check_floating(table, "rotary_embedding", name);
  if (table.shape() != Shape{positions, half})
    throw_arg("rotary_embedding", std::string(name) + " of shape " + shape_str(table.shape()) + " must be (T, D/2) = " +
                                      shape_str(Shape{positions, half}) + " for input " + shape_str(x.shape()));
  if (table.dtype() != x.dtype())
    throw_arg("rotary_embedding", std::string(name) + " " + shape_str(table.shape()) + " is " +
                                      dtype_name(table.dtype()) + " but input " + shape_str(x.shape()) + " is " +
                                      dtype_name(x.dtype()) + " (build the tables in the input's dtype)");
  if (table.requires_grad())
    throw_arg("rotary_embedding", std::string(name) + " " + shape_str(table.shape()) +
                                      " requires grad, but the tables are constants and get no gradient (detach it)");
}
}  // namespace

Tensor rotary_embedding(const Tensor& x_in, const Tensor& cos, const Tensor& sin, RotaryLayout layout,
                        int64_t seq_dim) {
  profiler::Scope scope("rotary_embedding");
  check_floating(x_in, "rotary_embedding");
  const int64_t nd = x_in.dim();
  if (nd < 2)
    throw_arg("rotary_embedding", "input " + shape_str(x_in.shape()) + " needs a sequence dim before the channel dim");
  const int64_t sd = seq_dim < 0 ? seq_dim + nd : seq_dim;
  if (sd < 0 || sd > nd - 2)
    throw_arg("rotary_embedding", "seq_dim " + std::to_string(seq_dim) + " must name a dim before the last of input " +
                                      shape_str(x_in.shape()) + ": " + std::to_string(-nd) + "..-2 or 0.." +
                                      std::to_string(nd - 2));
  const int64_t width = x_in.size(-1);
  if (width % 2 != 0)
    throw_arg("rotary_embedding", "the last dim of input " + shape_str(x_in.shape()) + " must be even (pairs of channels), got " +
                                      std::to_string(width));
  const int64_t positions = x_in.size(sd);
  check_table(cos, "cos", x_in, positions, width / 2);
  check_table(sin, "sin", x_in, positions, width / 2);

  Tensor x = x_in.detach().contiguous();
  Tensor c = cos.detach().contiguous(), s = sin.detach().contiguous();
  RotaryGeometry g{0, positions, 1, width};
  for (int64_t d = sd + 1; d < nd - 1; ++d) g.inner *= x.size(d);
  g.rows = width == 0 ? 0 : x.numel() / width;
  // x: (..., T, ..., D) -> same shape, each row rotated by its position's angles.
  Tensor y = rotate(x, c, s, g, layout, 1.0);
  return attach(y, "rotary_embedding", {x_in}, [c, s, g, layout](const Tensor& grad, const std::vector<Tensor>&) {
    return std::vector<Tensor>{rotate(grad.contiguous(), c, s, g, layout, -1.0)};
  }, {c, s});
}

std::pair<Tensor, Tensor> rotary_tables(int64_t head_dim, int64_t start_position, int64_t length, double theta,
                                        DType dtype) {
  if (head_dim <= 0 || head_dim % 2 != 0)
    throw_arg("rotary_tables", "head_dim must be positive and even, got " + std::to_string(head_dim));
  if (start_position < 0) throw_arg("rotary_tables", "start_position must be >= 0, got " + std::to_string(start_position));
  if (length < 0) throw_arg("rotary_tables", "length must be >= 0, got " + std::to_string(length));
  if (start_position > std::numeric_limits<int64_t>::max() - length)
    throw_arg("rotary_tables", "start_position " + std::to_string(start_position) + " + length " + std::to_string(length) +
                                   " overflows int64");
  if (!(theta > 0) || !std::isfinite(theta))
    throw_arg("rotary_tables", "theta must be positive and finite, got " + std::to_string(theta));
  if (!is_floating_point(dtype))
    throw_arg("rotary_tables", std::string("dtype must be float32 or float64, got ") + dtype_name(dtype));
  const int64_t half = head_dim / 2;
  // cos and sin rows of (length, half) doubles, converted once at the end.
  Tensor cos_table = make_tensor({length, half}, DType::Float64), sin_table = make_tensor({length, half}, DType::Float64);
  double* cp = cos_table.data<double>();
  double* sp = sin_table.data<double>();
  for (int64_t i = 0; i < half; ++i) {
    const double frequency = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    for (int64_t t = 0; t < length; ++t) {
      const double angle = static_cast<double>(start_position + t) * frequency;
      cp[t * half + i] = std::cos(angle);
      sp[t * half + i] = std::sin(angle);
    }
  }
  if (dtype == DType::Float64) return {cos_table, sin_table};
  return {cos_table.to(dtype), sin_table.to(dtype)};
}

}  // namespace minitrain
