// Embedding: a row gather whose backward scatter-adds (repeated ids sum; unused rows get exactly 0).
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "tensor_impl.h"

#include <algorithm>

namespace minitrain {

Tensor embedding(const Tensor& weight_in, const Tensor& ids_in) {
  profiler::Scope scope("embedding");
  check_floating(weight_in, "embedding", "weight");
  check_int64(ids_in, "embedding", "ids");
  if (weight_in.dim() != 2) throw_arg("embedding", "weight must be (V, C), got " + shape_str(weight_in.shape()));
  const int64_t vocab = weight_in.size(0), width = weight_in.size(1);
  const Tensor ids = ids_in.detach().contiguous();
  const int64_t* idp = ids.data<int64_t>();
  for (int64_t i = 0; i < ids.numel(); ++i)
    if (idp[i] < 0 || idp[i] >= vocab)
      throw_arg("embedding", "id " + std::to_string(idp[i]) + " at position " + std::to_string(i) +
                                 " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
  Tensor weight = weight_in.detach().contiguous();
  Shape out_shape = ids.shape();
  out_shape.push_back(width);
  Tensor out = make_tensor(out_shape, weight.dtype());
  dispatch(weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* wp = weight.data<T>();
    T* op = out.data<T>();
    for (int64_t i = 0; i < ids.numel(); ++i) std::copy_n(wp + idp[i] * width, width, op + i * width);
  });
  const Shape wshape = weight.shape();
  // The backward scatters into the rows the ids name, so it reads them: an in-place edit of the ids
  // before backward is refused (they are saved), instead of sending gradients to other rows.
  return attach(out, "embedding", {weight_in}, [ids, wshape](const Tensor& g_in, const std::vector<Tensor>&) {
    Tensor g = g_in.contiguous();
    Tensor gw = zeros(wshape, g.dtype());
    const int64_t width = wshape[1];
    const int64_t* idp = ids.data<int64_t>();
    dispatch(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* gp = g.data<T>();
      T* wp = gw.data<T>();
      for (int64_t i = 0; i < ids.numel(); ++i) {
        T* row = wp + idp[i] * width;
        const T* src = gp + i * width;
        for (int64_t c = 0; c < width; ++c) row[c] += src[c];
      }
    });
    return std::vector<Tensor>{gw};
  }, {ids});
}

}  // namespace minitrain
