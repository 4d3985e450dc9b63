// Internal: the dims argument of the reductions (sum, mean, var, std, amax, amin, norm) and the shapes
// they give.
#pragma once

#include "tensor_impl.h"

#include <algorithm>
#include <vector>

namespace minitrain {

// Sorted, unique, non-negative dims; empty means all dims. Throws naming `op` for a dim out of range or
// listed twice.
inline std::vector<int64_t> reduction_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, x.dim(), op));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end()) throw_arg(op, "a dim is listed twice");
  return out;
}

// `shape` with the (sorted) `dims` removed, or set to 1 with keepdim.
inline Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    const bool reduced = std::binary_search(dims.begin(), dims.end(), d);
    if (!reduced)
      out.push_back(shape[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

// How many elements of `shape` each output of a reduction over `dims` combines.
inline int64_t reduced_count(const Shape& shape, const std::vector<int64_t>& dims) {
  int64_t count = 1;
  for (int64_t d : dims) count *= shape[d];
  return count;
}

}  // namespace minitrain
