// Internal: exp and the normal CDF for the hot float32 kernels (softmax, attention, GELU), written as
// straight-line arithmetic so that loops calling them vectorise (glibc's expf/erff are calls the compiler
// cannot vectorise, and were most of GELU's and softmax's time). float64 keeps the C library's functions:
// it is the precision gradient checks run in.
//
// Accuracy (tests/core/test_fast_math.cpp, against the double-precision library functions): exp within
// 2 ulp for x <= 88 (measured 1.0). The normal CDF within 6e-7 relative for x >= -2; further left the
// float rounding of x² inside the exponent adds up to x²·2^-22 (1.4e-5 at x = -12, where Φ < 1e-32 and
// GELU's output is ~1e-31): harmless for GELU, which is what it is for. Between neighbouring floats with
// |x| < 1 it can step back by up to 2 ulp (polynomial rounding); it is monotone at any coarser spacing.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace minitrain::fast {

// e^x = 2^n · e^r with n = round(x / ln 2) and |r| <= ln 2 / 2; e^r by a degree-6 polynomial (a minimax
// fit, coefficients as in Cephes' expf). Exactly 0 below the float range (so -inf, a masked score, gives
// 0), +inf above it, NaN stays NaN.
inline float exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 split so n·kLn2Hi is exact
  constexpr float kRound = 12582912.0f;                            // 1.5·2^23: adding it rounds to integer
  constexpr float kMin = -87.3365447f, kMax = 88.3762626f;
  const float xc = x < kMin ? kMin : (x > kMax ? kMax : x);  // not fmin/fmax: calls, unvectorised
  const float shifted = xc * kLog2e + kRound;
  const float n = shifted - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  // 2^n built in the exponent field; n is read from the low mantissa bits of `shifted`, which avoids a
  // float-to-int conversion (undefined behaviour for NaN). Unsigned arithmetic: for inf/NaN inputs the
  // bits are garbage (the result is replaced below), and must not overflow a signed int on the way.
  uint32_t shifted_bits;
  std::memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
  const uint32_t n_biased = shifted_bits - 0x4B400000u + 127u;
  const uint32_t scale_bits = n_biased << 23;
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  const float y = er * scale;
  if (x < kMin) return 0.0f;
  if (x > kMax) return std::numeric_limits<float>::infinity();
  return y;
}

inline double exp(double x) { return std::exp(x); }

// Φ(x) = P(N(0,1) <= x) = erfc(-x/√2) / 2. erfc(z) for z >= 0 as t·exp(-z² + poly(t)), t = 1/(1 + z/2):
// the Chebyshev fit in Numerical Recipes (§6.2), fractional error < 1.2e-7 in exact arithmetic.
inline float normal_cdf(float x) {
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  const float z = std::fabs(x) * kInvSqrt2;
  const float t = 1.0f / (1.0f + 0.5f * z);
  // The degree-9 polynomial by Estrin's scheme: 4 dependent multiply-adds instead of Horner's 9, which made
  // the kernel latency-bound (measured 0.99 -> 0.88 ns per element on one core).
  const float t2 = t * t, t4 = t2 * t2, t8 = t4 * t4;
  const float a0 = -1.26551223f + 1.00002368f * t, a1 = 0.37409196f + 0.09678418f * t;
  const float a2 = -0.18628806f + 0.27886807f * t, a3 = -1.13520398f + 1.48851587f * t;
  const float a4 = -0.82215223f + 0.17087277f * t;
  const float p = (a0 + a1 * t2) + (a2 + a3 * t2) * t4 + a4 * t8;
  const float half_erfc = 0.5f * t * exp(-z * z + p);  // Φ(-|x|)
  return x >= 0 ? 1.0f - half_erfc : half_erfc;
}

inline double normal_cdf(double x) { return 0.5 * std::erfc(-x * 0.70710678118654752440); }

// φ(x), the standard normal density.
template <class T>
T normal_pdf(T x) {
  return T(0.39894228040143267794) * exp(T(-0.5) * x * x);
}

}  // namespace minitrain::fast
