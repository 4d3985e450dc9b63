// The exact GELU's loops. With MINITRAIN_NATIVE this file is compiled with -mprefer-vector-width=512
// (core/CMakeLists.txt): the float loops are arithmetic-bound (a division, an exp and a degree-9
// polynomial per element), and on an AVX-512 machine twice the lanes took nano's GELU from 0.88 to 0.55 ms
// forward and 1.31 to 0.71 ms backward on one core. Compilers keep 256-bit vectors by default because
// 512-bit ones can lower the clock; whole-program 512-bit vectors made the memory-bound kernels (AdamW)
// slower, so only this file asks for them. Each element is computed the same way at either width.
#include "gelu_kernels.h"

#include "fast_math.h"

namespace minitrain::kernels {

namespace {
template <class T>
void forward(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * fast::normal_cdf(x[i]);
}

template <class T>
void backward(const T* x, const T* g, T* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = g[i] * (fast::normal_cdf(x[i]) + x[i] * fast::normal_pdf(x[i]));
}
}  // namespace

void gelu_forward(const float* x, float* y, int64_t n) { forward(x, y, n); }
void gelu_forward(const double* x, double* y, int64_t n) { forward(x, y, n); }
void gelu_backward(const float* x, const float* g, float* dx, int64_t n) { backward(x, g, dx, n); }
void gelu_backward(const double* x, const double* g, double* dx, int64_t n) { backward(x, g, dx, n); }

}  // namespace minitrain::kernels
