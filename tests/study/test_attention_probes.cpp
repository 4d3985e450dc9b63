// attention_probabilities / attention_statistics, and what forward hooks on MultiHeadAttention observe.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/nn/attention.h>
#include <minitrain/nn/attention_probes.h>
#include <minitrain/nn/gpt.h>

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <utility>
#include <vector>

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

// What a forward hook on a layer sees: observed_statistics() read right after the forward.
std::vector<AttentionStatistics> watch(MultiHeadAttention& attn, const std::function<void()>& forwards) {
  std::vector<AttentionStatistics> seen;
  HookHandle h = attn.register_forward_hook([&](Module& m, const std::vector<Tensor>&, const Tensor&) {
    seen.push_back(static_cast<MultiHeadAttention&>(m).observed_statistics());
  });
  forwards();
  h.remove();
  return seen;
}

// q and k of the layer's heads for input x, rebuilt from c_attn the way the layer splits them.
std::pair<Tensor, Tensor> queries_and_keys(MultiHeadAttention& attn, const Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), hs = attn.head_size();
  const Tensor qkv = attn.c_attn->forward(x);
  const auto heads = [&](int64_t part) { return qkv.narrow(2, part * C, C).reshape({B, T, C / hs, hs}).transpose(1, 2); };
  return {heads(0), heads(1)};
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double worst = x.size() == y.size() ? 0.0 : INFINITY;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

void expect_same_statistics(const AttentionStatistics& got, const AttentionStatistics& expected, double tol) {
  EXPECT_EQ(got.rows, expected.rows);
  EXPECT_NEAR(got.entropy, expected.entropy, tol);
  EXPECT_NEAR(got.normalized_entropy, expected.normalized_entropy, tol);
  EXPECT_NEAR(got.max_probability, expected.max_probability, tol);
  EXPECT_NEAR(got.logit_std, expected.logit_std, tol * std::max(1.0, expected.logit_std));
}

}  // namespace

TEST(AttentionProbes, WithoutAHookNothingIsObservedAndTheOutputIsTheSame) {
  Generator init(3), data(4);
  MultiHeadAttention attn(small_options(0.9), nullptr, &init);
  const Tensor x = randn({2, 5, 8}, data);
  const Tensor off = attn.forward(x);
  EXPECT_EQ(attn.observed_statistics().rows, 0);
  EXPECT_TRUE(std::isnan(attn.observed_statistics().normalized_entropy));
  Tensor on;
  const auto seen = watch(attn, [&] {
    on = attn.forward(x);
    attn.forward(x);
  });
  ASSERT_EQ(seen.size(), 2u);  // one per forward
  EXPECT_GT(seen[0].rows, 0);
  EXPECT_EQ(off.to_vector<float>(), on.to_vector<float>());
}

// On every path, the statistics the hook reads are those of softmax(q·kᵀ·scale) for the layer's own q and
// k at the layer's scale, and the output is the one that scale gives (composed reference): a forward that
// applied another scale, or a probe that recomputed with the requested scale, fails one of the two.
TEST(AttentionProbes, HooksSeeWhatEveryPathComputedAtTheLayersScale) {
  enum class Form { Plain, Cached, General };  // forward(x); forward(x, &cache); forward(x, x, x, masks)
  for (const double scale : {0.3, 0.9, 4.0})
    for (const AttentionPath path : {AttentionPath::Fused, AttentionPath::Composed}) {
      Generator init(5), data(6);
      MultiHeadAttention attn(small_options(scale), nullptr, &init);
      attn.to(DType::Float64);
      attn.path = path;
      for (const Form form : {Form::Plain, Form::Cached, Form::General}) {
        SCOPED_TRACE("scale " + std::to_string(scale) + (path == AttentionPath::Fused ? ", fused" : ", composed") +
                     ", form " + std::to_string(static_cast<int>(form)));
        // A fresh input for each form, so that statistics left over from an earlier forward cannot pass.
        const Tensor x = randn({2, 5, 8}, data, DType::Float64);
        const auto [q, k] = queries_and_keys(attn, x);
        const AttentionStatistics expected = attention_statistics(q, k, scale, true);
        EXPECT_EQ(expected.rows, 2 * 2 * 4);  // batch · heads · rows that see ≥ 2 keys
        Tensor y;
        const auto seen = watch(attn, [&] {
          KVCache cache;
          const AttentionMasks every_key_takes_part{ones({1, 1, 5, 5}, DType::Bool), Tensor()};
          y = form == Form::Plain    ? attn.forward(x)  // fused: the packed kernel; composed: split heads
              : form == Form::Cached ? attn.forward(x, &cache)
                                     : attn.forward(x, x, x, every_key_takes_part);  // split heads with a mask
        });
        ASSERT_EQ(seen.size(), 1u);
        expect_same_statistics(seen[0], expected, 1e-12);

        // And the output is the one this scale gives (the composed steps on the same q, k, v).
        const Tensor v = attn.c_attn->forward(x).narrow(2, 16, 8).reshape({2, 5, 2, 4}).transpose(1, 2);
        const Tensor heads = composed_attention(q, k, v, scale, true).transpose(1, 2).reshape({2, 5, 8});
        EXPECT_LT(max_abs_diff(y, attn.c_proj->forward(heads)), 1e-12);
      }
    }
}

TEST(AttentionProbes, LargerScaleSharpensARealLayer) {
  // The same weights with scale 1/sqrt(d_k) and 16x that: entropy must drop and logit spread grow 16x.
  Generator data(8);
  const Tensor x = randn({1, 12, 8}, data);
  AttentionStatistics s[2];
  for (int i = 0; i < 2; ++i) {
    Generator init(7);
    MultiHeadAttention attn(small_options(i == 0 ? 0.5 : 8.0), nullptr, &init);
    s[i] = watch(attn, [&] { attn.forward(x); }).at(0);
  }
  EXPECT_LT(s[1].normalized_entropy, s[0].normalized_entropy);
  EXPECT_NEAR(s[1].logit_std / s[0].logit_std, 16.0, 1e-3);
}
