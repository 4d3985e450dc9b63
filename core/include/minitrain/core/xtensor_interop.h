// Conversion between Tensor and xt::xarray. Header-only and separate from tensor.h so that only the
// files that want xtensor pay for its headers.
#pragma once

#include <minitrain/core/factory.h>
#include <minitrain/core/tensor.h>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

#include <algorithm>
#include <type_traits>

namespace minitrain {

// A row-major copy of t's values as xt::xarray<T> (T = float or double; converts the dtype).
template <class T>
xt::xarray<T> to_xarray(const Tensor& t) {
  std::vector<std::size_t> shape(t.shape().begin(), t.shape().end());
  xt::xarray<T> out(shape);
  const std::vector<T> values = t.to_vector<T>();
  std::copy(values.begin(), values.end(), out.begin());
  return out;
}

// A new tensor (float32 for float input, float64 for double) holding a copy of `a`.
template <class E>
Tensor from_xarray(const E& expression) {
  using T = std::decay_t<typename E::value_type>;
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "float or double only");
  const xt::xarray<T, xt::layout_type::row_major> a = expression;
  Shape shape(a.shape().begin(), a.shape().end());
  return from_vector(std::vector<T>(a.begin(), a.end()), shape);
}

}  // namespace minitrain
