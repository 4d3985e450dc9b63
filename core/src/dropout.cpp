// Inverted dropout with an explicit generator: survivors are scaled by 1/(1-p) at training time so
// that evaluation is the identity.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "elementwise_kernels.h"

namespace minitrain {

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  profiler::Scope scope("dropout");
  check_floating(x, "dropout");
  if (!(p >= 0 && p <= 1)) throw_arg("dropout", "probability must be in [0, 1], got " + std::to_string(p));
  if (!training || p == 0) return x;
  Tensor mask = make_tensor(x.shape(), x.dtype());  // 0 or 1/(1-p) per element
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* m = mask.data<T>();
    const T keep_scale = p < 1 ? static_cast<T>(1.0 / (1.0 - p)) : T(0);
    for (int64_t i = 0; i < mask.numel(); ++i) m[i] = gen.uniform() >= p ? keep_scale : T(0);
  });
  Tensor out = binary_map("dropout", x, mask, [](auto v, auto m) { return v * m; });
  return attach(out, "dropout", {x}, [mask](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{binary_map("dropout_backward", g, mask, [](auto gv, auto m) { return gv * m; })};
  });
}

}  // namespace minitrain
