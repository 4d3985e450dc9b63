// The vectorisable float kernels of core/src/fast_math.h against the double-precision C library: the
// accuracy the header claims (exp within 2 ulp for x <= 88; the normal CDF within 3e-7 relative across
// the range), the special values, and monotonicity. Each test prints the worst error it measured.
#include "fast_math.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>

namespace fast = minitrain::fast;

namespace {

constexpr double kSqrt2 = 1.41421356237309504880;

// The spacing of floats at |exact|, the unit in which an error of a float result is measured (for
// results in the subnormal range, the subnormal spacing).
double float_ulp_at(double exact) {
  const double a = std::fabs(exact);
  if (a < FLT_MIN) return std::ldexp(1.0, -149);
  int e = 0;
  std::frexp(a, &e);  // a = m·2^e, m in [0.5, 1): floats there are 2^(e-24) apart
  return std::ldexp(1.0, e - 24);
}

// |result - exact| in ulps of the float grid at the exact value.
double ulp_error(float result, double exact) { return std::fabs(static_cast<double>(result) - exact) / float_ulp_at(exact); }

struct Worst {
  double error = 0;
  float at = 0;
  long checked = 0;
  void add(double e, float x) {
    ++checked;
    if (!(e <= error)) {  // a NaN error also becomes the worst
      error = e;
      at = x;
    }
  }
};

// x = lo + (hi - lo)·i/n for i in [0, n], rounded to float.
template <class F>
void sweep(double lo, double hi, long n, F f) {
  for (long i = 0; i <= n; ++i) f(static_cast<float>(lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(n)));
}
// Every float in [lo, hi] (keep such ranges short: near 0 they hold billions of floats).
template <class F>
void every_float(float lo, float hi, F f) {
  for (float x = lo; x <= hi; x = std::nextafter(x, std::numeric_limits<float>::infinity())) f(x);
}
// `count` consecutive floats upwards from x.
template <class F>
void consecutive_floats(float x, long count, F f) {
  for (long i = 0; i < count; ++i, x = std::nextafter(x, std::numeric_limits<float>::infinity())) f(x);
}

double exact_cdf(float x) { return 0.5 * std::erfc(-static_cast<double>(x) / kSqrt2); }
double exact_pdf(float x) { return 0.39894228040143267794 * std::exp(-0.5 * static_cast<double>(x) * x); }

}  // namespace

TEST(FastExp, WithinTwoUlpOverTheFloatRange) {
  Worst w;
  auto check = [&](float x) { w.add(ulp_error(fast::exp(x), std::exp(static_cast<double>(x))), x); };
  sweep(-87.0, 88.0, 1'000'000, check);
  // Consecutive floats where the reduction changes n (±ln2/2), around 0 and at both ends of the range.
  every_float(0.34f, 0.36f, check);
  every_float(-0.36f, -0.34f, check);
  consecutive_floats(-1e-3f, 100'000, check);
  consecutive_floats(-1e-30f, 100'000, check);  // tiny arguments, where the result rounds to 1
  consecutive_floats(0.0f, 100'000, check);
  consecutive_floats(1e-3f, 100'000, check);
  every_float(87.99f, 88.0f, check);
  every_float(-87.0f, -86.99f, check);
  std::printf("[fast::exp] worst %.4f ulp at x = %.9g over %ld points\n", w.error, w.at, w.checked);
  EXPECT_LE(w.error, 2.0) << "at x = " << w.at;
}

// Between the 2-ulp range and the overflow cut-off the results must still be finite and accurate (the
// cut-off is documented as 88.38; a wrong exponent there would give +inf early).
TEST(FastExp, FiniteAndAccurateUpToTheCutOff) {
  Worst w;
  every_float(88.0f, 88.3762626f, [&](float x) {
    const float y = fast::exp(x);
    ASSERT_TRUE(std::isfinite(y)) << "x = " << x;
    w.add(ulp_error(y, std::exp(static_cast<double>(x))), x);
  });
  std::printf("[fast::exp] (88, 88.376]: worst %.4f ulp at x = %.9g\n", w.error, w.at);
  EXPECT_LE(w.error, 2.0) << "at x = " << w.at;
}

TEST(FastExp, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  for (float x : {-inf, -1000.0f, -100.0f, -87.5f, -87.34f}) {
    EXPECT_EQ(fast::exp(x), 0.0f) << "x = " << x;
    EXPECT_FALSE(std::signbit(fast::exp(x))) << "x = " << x;  // +0, not -0
  }
  for (float x : {88.5f, 89.0f, 100.0f, 1e30f, inf}) EXPECT_EQ(fast::exp(x), inf) << "x = " << x;
  EXPECT_TRUE(std::isnan(fast::exp(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(fast::exp(-std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(fast::exp(0.0f), 1.0f);
  EXPECT_EQ(fast::exp(-0.0f), 1.0f);
}

TEST(FastExp, DoubleOverloadIsTheLibraryFunction) {
  for (double x : {-745.0, -100.5, -1.0, 0.0, 0.3, 1.0, 88.9, 700.0})
    EXPECT_EQ(fast::exp(x), std::exp(x)) << "x = " << x;
}

// The bound documented in fast_math.h: 6e-7 relative for x >= -2; in the left tail the float rounding of
// z = |x|/√2, of z² and of -z² + p (|z²| up to 72) adds a few ulps of z², at most x²·2^-22.
TEST(FastNormalCdf, RelativeErrorNoWorseThanMeasured) {
  Worst tail, centre;
  sweep(-12.0, 8.0, 2'000'000, [&](float x) {
    const double exact = exact_cdf(x);
    const double rel = std::fabs(fast::normal_cdf(x) - exact) / exact;
    (x < -2.0f ? tail : centre).add(rel, x);
    const double bound = 5e-7 + static_cast<double>(x) * x * std::ldexp(1.0, -22);
    if (!(rel <= bound)) ADD_FAILURE() << "x = " << x << ": relative error " << rel << " > " << bound;
  });
  std::printf("[fast::normal_cdf] worst relative error %.3g at x = %.9g on [-12, -2), %.3g at x = %.9g on [-2, 8]\n",
              tail.error, tail.at, centre.error, centre.at);
  EXPECT_LT(centre.error, 6e-7) << "at x = " << centre.at;
  EXPECT_LT(tail.error, 2e-5) << "at x = " << tail.at;
}

// Monotone on a sweep 1e-5 apart (GELU's derivative depends on Φ rising), and across the branch at 0.
TEST(FastNormalCdf, MonotoneNonDecreasingOnASweep) {
  float prev_x = -12.0f, prev = fast::normal_cdf(prev_x);
  long violations = 0;
  auto check = [&](float x) {
    const float c = fast::normal_cdf(x);
    if (c < prev && violations++ < 5) ADD_FAILURE() << "Φ(" << x << ") = " << c << " < Φ(" << prev_x << ") = " << prev;
    prev = c;
    prev_x = x;
  };
  sweep(-12.0, 8.0, 2'000'000, check);
  prev_x = -0.01f;
  prev = fast::normal_cdf(prev_x);
  sweep(-0.01, 0.01, 200'000, check);
  EXPECT_EQ(violations, 0);
}

// Between consecutive floats (every float with 1/64 <= |x| <= 12) Φ may step back by at most 2 ulp, as
// fast_math.h documents (measured: 201 such steps of 155M, all with |x| < 1).
TEST(FastNormalCdf, StepsBackAtMostTwoUlpBetweenConsecutiveFloats) {
  long decreases = 0, checked = 0;
  auto scan = [&](float lo, float hi) {
    float prev_x = lo, prev = fast::normal_cdf(lo);
    every_float(std::nextafter(lo, hi), hi, [&](float x) {
      const float c = fast::normal_cdf(x);
      ++checked;
      if (c < prev) {
        ++decreases;
        if (std::nextafter(std::nextafter(c, 1.0f), 1.0f) < prev)
          ADD_FAILURE() << "Φ(" << x << ") = " << c << " is more than 2 ulp below Φ(" << prev_x << ") = " << prev;
        if (std::fabs(x) >= 1.0f) ADD_FAILURE() << "Φ decreases at x = " << x << ", outside |x| < 1";
      }
      prev = c;
      prev_x = x;
    });
  };
  scan(-12.0f, -1.0f / 64);
  scan(1.0f / 64, 8.0f);
  std::printf("[fast::normal_cdf] %ld steps back (each <= 2 ulp) between %ld consecutive floats\n", decreases, checked);
}

TEST(FastNormalCdf, LimitsAndSymmetry) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(fast::normal_cdf(-inf), 0.0f);
  EXPECT_EQ(fast::normal_cdf(inf), 1.0f);
  EXPECT_EQ(fast::normal_cdf(-20.0f), 0.0f);  // Φ(-20) ≈ 2.8e-89, below the float range
  EXPECT_EQ(fast::normal_cdf(10.0f), 1.0f);
  EXPECT_NEAR(fast::normal_cdf(0.0f), 0.5f, 1e-7f);
  EXPECT_TRUE(std::isnan(fast::normal_cdf(std::numeric_limits<float>::quiet_NaN())));
  for (float x : {0.1f, 0.5f, 1.0f, 2.0f, 3.0f}) EXPECT_NEAR(fast::normal_cdf(x) + fast::normal_cdf(-x), 1.0f, 2e-7f) << x;
  for (double x : {-30.0, -5.0, 0.0, 1.5}) {  // libm's erfc; the argument rounds differently from x/√2
    const double exact = 0.5 * std::erfc(-x / kSqrt2);
    EXPECT_NEAR(fast::normal_cdf(x), exact, 1e-12 * exact) << x;
  }
}

// φ has no documented bound; its error is the float rounding of x² (relative (x²/2)·2^-24 per rounding)
// plus exp's 2 ulp, so the test allows a few ulps of each.
TEST(FastNormalPdf, RelativeErrorWithinFloatConditioning) {
  Worst w;
  long failures = 0;
  sweep(-12.0, 12.0, 2'000'000, [&](float x) {
    const double exact = exact_pdf(x);
    const double rel = std::fabs(fast::normal_pdf(x) - exact) / exact;
    w.add(rel, x);
    const double bound = 4.0 * std::ldexp(1.0, -24) * (2.0 + 0.5 * static_cast<double>(x) * x);
    if (!(rel <= bound) && failures++ < 5) ADD_FAILURE() << "x = " << x << ": relative error " << rel << " > " << bound;
  });
  std::printf("[fast::normal_pdf] worst relative error %.3g at x = %.9g\n", w.error, w.at);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(fast::normal_pdf(0.0), 0.39894228040143267794);
  EXPECT_EQ(fast::normal_pdf(-std::numeric_limits<float>::infinity()), 0.0f);
}

// GELU's backward takes Φ and φ from one call (one exp): the pair must equal the two separate functions
// bit for bit, so forward, backward and any other caller agree.
TEST(FastNormalCdfPdf, EqualsTheSeparateFunctionsExactly) {
  long mismatches = 0;
  sweep(-14.0, 14.0, 1'000'000, [&](float x) {
    const fast::CdfPdf<float> both = fast::normal_cdf_pdf(x);
    if ((both.cdf != fast::normal_cdf(x) || both.pdf != fast::normal_pdf(x)) && mismatches++ < 5)
      ADD_FAILURE() << "x = " << x << ": (" << both.cdf << ", " << both.pdf << ") vs (" << fast::normal_cdf(x)
                    << ", " << fast::normal_pdf(x) << ")";
  });
  EXPECT_EQ(mismatches, 0);
}
