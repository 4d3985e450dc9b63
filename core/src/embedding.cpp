// Embedding: a row gather whose backward scatter-adds (repeated ids sum; unused rows get exactly 0).
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "tensor_impl.h"

#include <algorithm>

namespace minitrain {

Tensor embedding(const Tensor& weight_in, const Indices& ids) {
  profiler::Scope scope("embedding");
  check_defined(weight_in, "embedding", "weight");
  if (weight_in.dim() != 2) throw_arg("embedding", "weight must be (V, C), got " + shape_str(weight_in.shape()));
  const int64_t vocab = weight_in.size(0), width = weight_in.size(1);
  for (int64_t i = 0; i < ids.numel(); ++i)
    if (ids.values[i] < 0 || ids.values[i] >= vocab)
      throw_arg("embedding", "id " + std::to_string(ids.values[i]) + " at position " + std::to_string(i) +
                                 " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
  Tensor weight = weight_in.detach().contiguous();
  Shape out_shape = ids.shape;
  out_shape.push_back(width);
  Tensor out = make_tensor(out_shape, weight.dtype());
  dispatch(weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* wp = weight.data<T>();
    T* op = out.data<T>();
    for (int64_t i = 0; i < ids.numel(); ++i) std::copy_n(wp + ids.values[i] * width, width, op + i * width);
  });
  auto saved_ids = std::make_shared<const std::vector<int64_t>>(ids.values);
  const Shape wshape = weight.shape();
  return attach(out, "embedding", {weight_in}, [saved_ids, wshape](const Tensor& g_in, const std::vector<Tensor>&) {
    Tensor g = g_in.contiguous();
    Tensor gw = zeros(wshape, g.dtype());
    const int64_t width = wshape[1];
    dispatch(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* gp = g.data<T>();
      T* wp = gw.data<T>();
      for (std::size_t i = 0; i < saved_ids->size(); ++i) {
        T* row = wp + (*saved_ids)[i] * width;
        const T* src = gp + static_cast<int64_t>(i) * width;
        for (int64_t c = 0; c < width; ++c) row[c] += src[c];
      }
    });
    return std::vector<Tensor>{gw};
  });
}

}  // namespace minitrain
