// The attention scale c must reach the scores on every path: softmax(c·q·kᵀ)·v is softmax((c·q)·kᵀ)·v, so
// attention with scale c must equal attention with scale 1 on queries multiplied by c, in value and in
// gradient (dL/dk and dL/dv equal; dL/dq = c · dL/d(c·q) by the chain rule). Checked in float64 for the
// functional kernels, for MultiHeadAttention on each path (fused, composed, each with and without the KV
// cache) and for the GPT built on it, whose equivalent has W_q and b_q multiplied by c in every block.
// A path that ignores or mis-applies the scale (drops it, squares it, uses 1/sqrt(d_k) instead) fails.
#include "test_util.h"

#include <minitrain/nn/attention.h>
#include <minitrain/nn/gpt.h>

#include <gtest/gtest.h>

using namespace minitrain;
using namespace minitrain::nn;
using nn_test::max_abs_diff;
using nn_test::rnd;

namespace {

constexpr double kTol = 1e-12;
// Far from 1/sqrt(head size) = 0.5 and from 1, so a path that falls back to either is caught.
constexpr double kScale = 0.37;

struct Leaves {
  Tensor q, k, v;
};

Leaves leaves(uint64_t seed, int64_t tq = 5, int64_t tk = 5) {
  Leaves l{rnd({2, 3, tq, 4}, seed), rnd({2, 3, tk, 4}, seed + 1), rnd({2, 3, tk, 4}, seed + 2)};
  for (Tensor* t : {&l.q, &l.k, &l.v}) t->set_requires_grad(true);
  return l;
}

using AttentionFn = std::function<Tensor(const Tensor&, const Tensor&, const Tensor&, double)>;

void expect_scale_equals_scaled_queries(const AttentionFn& attend, int64_t tq, int64_t tk) {
  Leaves a = leaves(11, tq, tk), b = leaves(11, tq, tk);
  Tensor grad_out = rnd({2, 3, tq, 4}, 99);
  Tensor ya = attend(a.q, a.k, a.v, kScale);
  Tensor yb = attend(mul(b.q, kScale), b.k, b.v, 1.0);
  EXPECT_LT(max_abs_diff(ya, yb), kTol);
  ya.backward(grad_out);
  yb.backward(grad_out);
  EXPECT_LT(max_abs_diff(a.q.grad(), b.q.grad()), kTol);  // b.q's gradient already carries the factor c
  EXPECT_LT(max_abs_diff(a.k.grad(), b.k.grad()), kTol);
  EXPECT_LT(max_abs_diff(a.v.grad(), b.v.grad()), kTol);
  // And the scale matters at all here: scale 1 on the unscaled queries gives something else.
  Leaves c = leaves(11, tq, tk);
  EXPECT_GT(max_abs_diff(attend(c.q, c.k, c.v, 1.0), ya), 1e-3);
}

AttentionOptions options(double scale, bool causal = true) {
  AttentionOptions o;
  o.n_embd = 12;
  o.n_head = 3;
  o.causal = causal;
  o.scale = scale;
  return o;
}

// Multiplies the query rows of a packed c_attn (weight (3C, C), bias (3C)) by `factor`.
void scale_query_projection(Linear& c_attn, int64_t C, double factor) {
  NoGradGuard no_grad;
  for (Tensor p : {c_attn.weight, c_attn.bias}) {
    if (!p.defined()) continue;
    Tensor rows = p.narrow(0, 0, C);
    rows.copy_(mul(rows.detach(), factor));
  }
}

void copy_parameters(const Module& from, Module& to) { to.load_state_dict(from.state_dict()); }

// Runs x through `attn` (optionally in two cached steps) and returns (output, dL/dx, dL/dc_attn.weight).
struct PathRun {
  Tensor y, dx, dw;
};
PathRun run(MultiHeadAttention& attn, const Tensor& x_in, bool cached) {
  Tensor x = x_in.detach().clone().set_requires_grad(true);
  Tensor y;
  if (cached) {  // positions 0..2, then 3..5 against the cached keys
    KVCache cache;
    Tensor first = attn(x.narrow(1, 0, 3), &cache);
    y = cat({first, attn(x.narrow(1, 3, 3), &cache)}, 1);
  } else {
    y = attn(x);
  }
  sum(mul(y, rnd(y.shape(), 5))).backward();
  return {y, x.grad(), attn.c_attn->weight.grad()};
}

}  // namespace

TEST(AttentionScale, FusedKernelAppliesTheScale) {
  expect_scale_equals_scaled_queries(
      [](auto q, auto k, auto v, double s) { return scaled_dot_product_attention(q, k, v, s, true); }, 5, 5);
  expect_scale_equals_scaled_queries(
      [](auto q, auto k, auto v, double s) { return scaled_dot_product_attention(q, k, v, s, false); }, 3, 6);
}

TEST(AttentionScale, ComposedStepsApplyTheScale) {
  expect_scale_equals_scaled_queries(
      [](auto q, auto k, auto v, double s) { return composed_attention(q, k, v, s, true); }, 5, 5);
  expect_scale_equals_scaled_queries(
      [](auto q, auto k, auto v, double s) { return composed_attention(q, k, v, s, true); }, 2, 6);  // as cached
}

TEST(AttentionScale, PackedMultiHeadKernelAppliesTheScale) {
  // multi_head_attention reads q, k, v from one (B, T, 3C) tensor: scaling the q third by c and using
  // scale 1 must give the same output and the same k/v part of the gradient.
  const int64_t C = 12;
  Tensor qkv_a = rnd({2, 5, 3 * C}, 21), qkv_b = rnd({2, 5, 3 * C}, 21);
  qkv_a.set_requires_grad(true);
  qkv_b.set_requires_grad(true);
  Tensor factor = cat({full({C}, kScale, DType::Float64), ones({2 * C}, DType::Float64)}, 0);
  Tensor ya = multi_head_attention(qkv_a, 3, kScale, true);
  Tensor yb = multi_head_attention(mul(qkv_b, factor), 3, 1.0, true);
  EXPECT_LT(max_abs_diff(ya, yb), kTol);
  Tensor g = rnd(ya.shape(), 7);
  ya.backward(g);
  yb.backward(g);
  EXPECT_LT(max_abs_diff(qkv_a.grad(), qkv_b.grad()), kTol);
  EXPECT_GT(max_abs_diff(multi_head_attention(qkv_a.detach(), 3, 1.0, true), ya), 1e-3);
}

TEST(AttentionScale, EveryModulePathAppliesTheScale) {
  const int64_t C = 12;
  const Tensor x = rnd({2, 6, C}, 3);
  for (AttentionPath path : {AttentionPath::Fused, AttentionPath::Composed}) {
    for (bool cached : {false, true}) {
      SCOPED_TRACE(std::string(path == AttentionPath::Fused ? "fused" : "composed") + (cached ? ", cached" : ""));
      MultiHeadAttention scaled(options(kScale)), unit(options(1.0));
      scaled.to(DType::Float64);
      unit.to(DType::Float64);
      nn_test::perturb_parameters(scaled, 8, 0.3);
      copy_parameters(scaled, unit);
      scale_query_projection(*unit.c_attn, C, kScale);
      scaled.path = unit.path = path;
      const PathRun a = run(scaled, x, cached), b = run(unit, x, cached);
      EXPECT_LT(max_abs_diff(a.y, b.y), kTol);
      EXPECT_LT(max_abs_diff(a.dx, b.dx), kTol);
      // dL/dW_q with scale c is c · dL/dW'_q of the scale-1 module (W'_q = c·W_q); k and v rows are equal.
      EXPECT_LT(max_abs_diff(a.dw.narrow(0, 0, C), mul(b.dw.narrow(0, 0, C), kScale)), kTol);
      EXPECT_LT(max_abs_diff(a.dw.narrow(0, C, 2 * C), b.dw.narrow(0, C, 2 * C)), kTol);
    }
  }
}

TEST(AttentionScale, TheGptPassesItsScaleToEveryLayer) {
  GPTConfig config;
  config.block_size = 8, config.vocab_size = 11, config.n_layer = 2, config.n_head = 2, config.n_embd = 8;
  GPTConfig unit_config = config;
  config.attention_scale = kScale;
  unit_config.attention_scale = 1.0;
  GPT scaled(config), unit(unit_config);
  scaled.to(DType::Float64);
  unit.to(DType::Float64);
  nn_test::perturb_parameters(scaled, 4, 0.2);
  copy_parameters(scaled, unit);
  for (int64_t i = 0; i < config.n_layer; ++i) scale_query_projection(*(*unit.h)[static_cast<std::size_t>(i)]->attn->c_attn, config.n_embd, kScale);
  const Tensor idx = nn_test::random_ids({2, 8}, 11, 6), targets = nn_test::random_ids({2, 8}, 11, 7);
  for (AttentionPath path : {AttentionPath::Fused, AttentionPath::Composed}) {
    scaled.set_attention_path(path);
    unit.set_attention_path(path);
    EXPECT_LT(max_abs_diff(scaled(idx), unit(idx)), kTol);
    EXPECT_NEAR(scaled.loss(idx, targets).item(), unit.loss(idx, targets).item(), kTol);
    std::vector<KVCache> ca(2), cb(2);
    EXPECT_LT(max_abs_diff(scaled.forward_cached(idx, ca), unit.forward_cached(idx, cb)), kTol);
  }
  GPTConfig default_config = config;
  default_config.attention_scale = std::numeric_limits<double>::quiet_NaN();
  GPT standard(default_config);
  standard.to(DType::Float64);
  copy_parameters(scaled, standard);
  EXPECT_GT(max_abs_diff(standard(idx), scaled(idx)), 1e-6);  // the scale changes the logits at all
}
