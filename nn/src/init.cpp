#include <minitrain/nn/init.h>

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

namespace minitrain::nn {

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().seed(seed); }

namespace {

// Whether `t` can be drawn into in place: a contiguous floating-point leaf (a parameter). Anything else
// takes the composed path, whose copy_ gives the errors.
bool fills_in_place(const Tensor& t) {
  return t.defined() && is_floating_point(t.dtype()) && t.is_contiguous() && t.is_leaf();
}

// x * scale, then + shift, rounded as mul(x, scale) and add(.., shift) round: two passes, so the compiler
// cannot fuse them into one multiply-add.
template <class T>
void scale_and_shift(T* p, int64_t n, double scale, double shift) {
  const T s = static_cast<T>(scale), b = static_cast<T>(shift);
  for (int64_t i = 0; i < n; ++i) p[i] = p[i] * s;
  for (int64_t i = 0; i < n; ++i) p[i] = p[i] + b;
}

}  // namespace

// Both draw into the tensor itself (a 50257 x 768 embedding would otherwise need a temporary or three of
// its size), with the values of the composed forms kept as the reference (tests/nn/test_init.cpp).
void uniform_(Tensor& t, double low, double high, Generator& gen) {
  if (!fills_in_place(t)) {
    t.copy_(add(mul(rand(t.shape(), gen, t.dtype()), high - low), low));
    return;
  }
  fill_rand_(t, gen);
  if (t.dtype() == DType::Float32)
    scale_and_shift(t.data<float>(), t.numel(), high - low, low);
  else
    scale_and_shift(t.data<double>(), t.numel(), high - low, low);
  t.bump_version();
}

void normal_(Tensor& t, double mean, double stddev, Generator& gen) {
  if (!fills_in_place(t)) {
    t.copy_(normal(t.shape(), mean, stddev, gen, t.dtype()));
    return;
  }
  fill_normal_(t, mean, stddev, gen);
}

void constant_(Tensor& t, double value) { t.copy_(full(t.shape(), value, t.dtype())); }

}  // namespace minitrain::nn
