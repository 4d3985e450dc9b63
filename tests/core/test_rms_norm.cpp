// rms_norm: the fused kernel against its composed reference (mul, rsqrt, mean: the readable definition) in
// value and in every gradient, float32 and float64, on odd sizes that leave partial row blocks and odd
// vector tails; its bad-input errors. The float64 finite-difference checks are in test_gradcheck_ops.cpp.
#include "expect_error.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <string>
#include <vector>

using namespace minitrain;
using test::expect_error;

namespace {

// The definition, op by op: x · rsqrt(mean(x², last dim) + eps) (· weight).
Tensor composed_rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  Tensor y = mul(x, rsqrt(add(mean(mul(x, x), {-1}, true), eps)));
  return weight.defined() ? mul(y, weight) : y;
}

// max |a − b| / max |b|: the error relative to the tensor's largest value (absolute for an all-zero b).
double scaled_error(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  EXPECT_EQ(x.size(), y.size());
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
    worst = std::max(worst, std::fabs(x[i] - y[i]));
    scale = std::max(scale, std::fabs(y[i]));
  }
  return scale > 0 ? worst / scale : worst;
}

struct Results {
  Tensor y, dx, dw;
};

Results run(bool fused, const Tensor& x0, const Tensor& w0, const Tensor& up, double eps) {
  Tensor x = x0.clone().detach().set_requires_grad(true);
  Tensor w = w0.defined() ? w0.clone().detach().set_requires_grad(true) : Tensor();
  Tensor y = fused ? rms_norm(x, w, eps) : composed_rms_norm(x, w, eps);
  y.backward(up);
  return {y.detach(), x.grad(), w.defined() ? w.grad() : Tensor()};
}

void expect_fused_equals_composed(const Shape& shape, bool with_weight, DType dtype, double eps, double limit,
                                  uint64_t seed, double x_scale = 1.0) {
  Generator g(seed);
  const int64_t width = shape.back();
  const Tensor x = mul(randn(shape, g, dtype), x_scale);
  const Tensor w = with_weight ? add(randn({width}, g, dtype), 1.0) : Tensor();
  const Tensor up = randn(shape, g, dtype);
  const Results fused = run(true, x, w, up, eps), composed = run(false, x, w, up, eps);
  const std::string what = shape_str(shape) + (with_weight ? " weight " : " no weight ") + dtype_name(dtype);
  EXPECT_LT(scaled_error(fused.y, composed.y), limit) << what << " y";
  EXPECT_LT(scaled_error(fused.dx, composed.dx), limit) << what << " dx";
  if (with_weight) {
    EXPECT_LT(scaled_error(fused.dw, composed.dw), limit) << what << " dw";
  }
}

}  // namespace

TEST(RmsNorm, FusedEqualsComposedForwardAndBackward) {
  // Widths 3, 37 and 131 (odd vector tails), 97 rows (three full blocks of 32 and a partial one). Width 1
  // with a large eps: with a small one, y = x/|x| and dx is a cancellation to ~0 in both.
  const std::vector<std::pair<Shape, double>> cases = {{{5, 1}, 0.3}, {{4, 3}, 1e-6}, {{3, 5, 37}, 1e-6}, {{97, 131}, 1e-6}, {{37}, 1e-6}};
  uint64_t seed = 1;
  for (DType dtype : {DType::Float64, DType::Float32}) {
    const double limit = dtype == DType::Float64 ? 1e-13 : 2e-6;
    for (const auto& [shape, eps] : cases)
      for (bool with_weight : {true, false}) expect_fused_equals_composed(shape, with_weight, dtype, eps, limit, ++seed);
  }
}

TEST(RmsNorm, EpsMattersWhereMeanSquareIsSmall) {
  // Rows of scale 1e-3 (mean square 1e-6, the size of eps): a dropped or misplaced eps changes y by ~30%.
  for (DType dtype : {DType::Float64, DType::Float32})
    for (bool with_weight : {true, false})
      expect_fused_equals_composed({6, 23}, with_weight, dtype, 1e-6, dtype == DType::Float64 ? 1e-13 : 2e-6, 40, 1e-3);
}

TEST(RmsNorm, LargeRowsFloat32FollowFloat64) {
  // Rows of magnitude 1e4 and width 16384: their sum of squares (~1.6e12) accumulated in float32 is off by
  // ~3e-5 relative (y, dx, dw off by ~1.7e-5: measured); accumulated in double, the float32 results are
  // within about one float32 ulp of the float64 ones (~1.4e-7 of the largest value, measured).
  Generator g(3);
  const Tensor x = add(randn({8, 16384}, g, DType::Float64), 1e4);
  const Tensor w = add(randn({16384}, g, DType::Float64), 1.0), up = randn({8, 16384}, g, DType::Float64);
  const Results f64 = run(true, x, w, up, 1e-6);
  const Results f32 = run(true, x.to(DType::Float32), w.to(DType::Float32), up.to(DType::Float32), 1e-6);
  std::cout << "[rms_norm] float32 vs float64 on rows of 1e4: y " << scaled_error(f32.y, f64.y) << ", dx "
            << scaled_error(f32.dx, f64.dx) << ", dw " << scaled_error(f32.dw, f64.dw) << "\n";
  EXPECT_LT(scaled_error(f32.y, f64.y), 5e-7);
  EXPECT_LT(scaled_error(f32.dx, f64.dx), 5e-7);
  EXPECT_LT(scaled_error(f32.dw, f64.dw), 5e-7);
}

TEST(RmsNorm, ValuesOfAWorkedRow) {
  // x = (3, 4): mean square 12.5, rms sqrt(12.5); with weight (2, 0.5), eps 0.
  const Tensor y = rms_norm(from_vector(std::vector<double>{3, 4}, {1, 2}), from_vector(std::vector<double>{2, 0.5}, {2}), 0.0);
  const double rms = std::sqrt(12.5);
  EXPECT_NEAR(y.at({0, 0}), 6 / rms, 1e-15);
  EXPECT_NEAR(y.at({0, 1}), 2 / rms, 1e-15);
}

TEST(RmsNorm, EmptyRowsAndZeroRows) {
  // No rows, or rows of width 0: an empty result of the same shape. A row of zeros with eps > 0: zeros.
  EXPECT_EQ(rms_norm(zeros({0, 4}), ones({4}), 1e-6).shape(), (Shape{0, 4}));
  EXPECT_EQ(rms_norm(zeros({3, 0}), Tensor(), 1e-6).shape(), (Shape{3, 0}));
  for (double v : rms_norm(zeros({2, 5}, DType::Float64), Tensor(), 1e-6).to_vector<double>()) EXPECT_EQ(v, 0.0);
}

TEST(RmsNorm, BadInputIsOneLineNamingTheOpAndTheShapes) {
  expect_error([] { rms_norm(zeros({2, 4}), zeros({3}), 1e-6); }, {"rms_norm", "weight", "[3]", "[2,4]"});
  expect_error([] { rms_norm(zeros({2, 4}), zeros({2, 4}), 1e-6); }, {"rms_norm", "weight", "[2,4]"});
  expect_error([] { rms_norm(scalar_tensor(1.0), Tensor(), 1e-6); }, {"rms_norm", "at least one dim", "[]"});
  expect_error([] { rms_norm(zeros({2, 4}), zeros({4}, DType::Float64), 1e-6); },
               {"rms_norm", "weight [4] is float64", "input [2,4] is float32"});
  expect_error([] { rms_norm(zeros({2, 4}, DType::Int64), Tensor(), 1e-6); }, {"rms_norm", "int64"});
  expect_error([] { rms_norm(zeros({2, 4}), Tensor(), -1.0); }, {"rms_norm", "eps", "-1"});
  expect_error([] { rms_norm(zeros({2, 4}), Tensor(), NAN); }, {"rms_norm", "eps", "nan"});
}
