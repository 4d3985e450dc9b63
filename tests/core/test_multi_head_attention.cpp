// multi_head_attention (the packed-qkv op) against the composition it replaces: narrow qkv into q, k, v,
// split the heads, scaled_dot_product_attention, merge the heads. Values and the gradient of qkv must
// agree, with and without dropout (same seed: the masks are drawn up front in (batch, head) order).
// grouped_query_attention the same way, its reference repeating each kv head for its group of query
// heads (Llama's repeat_kv), so the gradient of a shared kv head is the sum over its group.
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
  int64_t n_kv_head = 0;  // 0: n_head (multi_head_attention); else grouped_query_attention
  int64_t kv_heads() const { return n_kv_head == 0 ? n_head : n_kv_head; }
  int64_t width() const { return C + 2 * kv_heads() * (C / n_head); }
};

// qkv (B, T, C + 2 KV) -> (B, T, C), the readable reference.
Tensor composed(const Tensor& qkv, const Config& c, Generator* gen) {
  const int64_t hs = c.C / c.n_head, nkv = c.kv_heads(), KV = nkv * hs, group = c.n_head / nkv;
  // (B, T, heads·hs) at `column` -> (B, heads, T, hs)
  auto heads = [&](int64_t column, int64_t n) { return qkv.narrow(2, column, n * hs).reshape({c.B, c.T, n, hs}).transpose(1, 2); };
  // (B, nkv, T, hs) -> (B, n_head, T, hs): kv head j serves query heads j·group ... j·group + group − 1
  auto repeat_kv = [&](const Tensor& x) { return x.unsqueeze(2).expand({c.B, nkv, group, c.T, hs}).reshape({c.B, c.n_head, c.T, hs}); };
  Tensor y = scaled_dot_product_attention(heads(0, c.n_head), repeat_kv(heads(c.C, nkv)), repeat_kv(heads(c.C + KV, nkv)),
                                          c.scale, c.causal, c.dropout_p, true, gen);
  return y.transpose(1, 2).reshape({c.B, c.T, c.C});
}

Tensor fused(const Tensor& qkv, const Config& c, Generator* gen) {
  if (c.n_kv_head != 0) return grouped_query_attention(qkv, c.n_head, c.n_kv_head, c.scale, c.causal, c.dropout_p, true, gen);
  return multi_head_attention(qkv, c.n_head, c.scale, c.causal, c.dropout_p, true, gen);
}

struct Run {
  std::vector<double> out, grad;
};

Run run(const Config& c, DType dtype, bool use_fused) {
  Generator init(11);
  Tensor qkv = randn({c.B, c.T, c.width()}, init, dtype).set_requires_grad(true);
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
  std::printf("[packed attention vs composed] %s: output %.3g, grad %.3g\n", what.c_str(), dout, dgrad);
  EXPECT_LE(dout, tol) << what;
  EXPECT_LE(dgrad, tol) << what;
  // Every qkv element gets a gradient (none forgotten): at least one nonzero per q, k and v block.
  double q = 0, k = 0, v = 0;
  for (std::size_t i = 0; i < f.grad.size(); ++i) {
    const int64_t col = static_cast<int64_t>(i) % c.width(), KV = c.kv_heads() * (c.C / c.n_head);
    (col < c.C ? q : col < c.C + KV ? k : v) += std::fabs(f.grad[i]);
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

TEST(GroupedQueryAttention, EqualsRepeatedKvHeads) {
  expect_fused_equals_composed({2, 5, 16, 4, 0.5, true, 0.0, 2}, DType::Float64, 1e-12, "f64 causal 4 heads 2 kv");
  expect_fused_equals_composed({2, 5, 12, 3, 0.5, false, 0.0, 1}, DType::Float64, 1e-12, "f64 MQA not causal");
  expect_fused_equals_composed({2, 6, 24, 6, 0.4, true, 0.3, 3}, DType::Float64, 1e-12, "f64 dropout 6 heads 3 kv");
  expect_fused_equals_composed({2, 70, 64, 8, 0.25, true, 0.0, 2}, DType::Float32, 1e-5, "f32 causal 8 heads 2 kv");
  // n_kv_head == n_head is multi_head_attention exactly
  expect_fused_equals_composed({2, 5, 12, 3, 0.5, true, 0.0, 3}, DType::Float64, 1e-12, "f64 kv == heads");
}

TEST(GroupedQueryAttention, RefusesHeadsThatDoNotGroup) {
  Tensor qkv = zeros({1, 2, 24});
  EXPECT_THROW(grouped_query_attention(qkv, 4, 3, 0.5, true), std::invalid_argument);   // 3 does not divide 4
  EXPECT_THROW(grouped_query_attention(qkv, 4, 0, 0.5, true), std::invalid_argument);
  EXPECT_THROW(grouped_query_attention(zeros({1, 2, 25}), 4, 2, 0.5, true), std::invalid_argument);  // 25 % 8
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
