// Internal: viewing a contiguous tensor as lanes along one dim. A lane is the `n` elements that differ
// only in index `dim`, `stride` apart; there are outer * inner lanes. Softmax-like kernels run per lane.
#pragma once

#include "tensor_impl.h"

namespace minitrain {

struct Lanes {
  int64_t outer = 1, n = 1, inner = 1;
  int64_t count() const { return outer * inner; }
  // Storage offset of the first element of lane l.
  int64_t start(int64_t l) const { return (l / inner) * n * inner + l % inner; }
  int64_t stride() const { return inner; }
};

inline Lanes lanes_of(const Shape& shape, int64_t dim) {
  Lanes l;
  l.n = shape[dim];
  for (int64_t k = 0; k < dim; ++k) l.outer *= shape[k];
  for (int64_t k = dim + 1; k < static_cast<int64_t>(shape.size()); ++k) l.inner *= shape[k];
  return l;
}

}  // namespace minitrain
