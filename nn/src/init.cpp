#include <minitrain/nn/init.h>

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

namespace minitrain::nn {

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().seed(seed); }

void uniform_(Tensor& t, double low, double high, Generator& gen) {
  t.copy_(add(mul(rand(t.shape(), gen, t.dtype()), high - low), low));
}

void normal_(Tensor& t, double mean, double stddev, Generator& gen) {
  t.copy_(normal(t.shape(), mean, stddev, gen, t.dtype()));
}

void constant_(Tensor& t, double value) { t.copy_(full(t.shape(), value, t.dtype())); }

}  // namespace minitrain::nn
