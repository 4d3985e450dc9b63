// Attention masks and cross-attention: the fused kernel (scaled_dot_product_attention with a mask) equals
// the composed ops in values and gradients for every kind of mask; fully masked query rows give zeros and
// finite (zero) gradients; MultiHeadAttention's conventions (attn_mask true = take part, key_padding_mask
// true = ignored, causal off by default) hold on both paths; every mask combination of the module passes
// a float64 gradient check. The torch comparison is in tests/parity/test_sdpa_parity.cpp.
#include "test_util.h"

#include <minitrain/core/gradcheck.h>
#include <minitrain/nn/attention.h>

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>

using namespace minitrain;
using namespace minitrain::nn_test;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

bool all_finite(const Tensor& t) {
  for (double v : t.to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}

Tensor bools(std::vector<bool> values, const Shape& shape) { return from_vector(values, shape); }

// One mask case of the op-level comparison: q (B, H, Tq, D), k/v (B, H, Tk, D).
struct MaskCase {
  std::string name;
  int64_t tq, tk;
  bool causal;
  Tensor mask;                 // undefined, bool, or float64
  std::vector<int64_t> dead;   // flat (b·H + h)·Tq + i indices of query rows with every key masked
};

std::vector<MaskCase> mask_cases() {
  const int64_t B = 2, H = 2;
  auto rows_of_batch = [&](int64_t b, int64_t tq) {  // every row of batch element b
    std::vector<int64_t> r;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < tq; ++i) r.push_back((b * H + h) * tq + i);
    return r;
  };
  auto row_everywhere = [&](int64_t i, int64_t tq) {  // query row i of every slice
    std::vector<int64_t> r;
    for (int64_t s = 0; s < B * H; ++s) r.push_back(s * tq + i);
    return r;
  };
  std::vector<MaskCase> c;
  c.push_back({"no_mask_cross_lengths", 3, 5, false, Tensor(), {}});
  c.push_back({"bool_2d_row1_dead", 3, 5, false, bools({1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1}, {3, 5}),
               row_everywhere(1, 3)});
  c.push_back({"key_padding_batch1_all_padded", 3, 4, false, bools({1, 1, 1, 0, 0, 0, 0, 0}, {2, 1, 1, 4}),
               rows_of_batch(1, 3)});
  c.push_back({"bool_and_causal_row0_dead", 4, 4, true,
               bools({0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1}, {4, 4}), row_everywhere(0, 4)});
  c.push_back({"float_finite_per_head", 3, 5, false, rnd({1, 2, 3, 5}, 40), {}});
  c.push_back({"float_inf_and_causal", 3, 3, true,
               from_vector(std::vector<double>{0.5, -kInf, -1, -kInf, -kInf, -kInf, 2, 0, -kInf}, {3, 3}),
               row_everywhere(1, 3)});
  c.push_back({"query_rows_off_column_broadcast", 3, 4, false, bools({1, 0, 1, 0, 1, 1}, {2, 1, 3, 1}),
               {1, 4, 3 * 2 + 0, 3 * 3 + 0}});
  c.push_back({"causal_more_queries_than_keys", 5, 3, true, Tensor(), row_everywhere(0, 5)});
  // row_everywhere(0) above: with bottom-right alignment, query 0 of 5 over 3 keys sees j <= -2: nothing;
  // query 1 sees j <= -1: nothing as well.
  for (std::size_t s = 0; s < 4; ++s) c.back().dead.push_back(static_cast<int64_t>(s) * 5 + 1);
  return c;
}

struct Result {
  Tensor out;
  std::vector<Tensor> grads;  // q, k, v (and the float mask)
};

Result run(const MaskCase& c, bool fused) {
  const int64_t B = 2, H = 2, D = 3;
  std::vector<Tensor> in{rnd({B, H, c.tq, D}, 41).set_requires_grad(true), rnd({B, H, c.tk, D}, 42).set_requires_grad(true),
                         rnd({B, H, c.tk, D}, 43).set_requires_grad(true)};
  Tensor mask = c.mask;
  if (mask.defined() && mask.dtype() == DType::Float64) {
    mask = mask.clone().set_requires_grad(true);
    in.push_back(mask);
  }
  const double scale = 0.6;
  Tensor out = fused ? scaled_dot_product_attention(in[0], in[1], in[2], mask, scale, c.causal)
                     : nn::composed_attention(in[0], in[1], in[2], mask, scale, c.causal);
  out.backward(rnd(out.shape(), 44));
  Result r{out.detach(), {}};
  for (const Tensor& t : in) r.grads.push_back(t.grad().defined() ? t.grad() : zeros_like(t));
  return r;
}

}  // namespace

TEST(AttentionMasks, FusedKernelEqualsComposedOpsForEveryMask) {
  for (const MaskCase& c : mask_cases()) {
    SCOPED_TRACE(c.name);
    const Result f = run(c, true), p = run(c, false);
    EXPECT_TRUE(all_finite(f.out) && all_finite(p.out));
    EXPECT_LT(max_abs_diff(f.out, p.out), 1e-12);
    ASSERT_EQ(f.grads.size(), p.grads.size());
    double worst = 0;
    for (std::size_t k = 0; k < f.grads.size(); ++k) {
      EXPECT_TRUE(all_finite(f.grads[k]) && all_finite(p.grads[k])) << "grad " << k;
      worst = std::max(worst, max_abs_diff(f.grads[k], p.grads[k]));
    }
    EXPECT_LT(worst, 1e-12);
    std::cout << "[fused vs composed] " << c.name << ": grads " << worst << "\n";
    // Fully masked rows: zero output and zero gradient for that query, on both paths.
    const int64_t D = 3;
    const std::vector<double> of = f.out.to_vector<double>(), dqf = f.grads[0].to_vector<double>(),
                              dqp = p.grads[0].to_vector<double>();
    for (int64_t row : c.dead)
      for (int64_t d = 0; d < D; ++d) {
        EXPECT_EQ(of[static_cast<std::size_t>(row * D + d)], 0.0) << "row " << row;
        EXPECT_EQ(dqf[static_cast<std::size_t>(row * D + d)], 0.0) << "row " << row;
        EXPECT_EQ(dqp[static_cast<std::size_t>(row * D + d)], 0.0) << "row " << row;
      }
  }
}

TEST(AttentionMasks, BoolMaskEqualsItsAdditiveForm) {
  const Tensor q = rnd({2, 3, 4}, 1), k = rnd({2, 5, 4}, 2), v = rnd({2, 5, 2}, 3);
  const Tensor m = bools({1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1}, {3, 5});
  const Tensor additive = masked_fill(zeros({3, 5}, DType::Float64), logical_not(m), -kInf);
  EXPECT_LT(max_abs_diff(scaled_dot_product_attention(q, k, v, m, 0.5, false),
                         scaled_dot_product_attention(q, k, v, additive, 0.5, false)), 1e-15);
  // true = take part: masking key 1 out equals dropping it from k and v.
  const Tensor row0 = scaled_dot_product_attention(q.narrow(1, 0, 1), k, v, m.narrow(0, 0, 1), 0.5, false);
  const Tensor keep = from_vector(std::vector<int64_t>{0, 2, 3}, {3});
  const Tensor dropped = scaled_dot_product_attention(q.narrow(1, 0, 1), index_select(k, 1, keep),
                                                      index_select(v, 1, keep), 0.5, false);
  EXPECT_LT(max_abs_diff(row0, dropped), 1e-15);
}

TEST(AttentionMasks, OpRejectsBadMasks) {
  const Tensor q = rnd({2, 3, 4}, 1), k = rnd({2, 5, 4}, 2);
  auto message = [&](const Tensor& m) {
    try {
      scaled_dot_product_attention(q, k, k, m, 0.5, false);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message(zeros({3, 4}, DType::Bool)).find("[3,4]"), std::string::npos);           // Tk 4, not 5
  EXPECT_NE(message(zeros({3, 2, 3, 5}, DType::Bool)).find("[2,3,5]"), std::string::npos);   // too many dims
  EXPECT_NE(message(zeros({3, 5}, DType::Int64)).find("int64"), std::string::npos);
  EXPECT_NE(message(zeros({3, 5}, DType::Float32)).find("float32"), std::string::npos);      // q is float64
}

// ---- MultiHeadAttention ------------------------------------------------------------------------------

namespace {

std::shared_ptr<nn::MultiHeadAttention> make_mha(nn::AttentionPath path, bool causal = false, uint64_t seed = 7) {
  nn::AttentionOptions o;
  o.n_embd = 8;
  o.n_head = 2;
  o.causal = causal;
  Generator init(seed);
  auto m = std::make_shared<nn::MultiHeadAttention>(o, nullptr, &init);
  m->path = path;
  m->to(DType::Float64);
  perturb_parameters(*m, seed + 1, 0.3);  // non-zero biases: a masked row's output is c_proj's bias
  return m;
}

const char* path_name(nn::AttentionPath p) { return p == nn::AttentionPath::Fused ? "fused" : "composed"; }

}  // namespace

class MhaMasks : public ::testing::TestWithParam<nn::AttentionPath> {};

TEST_P(MhaMasks, CausalIsOffByDefault) {
  EXPECT_FALSE(nn::AttentionOptions{}.causal);
  nn::AttentionOptions o;
  o.n_embd = 8;
  o.n_head = 2;
  nn::MultiHeadAttention m(o);
  m.path = GetParam();
  m.to(DType::Float64);
  NoGradGuard no_grad;
  const Tensor x = rnd({1, 4, 8}, 3);
  Tensor later = x.clone();
  later.set({0, 3, 0}, 7.0);  // the last position changes the first output: an encoder sees the future
  EXPECT_GT(max_abs_diff(m.forward(x).narrow(1, 0, 1), m.forward(later).narrow(1, 0, 1)), 1e-6);
  EXPECT_GT(max_abs_diff(m.forward(x, x, x).narrow(1, 0, 1), m.forward(later, later, later).narrow(1, 0, 1)), 1e-6);
}

TEST_P(MhaMasks, UnmaskedGeneralFormEqualsSelfAttention) {
  auto m = make_mha(GetParam(), true);
  NoGradGuard no_grad;
  const Tensor x = rnd({2, 5, 8}, 4);
  const Tensor self = m->forward(x);
  EXPECT_LT(max_abs_diff(m->forward(x, x, x), self), 1e-13);
  EXPECT_LT(max_abs_diff(m->forward(x, x.clone(), x.clone()), self), 1e-13);  // separate k and v products
  EXPECT_LT(max_abs_diff(m->forward(x, x.clone(), x), self), 1e-13);          // one product for k and v
  // Masked self-attention with a mask that masks nothing: the split-heads route equals the packed kernel.
  nn::AttentionMasks none;
  none.key_padding_mask = zeros({2, 5}, DType::Bool);
  EXPECT_LT(max_abs_diff(m->forward(x, x, x, none), self), 1e-13);
}

TEST_P(MhaMasks, KeyPaddingMaskTrueMeansIgnored) {
  // Cross-attention to a padded memory equals cross-attention to the memory cut to its true length, per
  // batch element: padding (true) keys do not take part, and the mask is read per batch element.
  auto m = make_mha(GetParam());
  NoGradGuard no_grad;
  const Tensor query = rnd({2, 3, 8}, 5), memory = rnd({2, 6, 8}, 6);
  const std::vector<int64_t> lengths{4, 2};
  std::vector<bool> pad;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t s = 0; s < 6; ++s) pad.push_back(s >= lengths[static_cast<std::size_t>(b)]);
  nn::AttentionMasks masks;
  masks.key_padding_mask = bools(pad, {2, 6});
  const Tensor padded = m->forward(query, memory, memory, masks);
  for (int64_t b = 0; b < 2; ++b) {
    const Tensor mem = memory.narrow(0, b, 1).narrow(1, 0, lengths[static_cast<std::size_t>(b)]);
    const Tensor cut = m->forward(query.narrow(0, b, 1), mem, mem);
    EXPECT_LT(max_abs_diff(padded.narrow(0, b, 1), cut), 1e-13) << "batch " << b;
  }
  // The same padding as an additive float mask (−inf on the padding).
  masks.key_padding_mask = masked_fill(zeros({2, 6}, DType::Float64), bools(pad, {2, 6}), -kInf);
  EXPECT_LT(max_abs_diff(m->forward(query, memory, memory, masks), padded), 1e-15);
}

TEST_P(MhaMasks, AttnMaskTrueMeansTakePartAndBroadcastsOverBatchAndHeads) {
  auto m = make_mha(GetParam());
  NoGradGuard no_grad;
  const Tensor query = rnd({2, 2, 8}, 7), memory = rnd({2, 5, 8}, 8);
  nn::AttentionMasks masks;
  masks.attn_mask = bools({1, 1, 0, 1, 0, 0, 1, 1, 1, 1}, {2, 5});  // (T, S), for every batch element and head
  const Tensor masked = m->forward(query, memory, memory, masks);
  // Query 0 sees keys {0, 1, 3}: the same as attending to those keys alone.
  const Tensor keep = from_vector(std::vector<int64_t>{0, 1, 3}, {3});
  const Tensor sub = index_select(memory, 1, keep);
  EXPECT_LT(max_abs_diff(masked.narrow(1, 0, 1), m->forward(query.narrow(1, 0, 1), sub, sub)), 1e-13);
  // A per-(batch, head) mask (B, nh, T, S) that differs by head changes the result.
  Tensor per_head = bools(std::vector<bool>(2 * 2 * 2 * 5, true), {2, 2, 2, 5}).clone();
  per_head.set({1, 1, 0, 0}, 0.0);
  masks.attn_mask = per_head;
  const Tensor by_head = m->forward(query, memory, memory, masks);
  EXPECT_LT(max_abs_diff(by_head.narrow(0, 0, 1), m->forward(query.narrow(0, 0, 1), memory.narrow(0, 0, 1),
                                                             memory.narrow(0, 0, 1))), 1e-13);
  EXPECT_GT(max_abs_diff(by_head.narrow(0, 1, 1), m->forward(query.narrow(0, 1, 1), memory.narrow(0, 1, 1),
                                                             memory.narrow(0, 1, 1))), 1e-6);
}

TEST_P(MhaMasks, FullyMaskedQueriesGiveTheBiasAndFiniteGradients) {
  auto m = make_mha(GetParam(), true);
  const Tensor x = rnd({2, 4, 8}, 9).set_requires_grad(true);
  nn::AttentionMasks masks;
  masks.key_padding_mask = bools({0, 0, 1, 1, 1, 1, 1, 1}, {2, 4});  // batch 1: every key is padding
  masks.attn_mask = bools({0, 1, 1, 1}, {4, 1}).expand({4, 4});        // query 0 sees nothing anywhere
  Tensor y = m->forward(x, x, x, masks);
  y.backward(rnd(y.shape(), 10));
  EXPECT_TRUE(all_finite(y));
  EXPECT_TRUE(all_finite(x.grad()));
  for (const Tensor& p : m->parameters()) EXPECT_TRUE(all_finite(p.grad()));
  const Tensor bias = m->c_proj->bias.detach().reshape({1, 1, 8});
  EXPECT_LT(max_abs_diff(y.detach().narrow(0, 1, 1), bias.expand({1, 4, 8})), 1e-15);  // no key at all
  EXPECT_LT(max_abs_diff(y.detach().narrow(1, 0, 1), bias.expand({2, 1, 8})), 1e-15);  // query 0
  EXPECT_GT(max_abs_diff(y.detach().narrow(0, 0, 1).narrow(1, 1, 1), bias), 1e-3);     // a live query
}

TEST_P(MhaMasks, GradcheckEveryMaskCombination) {
  // Parameters and inputs (query and memory) in float64, for cross- and self-attention with each mask.
  struct Combo {
    const char* name;
    bool causal, cross, padding, bool_mask, float_mask;
  };
  const std::vector<Combo> combos{
      {"cross + key padding", false, true, true, false, false},
      {"cross + bool attn_mask", false, true, false, true, false},
      {"cross + float attn_mask", false, true, false, false, true},
      {"cross + key padding + bool attn_mask", false, true, true, true, false},
      {"self causal + key padding", true, false, true, false, false},
      {"self causal + float attn_mask + key padding", true, false, true, false, true},
      {"self + bool attn_mask", false, false, false, true, false},
  };
  for (const Combo& c : combos) {
    auto m = make_mha(GetParam(), c.causal, 11);
    const int64_t T = 3, S = c.cross ? 6 : 3;
    nn::AttentionMasks masks;
    if (c.padding) {  // batch 0: the last key is padding; batch 1: all keys but the first
      std::vector<bool> p;
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t s = 0; s < S; ++s) p.push_back(b == 1 ? s >= 1 : s >= S - 1);
      masks.key_padding_mask = bools(p, {2, S});
    }
    if (c.bool_mask) {
      std::vector<bool> a;
      for (int64_t i = 0; i < T * S; ++i) a.push_back(i % 3 != 1);
      masks.attn_mask = bools(a, {T, S});
    }
    if (c.float_mask) masks.attn_mask = rnd({2, 2, T, S}, 12);  // per batch element and head
    const Tensor q = rnd({2, T, 8}, 13), mem = rnd({2, S, 8}, 14);
    auto f = [&](const std::vector<Tensor>& in) {
      return c.cross ? m->forward(in[0], in[1], in[1], masks) : m->forward(in[0], in[0], in[0], masks);
    };
    const std::vector<Tensor> inputs = c.cross ? std::vector<Tensor>{q, mem} : std::vector<Tensor>{q};
    ModuleCheckResult r = module_gradcheck(*m, f, inputs);
    std::cout << "[module_gradcheck] MHA " << path_name(GetParam()) << " " << c.name << ": " << r.summary() << "\n";
    EXPECT_TRUE(r.passed) << c.name << ": " << r.summary();
    GradcheckResult gi = gradcheck(f, inputs);
    EXPECT_TRUE(gi.passed) << c.name << " inputs: " << gi.summary();
    if (c.float_mask) {  // the float mask is differentiable too
      GradcheckResult gm = gradcheck([&](const std::vector<Tensor>& in) {
        nn::AttentionMasks fm = masks;
        fm.attn_mask = in[0];
        return c.cross ? m->forward(q, mem, mem, fm) : m->forward(q, q, q, fm);
      }, {masks.attn_mask});
      EXPECT_TRUE(gm.passed) << c.name << " float mask: " << gm.summary();
    }
  }
}

TEST_P(MhaMasks, RejectsBadMasksWithAClearMessage) {
  auto m = make_mha(GetParam());
  const Tensor q = rnd({2, 3, 8}, 1), mem = rnd({2, 5, 8}, 2);
  auto message = [&](const nn::AttentionMasks& masks) {
    try {
      m->forward(q, mem, mem, masks);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  nn::AttentionMasks a;
  a.key_padding_mask = zeros({2, 3}, DType::Bool);  // (B, T) instead of (B, S)
  EXPECT_NE(message(a).find("key_padding_mask of shape [2,3] is not (B, S) = [2,5]"), std::string::npos) << message(a);
  nn::AttentionMasks b;
  b.attn_mask = zeros({5, 3}, DType::Bool);  // (S, T) instead of (T, S)
  EXPECT_NE(message(b).find("attn_mask of shape [5,3]"), std::string::npos) << message(b);
  nn::AttentionMasks c;
  c.attn_mask = zeros({3, 5}, DType::Int64);
  EXPECT_NE(message(c).find("int64"), std::string::npos) << message(c);
  EXPECT_THROW(m->forward(q, mem, rnd({2, 4, 8}, 3)), std::invalid_argument);  // key and value lengths differ
}

INSTANTIATE_TEST_SUITE_P(Paths, MhaMasks, ::testing::Values(nn::AttentionPath::Fused, nn::AttentionPath::Composed),
                         [](const auto& info) { return path_name(info.param); });
