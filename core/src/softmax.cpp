// Softmax and log-softmax along a dim: fused, max-subtracted kernels with their own backward.
//
// Rule for a lane that is entirely -inf (every position masked): softmax gives zeros and log_softmax
// gives -inf, and both pass back a zero gradient, so a fully masked row never produces NaN.
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "lanes.h"
#include "softmax_kernels.h"

#include <cmath>
#include <limits>

namespace minitrain {

namespace {

Tensor softmax_impl(const char* op, const Tensor& x_in, int64_t dim, bool log_output) {
  profiler::Scope scope(op);
  check_floating(x_in, op);
  if (x_in.dim() == 0) throw_arg(op, "needs at least one dim, got a scalar");
  const int64_t d = wrap_dim(dim, x_in.dim(), op);
  Tensor x = x_in.detach().contiguous();
  Tensor y = make_tensor(x.shape(), x.dtype());
  const Lanes lanes = lanes_of(x.shape(), d);
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    for (int64_t l = 0; l < lanes.count(); ++l)
      softmax_lane(xp + lanes.start(l), yp + lanes.start(l), lanes.n, lanes.stride(), log_output);
  });
  const Tensor saved_y = y.detach();
  return attach(y, op, {x_in}, [saved = saved_y, lanes, log_output](const Tensor& g_in, const std::vector<Tensor>&) {
    Tensor g = g_in.contiguous();
    Tensor dx = make_tensor(g.shape(), g.dtype());
    dispatch(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* gp = g.data<T>();
      const T* yp = saved.data<T>();
      T* dp = dx.data<T>();
      for (int64_t l = 0; l < lanes.count(); ++l)
        softmax_lane_backward(gp + lanes.start(l), yp + lanes.start(l), dp + lanes.start(l), lanes.n,
                              lanes.stride(), log_output);
    });
    return std::vector<Tensor>{dx};
  }, {saved_y});
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl("softmax", x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl("log_softmax", x, dim, true); }

}  // namespace minitrain
