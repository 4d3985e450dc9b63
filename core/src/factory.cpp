// Tensor factories.
#include <minitrain/core/factory.h>

#include "tensor_impl.h"

#include <algorithm>
#include <cmath>

namespace minitrain {

Tensor empty(const Shape& shape, DType dtype) { return make_tensor(shape, dtype); }

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = make_tensor(shape, dtype);
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    std::fill_n(t.data<T>(), t.numel(), static_cast<T>(value));
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
  const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  Tensor t = make_tensor({n}, dtype);
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
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

template <class Draw>
Tensor fill_random(const Shape& shape, DType dtype, Draw draw) {
  Tensor t = make_tensor(shape, dtype);
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(draw());
  });
  return t;
}
}  // namespace

Tensor from_vector(const std::vector<float>& values, const Shape& shape) {
  return from_values(values, shape, DType::Float32);
}
Tensor from_vector(const std::vector<double>& values, const Shape& shape) {
  return from_values(values, shape, DType::Float64);
}

Tensor rand(const Shape& shape, Generator& gen, DType dtype) {
  return fill_random(shape, dtype, [&] { return gen.uniform(); });
}
Tensor randn(const Shape& shape, Generator& gen, DType dtype) {
  return fill_random(shape, dtype, [&] { return gen.normal(); });
}
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, DType dtype) {
  return fill_random(shape, dtype, [&] { return mean + stddev * gen.normal(); });
}

Indices randint(int64_t low, int64_t high, const Shape& shape, Generator& gen) {
  std::vector<int64_t> values(static_cast<std::size_t>(shape_numel(shape)));
  for (auto& v : values) v = gen.randint(low, high);
  return Indices(shape, std::move(values));
}

}  // namespace minitrain
