// train::grad_norms, global_grad_norm, packed_qkv_norms and qkv_grad_norms.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/train/grad_norms.h>

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

using namespace minitrain;

TEST(GradNorms, L2NormOfKnownValues) {
  EXPECT_DOUBLE_EQ(train::l2_norm(from_vector(std::vector<double>{3, 4}, {2})), 5.0);
  EXPECT_DOUBLE_EQ(train::l2_norm(Tensor()), 0.0);
}

TEST(GradNorms, PerParameterAndGlobalNormsMatchTheGradients) {
  Generator gen(1);
  nn::Linear fc(3, 2, true, &gen);
  sum(mul(fc.forward(randn({4, 3}, gen)), randn({4, 2}, gen))).backward();
  const auto named = fc.named_parameters();
  const std::map<std::string, double> norms = train::grad_norms(named);
  ASSERT_EQ(norms.size(), 2u);
  double total = 0;
  for (const auto& [name, p] : named) {
    double sq = 0;
    for (double g : p.grad().to_vector<double>()) sq += g * g;
    EXPECT_NEAR(norms.at(name), std::sqrt(sq), 1e-6) << name;
    total += sq;
  }
  EXPECT_NEAR(train::global_grad_norm(named), std::sqrt(total), 1e-6);
  EXPECT_NEAR(train::global_grad_norm(named), train::clip_grad_norm(fc.parameters(), 0.0), 1e-6);
}

TEST(GradNorms, ParametersWithoutGradientHaveNormZero) {
  nn::Linear fc(3, 2);
  EXPECT_EQ(train::grad_norms(fc.named_parameters()).at("weight"), 0.0);
  EXPECT_EQ(train::global_grad_norm(fc.named_parameters()), 0.0);
}

TEST(GradNorms, PackedRowsSplitIntoQKV) {
  // (3C, 2) with C = 2: q rows hold 1s, k rows 2s, v rows 3s.
  const Tensor packed = from_vector(std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}, {6, 2});
  const train::QKVNorms n = train::packed_qkv_norms(packed);
  EXPECT_DOUBLE_EQ(n.q, 2.0);
  EXPECT_DOUBLE_EQ(n.k, 4.0);
  EXPECT_DOUBLE_EQ(n.v, 6.0);
  EXPECT_DOUBLE_EQ(train::packed_qkv_norms(from_vector(std::vector<double>{1, 2, 2}, {3})).k, 2.0);  // a bias
  EXPECT_THROW(train::packed_qkv_norms(ones({4, 2})), std::invalid_argument);
  EXPECT_THROW(train::packed_qkv_norms(Tensor()), std::invalid_argument);
}

namespace {
nn::AttentionOptions options(bool bias) {
  nn::AttentionOptions o;
  o.n_embd = 8;
  o.n_head = 2;
  o.causal = true;
  o.bias = bias;
  return o;
}
}  // namespace

TEST(GradNorms, AttentionLayerBlocksAreQKVInThatOrder) {
  // With W_k = 0 every score is 0 whatever q is, so W_q gets exactly no gradient while W_k and W_v do.
  // That pins the first block to q and the second to k in the real layer, not only in the helper.
  Generator init(2), data(3);
  nn::MultiHeadAttention attn(options(false), nullptr, &init);
  EXPECT_EQ(train::qkv_grad_norms(attn).q, 0.0);  // before any backward
  {
    NoGradGuard no_grad;
    attn.c_attn->weight.narrow(0, 8, 8).copy_(zeros({8, 8}));
  }
  sum(mul(attn.forward(randn({2, 6, 8}, data)), randn({2, 6, 8}, data))).backward();
  const train::QKVNorms n = train::qkv_grad_norms(attn);
  EXPECT_EQ(n.q, 0.0);
  EXPECT_GT(n.k, 1e-4);
  EXPECT_GT(n.v, 1e-4);
  const Tensor g = attn.c_attn->weight.grad();
  EXPECT_NEAR(n.v, train::l2_norm(g.narrow(0, 16, 8)), 1e-9);
}

TEST(GradNorms, AttentionBiasBlocksAreIncluded) {
  Generator init(2), data(3);
  nn::MultiHeadAttention attn(options(true), nullptr, &init);
  sum(mul(attn.forward(randn({2, 6, 8}, data)), randn({2, 6, 8}, data))).backward();
  const train::QKVNorms n = train::qkv_grad_norms(attn), w = train::packed_qkv_norms(attn.c_attn->weight.grad()),
                        b = train::packed_qkv_norms(attn.c_attn->bias.grad());
  EXPECT_NEAR(n.v, std::hypot(w.v, b.v), 1e-9);
  EXPECT_GT(b.v, 0.0);
}
