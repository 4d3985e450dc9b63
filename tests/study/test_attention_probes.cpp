// attention_probabilities / attention_statistics and MultiHeadAttention's opt-in recording.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/nn/attention.h>
#include <minitrain/nn/gpt.h>

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

using namespace minitrain;
using namespace minitrain::nn;

TEST(AttentionProbes, ProbabilitiesAreTheMaskedSoftmaxOfScaledScores) {
  Generator gen(1);
  const Tensor q = randn({2, 3, 5, 4}, gen, DType::Float64), k = randn({2, 3, 5, 4}, gen, DType::Float64);
  const Tensor p = attention_probabilities(q, k, 0.7, true);
  ASSERT_EQ(p.shape(), (Shape{2, 3, 5, 5}));
  const Tensor expected = softmax(masked_fill(mul(matmul(q, k.transpose(-2, -1)), 0.7), causal_mask(5, DType::Float64),
                                              -INFINITY), -1);
  const auto a = p.to_vector<double>(), b = expected.to_vector<double>();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_DOUBLE_EQ(a[i], b[i]) << i;
  EXPECT_EQ(p.at({1, 2, 1, 2}), 0.0);  // a future key
}

TEST(AttentionProbes, UniformWeightsHaveFullEntropyAndNoSpread) {
  // q = 0 makes every score 0: each row is uniform over the keys it sees.
  const Tensor q = zeros({1, 1, 4, 3}, DType::Float64), k = ones({1, 1, 4, 3}, DType::Float64);
  const AttentionStatistics all = attention_statistics(q, k, 1.0, false);
  EXPECT_EQ(all.rows, 4);
  EXPECT_NEAR(all.normalized_entropy, 1.0, 1e-12);
  EXPECT_NEAR(all.entropy, std::log(4.0), 1e-12);
  EXPECT_NEAR(all.max_probability, 0.25, 1e-12);
  EXPECT_NEAR(all.logit_std, 0.0, 1e-12);
  // Causal: row 0 sees one key and is left out; rows 1..3 see 2, 3, 4 keys.
  const AttentionStatistics causal = attention_statistics(q, k, 1.0, true);
  EXPECT_EQ(causal.rows, 3);
  EXPECT_NEAR(causal.normalized_entropy, 1.0, 1e-12);
  EXPECT_NEAR(causal.max_probability, (1.0 / 2 + 1.0 / 3 + 1.0 / 4) / 3, 1e-12);
}

TEST(AttentionProbes, OneDominantKeyHasZeroEntropy) {
  // One query, two keys with scores ±a·scale: weights sigmoid(±2a·scale), logit spread a·scale.
  const Tensor q = from_vector(std::vector<double>{1.0}, {1, 1});
  const Tensor k = from_vector(std::vector<double>{30.0, -30.0}, {2, 1});
  const AttentionStatistics s = attention_statistics(q, k, 2.0, false);
  EXPECT_EQ(s.rows, 1);
  EXPECT_NEAR(s.max_probability, 1.0, 1e-12);
  EXPECT_LT(s.normalized_entropy, 1e-20);
  EXPECT_NEAR(s.logit_std, 60.0, 1e-9);
  // float32 inputs are measured in float64 (the tiny weight keeps its log).
  const AttentionStatistics f = attention_statistics(q.to(DType::Float32), k.to(DType::Float32), 0.01, false);
  EXPECT_NEAR(f.max_probability, 1 / (1 + std::exp(-0.6)), 1e-6);  // scores ±0.3
}

TEST(AttentionProbes, NoRowWithTwoKeysGivesNaN) {
  const Tensor q = ones({1, 1, 2}), k = ones({1, 1, 2});  // one key
  const AttentionStatistics s = attention_statistics(q, k, 1.0, false);
  EXPECT_EQ(s.rows, 0);
  EXPECT_TRUE(std::isnan(s.normalized_entropy));
}

TEST(AttentionProbes, RejectsBadArguments) {
  EXPECT_THROW(attention_probabilities(ones({2, 3}), ones({2, 4}), 1.0, false), std::invalid_argument);
  EXPECT_THROW(attention_statistics(ones({3}), ones({2, 3}), 1.0, false), std::invalid_argument);
  EXPECT_THROW(attention_statistics(ones({2, 3}), ones({2, 3}), NAN, false), std::invalid_argument);
  try {
    attention_statistics(ones({2, 3}), ones({2, 4}), 1.0, false);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("attention_statistics"), std::string::npos) << e.what();
  }
}

namespace {
AttentionOptions small_options(double scale) {
  AttentionOptions o;
  o.n_embd = 8;
  o.n_head = 2;
  o.causal = true;
  o.scale = scale;
  return o;
}
}  // namespace

TEST(AttentionProbes, RecordingIsOffByDefaultAndDoesNotChangeTheOutput) {
  Generator init(3), data(4);
  MultiHeadAttention attn(small_options(0.9), nullptr, &init);
  const Tensor x = randn({2, 5, 8}, data);
  EXPECT_FALSE(attn.record_statistics);
  const Tensor off = attn.forward(x);
  EXPECT_TRUE(attn.statistics.empty());
  attn.record_statistics = true;
  const Tensor on = attn.forward(x);
  attn.forward(x);
  ASSERT_EQ(attn.statistics.size(), 2u);  // one entry per forward
  EXPECT_EQ(off.to_vector<float>(), on.to_vector<float>());
}

TEST(AttentionProbes, RecordedStatisticsAreThoseOfTheLayersQueriesAndKeys) {
  Generator init(5), data(6);
  MultiHeadAttention attn(small_options(0.9), nullptr, &init);
  attn.record_statistics = true;
  const Tensor x = randn({2, 5, 8}, data);
  attn.forward(x);
  // Rebuild q and k from c_attn the way the layer splits them: rows [0, C) q, [C, 2C) k.
  const Tensor qkv = attn.c_attn->forward(x);
  const auto heads = [&](int64_t part) { return qkv.narrow(2, part * 8, 8).reshape({2, 5, 2, 4}).transpose(1, 2); };
  const AttentionStatistics expected = attention_statistics(heads(0), heads(1), 0.9, true);
  const AttentionStatistics& got = attn.statistics.at(0);
  EXPECT_EQ(got.rows, 2 * 2 * 4);  // batch · heads · rows that see ≥ 2 keys
  EXPECT_DOUBLE_EQ(got.normalized_entropy, expected.normalized_entropy);
  EXPECT_DOUBLE_EQ(got.max_probability, expected.max_probability);
  EXPECT_DOUBLE_EQ(got.logit_std, expected.logit_std);
  EXPECT_GT(got.normalized_entropy, 0.0);
  EXPECT_LT(got.normalized_entropy, 1.0);
}

TEST(AttentionProbes, LargerScaleSharpensARealLayer) {
  // The same weights with scale 1/sqrt(d_k) and 16x that: entropy must drop and logit spread grow 16x.
  Generator data(8);
  const Tensor x = randn({1, 12, 8}, data);
  AttentionStatistics s[2];
  for (int i = 0; i < 2; ++i) {
    Generator init(7);
    MultiHeadAttention attn(small_options(i == 0 ? 0.5 : 8.0), nullptr, &init);
    attn.record_statistics = true;
    attn.forward(x);
    s[i] = attn.statistics.at(0);
  }
  EXPECT_LT(s[1].normalized_entropy, s[0].normalized_entropy);
  EXPECT_NEAR(s[1].logit_std / s[0].logit_std, 16.0, 1e-3);
}
