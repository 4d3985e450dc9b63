// Internal: iteration over strided (possibly broadcast, possibly transposed) tensors, one innermost row
// at a time, so the caller's inner loop is a plain loop the compiler can vectorise.
#pragma once

#include "tensor_impl.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

namespace minitrain {

// For N operands viewed with the same `shape` but their own strides and offsets, calls
// row(positions, length, inner_strides) once per innermost row, where positions[k] is the storage
// index of the row's first element in operand k. Rows come in row-major order.
template <std::size_t N, class RowFn>
void for_each_row(const Shape& shape, const std::array<const Shape*, N>& strides,
                  std::array<int64_t, N> pos, RowFn&& row) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (shape_numel(shape) == 0) return;
  std::array<int64_t, N> inner_strides{};
  if (nd == 0) {
    row(pos, int64_t{1}, inner_strides);
    return;
  }
  const int64_t inner = shape[nd - 1];
  for (std::size_t k = 0; k < N; ++k) inner_strides[k] = (*strides[k])[nd - 1];
  const int64_t rows = shape_numel(shape) / inner;
  std::vector<int64_t> index(static_cast<std::size_t>(nd - 1), 0);
  for (int64_t r = 0; r < rows; ++r) {
    row(pos, inner, inner_strides);
    for (int64_t d = nd - 2; d >= 0; --d) {  // odometer step over the outer dims
      for (std::size_t k = 0; k < N; ++k) pos[k] += (*strides[k])[d];
      if (++index[d] < shape[d]) break;
      for (std::size_t k = 0; k < N; ++k) pos[k] -= (*strides[k])[d] * shape[d];
      index[d] = 0;
    }
  }
}

// One element converted as static_cast does (float to int64 truncates, anything to bool is != 0), except
// that a float int64 cannot hold (NaN, infinity, beyond +-2^63) throws instead of being undefined behaviour.
template <class D, class S>
inline D convert_element(S v) {
  if constexpr (std::is_same<D, int64_t>::value && std::is_floating_point<S>::value) {
    if (!(v >= S(-9223372036854775808.0) && v < S(9223372036854775808.0)))
      throw std::invalid_argument("conversion to int64: " + std::to_string(v) + " is not representable");
  }
  return static_cast<D>(v);
}

// dst[i] = src[i] for two views of the same shape (any strides, any dtypes, converted element-wise).
inline void copy_strided(const Tensor& src, Tensor& dst) {
  TensorImpl& s = *src.impl();
  TensorImpl& d = *dst.impl();
  dispatch_all(s.dtype(), [&](auto stag) {
    using S = decltype(stag);
    dispatch_all(d.dtype(), [&](auto dtag) {
      using D = decltype(dtag);
      const S* sp = s.storage->template ptr<S>();
      D* dp = d.storage->template ptr<D>();
      for_each_row<2>(s.shape, {&s.strides, &d.strides}, {s.offset, d.offset},
                      [&](const std::array<int64_t, 2>& p, int64_t n, const std::array<int64_t, 2>& st) {
                        for (int64_t i = 0; i < n; ++i) dp[p[1] + i * st[1]] = convert_element<D>(sp[p[0] + i * st[0]]);
                      });
    });
  });
}

}  // namespace minitrain
