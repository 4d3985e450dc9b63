// multi_head_attention (the packed-qkv op) against the composition it replaces: narrow qkv into q, k, v,
// split the heads, scaled_dot_product_attention, merge the heads. Values and the gradient of qkv must
// agree, with and without dropout (same seed: the masks are drawn up front in (batch, head) order).
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

using namespace minitrain;

namespace {

struct Config {
  int64_t B, T, C, n_head;
  double scale;
  bool causal;
  double dropout_p;
};

// qkv (B, T, 3C) -> (B, T, C), the readable reference.
Tensor composed(const Tensor& qkv, const Config& c, Generator* gen) {
  const int64_t hs = c.C / c.n_head;
  auto heads = [&](int64_t part) { return qkv.narrow(2, part * c.C, c.C).reshape({c.B, c.T, c.n_head, hs}).transpose(1, 2); };
  Tensor y = scaled_dot_product_attention(heads(0), heads(1), heads(2), c.scale, c.causal, c.dropout_p, true, gen);
  return y.transpose(1, 2).reshape({c.B, c.T, c.C});
}

Tensor fused(const Tensor& qkv, const Config& c, Generator* gen) {
  return multi_head_attention(qkv, c.n_head, c.scale, c.causal, c.dropout_p, true, gen);
}

struct Run {
  std::vector<double> out, grad;
};

Run run(const Config& c, DType dtype, bool use_fused) {
  Generator init(11);
  Tensor qkv = randn({c.B, c.T, 3 * c.C}, init, dtype).set_requires_grad(true);
  Tensor upstream = randn({c.B, c.T, c.C}, init, dtype);
  Generator gen(2024);
  Tensor y = use_fused ? fused(qkv, c, &gen) : composed(qkv, c, &gen);
  EXPECT_EQ(y.shape(), (Shape{c.B, c.T, c.C}));
  y.backward(upstream);
  return {y.to_vector<double>(), qkv.grad().to_vector<double>()};
}

// max |a - b| / (1 + |b|)
double max_scaled_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]) / (1.0 + std::fabs(b[i])));
  return m;
}

void expect_fused_equals_composed(const Config& c, DType dtype, double tol, const std::string& what) {
  const Run f = run(c, dtype, true), r = run(c, dtype, false);
  ASSERT_EQ(f.out.size(), r.out.size());
  ASSERT_EQ(f.grad.size(), r.grad.size());
  const double dout = max_scaled_diff(f.out, r.out), dgrad = max_scaled_diff(f.grad, r.grad);
  std::printf("[multi_head_attention vs composed] %s: output %.3g, grad %.3g\n", what.c_str(), dout, dgrad);
  EXPECT_LE(dout, tol) << what;
  EXPECT_LE(dgrad, tol) << what;
  // Every qkv element gets a gradient (none forgotten): at least one nonzero per q, k and v block.
  double q = 0, k = 0, v = 0;
  for (std::size_t i = 0; i < f.grad.size(); ++i) {
    const int64_t col = static_cast<int64_t>(i) % (3 * c.C);
    (col < c.C ? q : col < 2 * c.C ? k : v) += std::fabs(f.grad[i]);
  }
  EXPECT_GT(q, 0) << what;
  EXPECT_GT(k, 0) << what;
  EXPECT_GT(v, 0) << what;
}

}  // namespace

TEST(MultiHeadAttention, EqualsComposedFloat64) {
  expect_fused_equals_composed({2, 5, 12, 3, 0.5, true, 0.0}, DType::Float64, 1e-12, "f64 causal 3 heads");
  expect_fused_equals_composed({2, 5, 12, 3, 0.5, false, 0.0}, DType::Float64, 1e-12, "f64 not causal 3 heads");
  expect_fused_equals_composed({3, 4, 8, 1, 0.35, true, 0.0}, DType::Float64, 1e-12, "f64 causal 1 head");
}

TEST(MultiHeadAttention, EqualsComposedFloat64WithDropout) {
  expect_fused_equals_composed({2, 5, 12, 3, 0.5, true, 0.3}, DType::Float64, 1e-12, "f64 causal dropout");
  expect_fused_equals_composed({2, 5, 12, 2, 0.5, false, 0.3}, DType::Float64, 1e-12, "f64 not causal dropout");
}

TEST(MultiHeadAttention, EqualsComposedFloat32) {
  expect_fused_equals_composed({2, 16, 32, 4, 0.25, true, 0.0}, DType::Float32, 1e-5, "f32 causal 4 heads");
  expect_fused_equals_composed({2, 16, 32, 4, 0.25, false, 0.0}, DType::Float32, 1e-5, "f32 not causal 4 heads");
}

TEST(MultiHeadAttention, EqualsComposedFloat32WithDropout) {
  expect_fused_equals_composed({2, 16, 32, 4, 0.25, true, 0.2}, DType::Float32, 1e-5, "f32 causal dropout");
}

// Not training (or p = 0): no generator needed, and the result does not depend on dropout_p.
TEST(MultiHeadAttention, EvaluationIgnoresDropout) {
  Generator init(5);
  Tensor qkv = randn({2, 4, 18}, init, DType::Float64);
  Tensor a = multi_head_attention(qkv, 3, 0.5, true, 0.5, /*training=*/false, nullptr);
  Tensor b = multi_head_attention(qkv, 3, 0.5, true, 0.0, /*training=*/true, nullptr);
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
}

// A non-contiguous qkv (a transposed view) gives the same values and the gradient in qkv's own shape.
TEST(MultiHeadAttention, NonContiguousInput) {
  Generator init(6);
  Tensor base = randn({4, 2, 18}, init, DType::Float64).set_requires_grad(true);
  Tensor view = base.transpose(0, 1);  // (2, 4, 18)
  ASSERT_FALSE(view.is_contiguous());
  Tensor upstream = randn({2, 4, 6}, init, DType::Float64);
  multi_head_attention(view, 3, 0.5, true).backward(upstream);
  Tensor base2 = base.detach().clone().set_requires_grad(true);
  multi_head_attention(base2.transpose(0, 1).contiguous(), 3, 0.5, true).backward(upstream);
  EXPECT_EQ(base.grad().shape(), (Shape{4, 2, 18}));
  EXPECT_EQ(base.grad().to_vector<double>(), base2.grad().to_vector<double>());
}
