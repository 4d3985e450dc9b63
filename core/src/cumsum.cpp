// cumsum: running sums along one dim. out[j] = x[0] + ... + x[j], so x[j] feeds every out[k] with k >= j
// and its gradient is the reversed running sum g[j] + ... + g[n-1].
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "tensor_impl.h"

namespace minitrain {

namespace {

// Running sums along dim d of a contiguous tensor, front to back or back to front, with a double
// accumulator (as torch's CPU kernel) so that float32 sums of long lanes stay accurate.
Tensor scan_sum(const Tensor& x, int64_t d, bool reverse) {
  Tensor out = make_tensor(x.shape(), x.dtype());
  int64_t outer = 1, inner = 1;
  const int64_t n = x.shape()[d];
  for (int64_t k = 0; k < d; ++k) outer *= x.shape()[k];
  for (int64_t k = d + 1; k < x.dim(); ++k) inner *= x.shape()[k];
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = o * n * inner + i;
        double acc = 0;
        for (int64_t step = 0; step < n; ++step) {
          const int64_t j = reverse ? n - 1 - step : step;
          acc += xp[base + j * inner];
          op[base + j * inner] = static_cast<T>(acc);
        }
      }
  });
  return out;
}

}  // namespace

Tensor cumsum(const Tensor& x, int64_t dim) {
  profiler::Scope scope("cumsum");
  check_defined(x, "cumsum");
  check_floating(x, "cumsum");
  // A 0-dim tensor has one lane of one element (dim 0 or -1), as in torch.
  if (x.dim() == 0) {
    wrap_dim(dim, 1, "cumsum");
    return mul(x, 1.0);
  }
  const int64_t d = wrap_dim(dim, x.dim(), "cumsum");
  Tensor out = scan_sum(x.detach().contiguous(), d, false);
  return attach(out, "cumsum", {x}, [d](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{scan_sum(g.contiguous(), d, true)};
  });
}

}  // namespace minitrain
