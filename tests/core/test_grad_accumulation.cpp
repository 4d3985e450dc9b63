// Gradient accumulation now adds in place when nobody else holds the accumulated tensor or its storage
// (core/src/autograd.cpp add_in_place), for intermediate gradients and for leaf .grad(). These tests pin
// the values (against analytic gradients) and the aliasing rules: a handle the user holds to an old
// gradient, or a tensor the user passed in, is never modified; two leaves never share one gradient buffer
// (optimizers and clip_grad_norm write .grad() in place); and a matmul input stored transposed gets its
// gradient in its own layout.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace minitrain;

namespace {

Tensor leaf(std::vector<double> v, Shape s) { return from_vector(v, s).set_requires_grad(true); }

Tensor rnd(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g, DType::Float64);
}

void expect_values(const Tensor& t, const std::vector<double>& expected, double tol = 1e-12) {
  ASSERT_TRUE(t.defined());
  std::vector<double> v = t.to_vector<double>();
  ASSERT_EQ(v.size(), expected.size());
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], expected[i], tol) << "element " << i;
}

}  // namespace

// y = Σ(x·x + x + x) + (Σx)·(Σx): dy/dx_i = 2x_i + 2 + 2Σx.
TEST(GradAccumulation, TensorUsedSeveralTimes) {
  Tensor x = leaf({1.0, -2.0, 0.5}, {3});
  Tensor y = sum(x * x + x + x) + sum(x) * sum(x);
  y.backward();
  const double s = 1.0 - 2.0 + 0.5;
  expect_values(x.grad(), {2 * 1.0 + 2 + 2 * s, 2 * -2.0 + 2 + 2 * s, 2 * 0.5 + 2 + 2 * s});
}

// add's backward returns the same gradient tensor for both inputs; here both are the same leaf.
TEST(GradAccumulation, AddOfTheSameLeafTwice) {
  Tensor x = leaf({1.0, 2.0, 3.0}, {3});
  Tensor upstream = from_vector(std::vector<double>{0.5, -1.0, 2.0}, {3});
  (x + x).backward(upstream);
  expect_values(x.grad(), {1.0, -2.0, 4.0});
  expect_values(upstream, {0.5, -1.0, 2.0});  // the caller's tensor is untouched

  Tensor a = x, b = x;  // two handles to one leaf
  x.zero_grad();
  (a + b).backward(upstream);
  expect_values(x.grad(), {1.0, -2.0, 4.0});
}

// A reused intermediate: h = 2x; y = h·h + h + h -> dy/dx = (2h + 2)·2.
TEST(GradAccumulation, ReusedIntermediate) {
  Tensor x = leaf({1.0, -0.5}, {2});
  Tensor h = x * 2.0;
  Tensor upstream = from_vector(std::vector<double>{1.0, 3.0}, {2});
  (h * h + h + h).backward(upstream);
  expect_values(x.grad(), {(2 * 2.0 + 2) * 2 * 1.0, (2 * -1.0 + 2) * 2 * 3.0});
  // Several sums into one intermediate gradient, with the upstream gradient reaching h by add's
  // pass-through on every path.
  Tensor z = leaf({0.25, 4.0}, {2});
  Tensor w = z + 0.0;
  (((w + w) + (w + w)) + w).backward(upstream);
  expect_values(z.grad(), {5.0, 15.0});
}

// y = a + b with two different leaves: both get the upstream gradient, each in its own buffer.
TEST(GradAccumulation, AddOfTwoDistinctLeaves) {
  Tensor a = leaf({1.0, 2.0}, {2}), b = leaf({3.0, 4.0}, {2});
  Tensor upstream = from_vector(std::vector<double>{0.5, -1.5}, {2});
  (a + b).backward(upstream);
  expect_values(a.grad(), {0.5, -1.5});
  expect_values(b.grad(), {0.5, -1.5});
  // A second backward accumulates into both.
  (a + b).backward(upstream);
  expect_values(a.grad(), {1.0, -3.0});
  expect_values(b.grad(), {1.0, -3.0});
  expect_values(upstream, {0.5, -1.5});
}

// Leaf gradients are written in place by the optimizers and by clip_grad_norm ("contiguous buffers owned
// by the parameter"): two leaves must never share one, and a leaf's gradient must not be the tensor the
// caller passed to backward.
TEST(GradAccumulation, LeavesNeverShareAGradientBuffer) {
  // add's backward hands one tensor to both inputs, and here that tensor is the caller's `upstream`: the
  // engine must copy it for each leaf (this once left a.grad(), b.grad() and upstream as one buffer).
  Tensor a = leaf({1.0, 2.0}, {2}), b = leaf({3.0, 4.0}, {2});
  Tensor upstream = from_vector(std::vector<double>{0.5, -1.5}, {2});
  (a + b).backward(upstream);
  ASSERT_TRUE(a.grad().defined() && b.grad().defined());
  EXPECT_NE(a.grad().data<double>(), b.grad().data<double>()) << "a.grad() and b.grad() share one buffer";
  EXPECT_NE(a.grad().data<double>(), upstream.data<double>()) << "a.grad() is the caller's upstream tensor";
  EXPECT_NE(b.grad().data<double>(), upstream.data<double>()) << "b.grad() is the caller's upstream tensor";
  // What an in-place gradient clip does: scale a's gradient. b's gradient and the upstream stay.
  a.grad().data<double>()[0] *= 10.0;
  expect_values(a.grad(), {5.0, -1.5});
  expect_values(b.grad(), {0.5, -1.5});
  expect_values(upstream, {0.5, -1.5});
}

// The user holds p.grad() from the first backward: the second backward must not add into it in place.
TEST(GradAccumulation, HeldGradientHandleKeepsItsValue) {
  Tensor p = leaf({1.0, 2.0, 3.0}, {3});
  sum(p * 3.0).backward();
  Tensor held = p.grad();
  Tensor held_view = p.grad().reshape({3, 1});  // another TensorImpl on the same storage
  sum(p * p).backward();                         // + 2p
  expect_values(held, {3.0, 3.0, 3.0});
  expect_values(held_view, {3.0, 3.0, 3.0});
  expect_values(p.grad(), {5.0, 7.0, 9.0});
  EXPECT_NE(p.grad().data<double>(), held.data<double>());
  // A third backward while still holding the old handle.
  sum(p).backward();
  expect_values(held, {3.0, 3.0, 3.0});
  expect_values(p.grad(), {6.0, 8.0, 10.0});
}

TEST(GradAccumulation, HeldDetachedGradientKeepsItsValue) {
  Tensor p = leaf({1.0, -1.0}, {2});
  sum(p * 2.0).backward();
  Tensor held = p.grad().detach();
  sum(p * 5.0).backward();
  expect_values(held, {2.0, 2.0});
  expect_values(p.grad(), {7.0, 7.0});
}

// Nobody holds the old gradient: accumulation reuses its buffer (the point of add_in_place), and the
// values are still the sums.
TEST(GradAccumulation, UnheldGradientIsAccumulatedInPlace) {
  Tensor p = rnd({64, 32}, 1).set_requires_grad(true);
  Tensor r1 = rnd({64, 32}, 2), r2 = rnd({64, 32}, 3);
  (p * 1.0).backward(r1 * 1.0);
  const double* first = p.grad().data<double>();
  (p * 2.0).backward(r2 * 1.0);
  EXPECT_EQ(p.grad().data<double>(), first);
  std::vector<double> g = p.grad().to_vector<double>(), a = r1.to_vector<double>(), b = r2.to_vector<double>();
  for (std::size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], a[i] + 2 * b[i], 1e-12) << i;
}

// Leaf gradients arrive as contiguous buffers in the leaf's layout even when the leaf was used
// transposed in a matmul (as Linear uses its weight); values are the explicit formulas.
TEST(GradAccumulation, MatmulGradientOfATransposedLeafHasTheLeafsLayout) {
  const int64_t n = 5, k = 4, m = 3;
  Tensor x = rnd({n, k}, 4).set_requires_grad(true);
  Tensor w = rnd({m, k}, 5).set_requires_grad(true);  // used as wᵀ (k, m)
  Tensor r = rnd({n, m}, 6);
  matmul(x, w.transpose(0, 1)).backward(r);
  ASSERT_EQ(w.grad().shape(), (Shape{m, k}));
  EXPECT_TRUE(w.grad().is_contiguous());
  EXPECT_EQ(w.grad().strides(), (Shape{k, 1}));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) {
      double e = 0;  // dW[i][j] = Σ_t r[t][i]·x[t][j]
      for (int64_t t = 0; t < n; ++t) e += r.at({t, i}) * x.at({t, j});
      EXPECT_NEAR(w.grad().at({i, j}), e, 1e-12) << i << "," << j;
    }
  EXPECT_TRUE(x.grad().is_contiguous());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      double e = 0;  // dX[t][j] = Σ_i r[t][i]·w[i][j]
      for (int64_t i = 0; i < m; ++i) e += r.at({t, i}) * w.at({i, j});
      EXPECT_NEAR(x.grad().at({t, j}), e, 1e-12) << t << "," << j;
    }
  // The first operand stored transposed: a (k, n) leaf used as aᵀ (n, k).
  Tensor a = rnd({k, n}, 7).set_requires_grad(true);
  Tensor b = rnd({k, m}, 8).set_requires_grad(true);
  matmul(a.transpose(0, 1), b).backward(r);
  ASSERT_EQ(a.grad().shape(), (Shape{k, n}));
  EXPECT_EQ(a.grad().strides(), (Shape{n, 1}));
  for (int64_t j = 0; j < k; ++j)
    for (int64_t t = 0; t < n; ++t) {
      double e = 0;  // d(aᵀ)[t][j] = Σ_i r[t][i]·b[j][i]
      for (int64_t i = 0; i < m; ++i) e += r.at({t, i}) * b.at({j, i});
      EXPECT_NEAR(a.grad().at({j, t}), e, 1e-12) << j << "," << t;
    }
}

// GELU's backward writes its result over the incoming gradient when the engine holds the only handle to
// it (core/src/elementwise.cpp). The caller's upstream tensor is never that buffer; an intermediate
// gradient is, and both paths give the analytic value g·(Φ(x) + x·φ(x)).
TEST(GradAccumulation, GeluOverwritesOnlyAGradientNobodyElseHolds) {
  auto dgelu = [](double x) {
    return 0.5 * std::erfc(-x / std::sqrt(2.0)) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
  };
  for (DType dtype : {DType::Float64, DType::Float32}) {
    const double tol = dtype == DType::Float64 ? 1e-12 : 2e-6;
    Tensor x = rnd({300}, 4).to(dtype).detach().set_requires_grad(true);
    const Tensor upstream = rnd({300}, 5).to(dtype);
    const std::vector<double> up = upstream.to_vector<double>(), xv = x.to_vector<double>();
    gelu(x).backward(upstream);  // the caller holds `upstream`: it must not be overwritten
    expect_values(upstream, up, 0.0);
    std::vector<double> expected(xv.size());
    for (std::size_t i = 0; i < xv.size(); ++i) expected[i] = up[i] * dgelu(xv[i]);
    expect_values(x.grad(), expected, tol);
    // Through mul, GELU's incoming gradient is a fresh buffer only the engine holds: overwritten in place.
    x.zero_grad();
    sum(gelu(x) * upstream).backward();
    expect_values(x.grad(), expected, tol);
  }
}
