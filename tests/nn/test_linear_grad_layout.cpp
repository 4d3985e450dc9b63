// Linear computes x·Wᵀ with W (out, in) stored as a transposed view; its weight gradient must still arrive
// as a contiguous (out, in) buffer (the optimizers and clip_grad_norm walk .grad() as a flat buffer) equal
// to the explicit formula dW = Σ_rows upstreamᵀ·x, also after accumulating over two backward calls.
#include "test_util.h"

#include <minitrain/nn/layers.h>

#include <gtest/gtest.h>

using namespace minitrain;
using namespace minitrain::nn_test;

namespace {

// dW[o][i] = Σ_r up[r][o]·x[r][i] and db[o] = Σ_r up[r][o] over the flattened rows.
void expected_grads(const Tensor& x2, const Tensor& up2, std::vector<double>& dw, std::vector<double>& db) {
  const int64_t rows = x2.size(0), in = x2.size(1), out = up2.size(1);
  dw.assign(static_cast<std::size_t>(out * in), 0.0);
  db.assign(static_cast<std::size_t>(out), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      db[o] += up2.at({r, o});
      for (int64_t i = 0; i < in; ++i) dw[o * in + i] += up2.at({r, o}) * x2.at({r, i});
    }
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " " << i;
}

void check_linear(DType dtype, double tol) {
  Generator init(3);
  nn::Linear lin(5, 3, /*bias=*/true, &init);
  lin.to(dtype);
  Tensor x = rnd({2, 4, 5}, 10, 1.0, dtype), up = rnd({2, 4, 3}, 11, 1.0, dtype);
  lin.forward(x).backward(up);
  Tensor dw = lin.weight.grad();
  ASSERT_TRUE(dw.defined());
  EXPECT_EQ(dw.shape(), (Shape{3, 5}));
  EXPECT_TRUE(dw.is_contiguous());
  EXPECT_EQ(dw.strides(), (Shape{5, 1}));
  EXPECT_TRUE(lin.bias.grad().is_contiguous());
  std::vector<double> want_dw, want_db;
  expected_grads(x.reshape({8, 5}), up.reshape({8, 3}), want_dw, want_db);
  expect_near(dw.to_vector<double>(), want_dw, tol, "dW");
  expect_near(lin.bias.grad().to_vector<double>(), want_db, tol, "db");

  // A second backward accumulates: still contiguous, twice the formula.
  lin.forward(x).backward(up);
  EXPECT_TRUE(lin.weight.grad().is_contiguous());
  for (double& v : want_dw) v *= 2;
  expect_near(lin.weight.grad().to_vector<double>(), want_dw, tol, "dW accumulated");
}

}  // namespace

TEST(LinearGradLayout, WeightGradIsContiguousAndExactFloat64) { check_linear(DType::Float64, 1e-12); }
TEST(LinearGradLayout, WeightGradIsContiguousAndExactFloat32) { check_linear(DType::Float32, 1e-5); }

TEST(LinearGradLayout, WithoutBiasAnd2DInput) {
  Generator init(4);
  nn::Linear lin(6, 4, /*bias=*/false, &init);
  lin.to(DType::Float64);
  Tensor x = rnd({7, 6}, 12), up = rnd({7, 4}, 13);
  lin.forward(x).backward(up);
  EXPECT_TRUE(lin.weight.grad().is_contiguous());
  std::vector<double> want_dw, want_db;
  expected_grads(x, up, want_dw, want_db);
  expect_near(lin.weight.grad().to_vector<double>(), want_dw, 1e-12, "dW");
}
