// Internal: exp and the normal CDF for the hot float32 kernels (softmax, attention, GELU), written as
// straight-line arithmetic so that loops calling them vectorise (glibc's expf/erff are calls the compiler
// cannot vectorise, and were most of GELU's and softmax's time). float64 keeps the C library's functions:
// it is the precision gradient checks run in.
//
// Accuracy (tests/core/test_fast_math.cpp, against the double-precision library functions): exp within
// 2 ulp for x <= 88 (measured 1.0). The normal CDF within 6e-7 relative for x >= -2 (measured 4.4e-7);
// further left the float rounding of x² inside the exponent adds up to x²·2^-22 (measured 4.1e-6 at
// x = -11.7, where Φ < 1e-31): harmless for GELU, which is what it is for. Between neighbouring floats with
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

// Φ(x) = P(N(0,1) <= x) and φ(x), the standard normal density, from one exp. With e = exp(-x²/2):
// φ = e/√(2π), and the tail Φ(-|x|) = erfc(z)/2 (z = |x|/√2) = (t/2)·e·Q(t) with t = 1/(1 + z/2), where
// Q(t) = erfc(z)·exp(z²)/t is smooth on t in (0, 1] (from 1/√π to 1). Q is a degree-9 polynomial in
// u = (t - c)/h, u in [-1, 1], fitted for relative error by scripts/fit_normal_cdf.py: 1.7e-8 in exact
// arithmetic for |x| <= 13.4 (beyond, e underflows and Φ is 0 or 1). GELU's backward needs both Φ and φ:
// one exp instead of two.
template <class T>
struct CdfPdf {
  T cdf, pdf;
};

inline CdfPdf<float> normal_cdf_pdf(float x) {
  constexpr float kHalfInvSqrt2 = 0.35355339059327376f;  // z/2 = |x|/(2√2)
  constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
  constexpr float kInvH = 2.4210526315789473f, kCenter = 0.58695652173913038f * 2.4210526315789473f;
  const float e = exp(-0.5f * x * x);
  const float t = 1.0f / (1.0f + kHalfInvSqrt2 * std::fabs(x));
  const float u = t * kInvH - kCenter;
  // Estrin's scheme: 4 dependent multiply-adds instead of Horner's 9 (the loops are latency-bound).
  const float u2 = u * u, u4 = u2 * u2, u8 = u4 * u4;
  const float b0 = 5.748564183e-01f + 3.251460523e-01f * u, b1 = 1.004128126e-01f + 5.600431077e-03f * u;
  const float b2 = -5.965008070e-03f - 5.662868334e-04f * u, b3 = 5.562251846e-04f + 4.000347287e-06f * u;
  const float b4 = -4.950940792e-05f + 4.847126298e-06f * u;
  const float q = (b0 + b1 * u2) + (b2 + b3 * u2) * u4 + b4 * u8;
  const float half_tail = 0.5f * t * e * q;  // Φ(-|x|)
  return {x >= 0 ? 1.0f - half_tail : half_tail, kInvSqrt2Pi * e};
}

inline float normal_cdf(float x) { return normal_cdf_pdf(x).cdf; }

inline double normal_cdf(double x) { return 0.5 * std::erfc(-x * 0.70710678118654752440); }

// φ(x), the standard normal density.
template <class T>
T normal_pdf(T x) {
  return T(0.39894228040143267794) * exp(T(-0.5) * x * x);
}

inline CdfPdf<double> normal_cdf_pdf(double x) { return {normal_cdf(x), normal_pdf(x)}; }

}  // namespace minitrain::fast
