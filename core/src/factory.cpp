// Tensor factories.
#include <minitrain/core/factory.h>

#include "tensor_impl.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

namespace minitrain {

Tensor empty(const Shape& shape, DType dtype) { return make_tensor(shape, dtype); }

namespace {
// value as an element of `dtype`; throws naming `op` when an int64 tensor cannot hold it exactly.
template <class T>
T element_value(double value, const char* op) {
  if constexpr (std::is_same<T, int64_t>::value) {
    if (std::trunc(value) != value || !(std::fabs(value) < 9223372036854775808.0))
      throw std::invalid_argument(std::string(op) + ": an int64 tensor cannot hold " + std::to_string(value));
  }
  return static_cast<T>(value);
}
}  // namespace

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = make_tensor(shape, dtype);
  dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    std::fill_n(t.data<T>(), t.numel(), element_value<T>(value, "full"));
  });
  return t;
}

Tensor zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor scalar_tensor(double value, DType dtype) { return full({}, value, dtype); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype()); }

Tensor arange(double start, double end, double step, DType dtype) {
  if (step == 0 || !std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step))
    throw std::invalid_argument("arange: need finite start/end and a nonzero step");
  const double count = std::ceil((end - start) / step);
  if (!(count < 9007199254740992.0))  // 2^53: beyond it the count itself is not exact
    throw std::invalid_argument("arange: [" + std::to_string(start) + ", " + std::to_string(end) + ") in steps of " +
                                std::to_string(step) + " has too many elements");
  const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  if (dtype == DType::Bool) throw std::invalid_argument("arange: bool is not a dtype for a range");
  Tensor t = make_tensor({n}, dtype);
  dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = element_value<T>(start + static_cast<double>(i) * step, "arange");
  });
  return t;
}

namespace {
template <class T>
Tensor from_values(const std::vector<T>& values, const Shape& shape, DType dtype) {
  if (shape_numel(shape) != static_cast<int64_t>(values.size()))
    throw std::invalid_argument("from_vector: " + std::to_string(values.size()) +
                                " values do not fill shape " + shape_str(shape));
  Tensor t = make_tensor(shape, dtype);
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

// Fills `t` (contiguous, floating-point) with draw() cast to its element type, in order.
template <class Draw>
void fill_random_into(Tensor& t, const char* who, Draw draw) {
  if (!t.defined() || !is_floating_point(t.dtype()) || !t.is_contiguous())
    throw std::invalid_argument(std::string(who) + ": a defined, contiguous floating-point tensor is needed");
  dispatch(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(draw());
  });
}

template <class Draw>
Tensor fill_random(const Shape& shape, DType dtype, Draw draw) {
  if (!is_floating_point(dtype))
    throw std::invalid_argument(std::string("random: floating-point dtype needed, got ") + dtype_name(dtype));
  Tensor t = make_tensor(shape, dtype);
  fill_random_into(t, "random", draw);
  return t;
}

// One definition of each draw, shared by the fresh and the in-place forms, so both give the same bits.
auto uniform_draw(Generator& gen) {
  return [&gen] { return gen.uniform(); };
}
auto normal_draw(double mean, double stddev, Generator& gen) {
  return [mean, stddev, &gen] { return mean + stddev * gen.normal(); };
}
}  // namespace

Tensor from_vector(const std::vector<float>& values, const Shape& shape) {
  return from_values(values, shape, DType::Float32);
}
Tensor from_vector(const std::vector<double>& values, const Shape& shape) {
  return from_values(values, shape, DType::Float64);
}
Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape) {
  return from_values(values, shape, DType::Int64);
}
Tensor from_vector(const std::vector<bool>& values, const Shape& shape) {
  return from_values(values, shape, DType::Bool);
}

Tensor rand(const Shape& shape, Generator& gen, DType dtype) {
  return fill_random(shape, dtype, uniform_draw(gen));
}
Tensor randn(const Shape& shape, Generator& gen, DType dtype) {
  return fill_random(shape, dtype, [&] { return gen.normal(); });
}
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, DType dtype) {
  return fill_random(shape, dtype, normal_draw(mean, stddev, gen));
}

void fill_rand_(Tensor& t, Generator& gen) {
  fill_random_into(t, "fill_rand_", uniform_draw(gen));
  t.bump_version();
}

void fill_normal_(Tensor& t, double mean, double stddev, Generator& gen) {
  fill_random_into(t, "fill_normal_", normal_draw(mean, stddev, gen));
  t.bump_version();
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen) {
  Tensor t = make_tensor(shape, DType::Int64);
  int64_t* p = t.data<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = gen.randint(low, high);
  return t;
}

}  // namespace minitrain
