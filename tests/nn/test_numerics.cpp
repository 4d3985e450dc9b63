// Numerical bugs that transformer implementations keep shipping, each with the test that stops it:
// - Attention scaled by 1/sqrt(n_embd) instead of 1/sqrt(head size) (the classic tutorial bug): with
//   several heads the scores are too flat. The scale is the head size's, reported and really used.
// - Dropout left on at evaluation (nanoGPT fixed this once): eval mode must be deterministic and equal
//   to the model without dropout, on both attention paths.
// - Gradient checks in float32 fail for rounding, not for bugs: modules convert to float64 in place so
//   that they can be checked there.
// - LayerNorm statistics computed in one pass (E[x^2] - E[x]^2) lose every digit on rows with a large
//   mean (1e4 with unit spread): the module must still normalise them.
#include "test_util.h"

#include <minitrain/core/gradcheck.h>
#include <minitrain/nn/attention.h>
#include <minitrain/nn/gpt.h>

#include <gtest/gtest.h>

using namespace minitrain;
using namespace minitrain::nn_test;

TEST(Numerics, AttentionScaleUsesHeadSizeNotEmbeddingSize) {
  nn::AttentionOptions o;
  o.n_embd = 64;
  o.n_head = 4;
  nn::MultiHeadAttention mha(o);
  EXPECT_EQ(mha.head_size(), 16);
  EXPECT_EQ(mha.scale(), 0.25);  // 1/sqrt(16), not 1/sqrt(64) = 0.125
  nn::GPTConfig c;
  c.n_embd = 64;
  c.n_head = 4;
  c.n_layer = 1;
  nn::GPT model(c);
  EXPECT_EQ((*model.h)[0]->attn->scale(), 0.25);
  c.attention_scale = 0.5;
  EXPECT_EQ((*nn::GPT(c).h)[0]->attn->scale(), 0.5);
}

TEST(Numerics, AttentionForwardReallyUsesHeadSizeScale) {
  // The module's output equals the textbook steps with 1/sqrt(head size), and differs from
  // 1/sqrt(n_embd): the scale is used, not just reported.
  nn::AttentionOptions o;
  o.n_embd = 16;
  o.n_head = 4;
  o.causal = true;
  for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed}) {
    Generator init(3);
    nn::MultiHeadAttention mha(o, nullptr, &init);
    mha.path = path;
    mha.to(DType::Float64);
    perturb_parameters(mha, 4, 0.5);  // sharper scores, so the scale matters
    mha.eval();
    NoGradGuard no_grad;
    const int64_t B = 2, T = 5, C = 16, nh = 4, hs = 4;
    const Tensor x = rnd({B, T, C}, 5);
    auto manual = [&](double scale) {
      Tensor qkv = mha.c_attn->forward(x);
      auto heads = [&](int64_t part) { return qkv.narrow(2, part * C, C).reshape({B, T, nh, hs}).transpose(1, 2); };
      Tensor y = nn::composed_attention(heads(0), heads(1), heads(2), scale, true);
      return mha.c_proj->forward(y.transpose(1, 2).reshape({B, T, C}));
    };
    const Tensor got = mha.forward(x);
    EXPECT_LT(max_abs_diff(got, manual(0.5)), 1e-12);
    EXPECT_GT(max_abs_diff(got, manual(0.25)), 1e-4);
  }
}

TEST(Numerics, DropoutIsOffInEval) {
  nn::GPTConfig c;
  c.block_size = 8;
  c.vocab_size = 11;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.dropout = 0.5;
  nn::GPT model(c);
  const Tensor idx = random_ids({2, 8}, 11, 1);
  model.eval();
  const Tensor a = model.forward(idx), b = model.forward(idx);
  EXPECT_TRUE(bit_identical(a, b));
  // The same weights without dropout give the same logits: eval mode is the identity everywhere.
  c.dropout = 0.0;
  nn::GPT plain(c);
  plain.eval();
  EXPECT_TRUE(bit_identical(a, plain.forward(idx)));
  // Both attention paths.
  model.set_attention_path(nn::AttentionPath::Composed);
  EXPECT_LT(max_abs_diff(model.forward(idx), a), 1e-5);
  EXPECT_TRUE(bit_identical(model.forward(idx), model.forward(idx)));
  // And dropout is really configured: in train mode two forwards differ.
  model.train();
  EXPECT_GT(max_abs_diff(model.forward(idx), model.forward(idx)), 1e-4);
}

TEST(Numerics, ModuleToFloat64ThenGradcheck) {
  Generator g(1);
  nn::Linear lin(4, 3, true, &g);
  const Tensor x = rnd({2, 4}, 2);
  // float32 parameters with a float64 input: the op refuses mixed dtypes.
  EXPECT_THROW(gradcheck([&](auto in) { return lin.forward(in[0]); }, {x}), std::invalid_argument);
  lin.to(DType::Float64);
  GradcheckResult r = gradcheck([&](auto in) { return lin.forward(in[0]); }, {x});
  EXPECT_TRUE(r.passed) << r.summary();
  EXPECT_EQ(r.entries_checked, 8);
  // The whole LayerNorm + attention block as well.
  nn::GPTConfig c;
  c.n_embd = 8;
  c.n_head = 2;
  Generator init(2);
  nn::Block block(c, std::make_shared<Generator>(3), &init);
  block.to(DType::Float64);
  GradcheckResult rb = gradcheck([&](auto in) { return block.forward(in[0]); }, {rnd({1, 4, 8}, 4)});
  EXPECT_TRUE(rb.passed) << rb.summary();
}

TEST(Numerics, LayerNormModuleOnLargeMeanRows) {
  // Rows with mean 1e4 and unit spread: the module's output is still normalised (two-pass statistics).
  nn::LayerNorm ln(16);
  ln.to(DType::Float64);
  const Tensor x = add(rnd({3, 16}, 6), 1e4);
  const Tensor y = ln.forward(x);
  for (int64_t r = 0; r < 3; ++r) {
    const Tensor row = y.narrow(0, r, 1);
    EXPECT_NEAR(mean(row).item(), 0.0, 1e-9);
    EXPECT_NEAR(var(row, {}, false, 0).item(), 1.0, 1e-3);  // eps 1e-5 shrinks it slightly
  }
  nn::LayerNorm ln32(16);
  const Tensor y32 = ln32.forward(x.to(DType::Float32));
  EXPECT_LT(max_abs_diff(y32, y), 5e-3);
}
