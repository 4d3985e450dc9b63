// A worked self-attention example small enough to follow by hand: the sentence "Hello shiny sun!" as
// three 3-d embeddings, and the context vector of "shiny" from unscaled dot-product scores, their
// softmax and the weighted sum of the embeddings (query = key = value = the embeddings, scale 1, no
// mask). The fused kernel and the composed steps must both give it.
//
// Recomputed by hand (python, double precision):
//   scores against shiny  = [0.7842, 1.3569, 1.2487]           (exact dot products)
//   softmax weights       = [0.229133593866989, 0.406264819921970, 0.364601586211041]
//   context("shiny")      = [0.398960236474622, 0.385424285978169, 0.860951139387973]
#include "test_util.h"

#include <minitrain/nn/attention.h>

#include <gtest/gtest.h>

using namespace minitrain;
using namespace minitrain::nn_test;

namespace {
const std::vector<double> kEmbeddings = {0.34, 0.22, 0.54,   // Hello
                                         0.53, 0.34, 0.98,   // shiny
                                         0.29, 0.54, 0.93};  // sun
const std::vector<double> kShinyContext = {0.398960236474622, 0.385424285978169, 0.860951139387973};

Tensor embeddings() { return from_vector(kEmbeddings, {3, 3}); }
}  // namespace

TEST(AttentionWorkedExample, ShinyContextWithComposedAttention) {
  const Tensor E = embeddings();
  const Tensor q = E.narrow(0, 1, 1);  // (1, 3): the query "shiny"
  const Tensor ctx = nn::composed_attention(q, E, E, /*scale=*/1.0, /*causal=*/false);
  ASSERT_EQ(ctx.shape(), (Shape{1, 3}));
  for (int64_t d = 0; d < 3; ++d) EXPECT_NEAR(ctx.at({0, d}), kShinyContext[d], 1e-12) << d;
}

TEST(AttentionWorkedExample, ShinyContextWithFusedAttention) {
  const Tensor E = embeddings();
  const Tensor ctx = scaled_dot_product_attention(E.narrow(0, 1, 1), E, E, 1.0, false);
  for (int64_t d = 0; d < 3; ++d) EXPECT_NEAR(ctx.at({0, d}), kShinyContext[d], 1e-12) << d;
}

TEST(AttentionWorkedExample, StepByStepScoresAndWeights) {
  const Tensor E = embeddings();
  const Tensor scores = matmul(E.narrow(0, 1, 1), E.transpose(0, 1));  // (1, 3)
  const std::vector<double> want_scores = {0.7842, 1.3569, 1.2487};
  const std::vector<double> want_weights = {0.229133593866989, 0.406264819921970, 0.364601586211041};
  const Tensor weights = softmax(scores, -1);
  for (int64_t j = 0; j < 3; ++j) {
    EXPECT_NEAR(scores.at({0, j}), want_scores[j], 1e-12);
    EXPECT_NEAR(weights.at({0, j}), want_weights[j], 1e-12);
  }
  EXPECT_NEAR(sum(weights).item(), 1.0, 1e-15);
}

TEST(AttentionWorkedExample, AllThreeRowsAtOnceAndCausalVariant) {
  // Full self-attention over the sentence: row 1 is the "shiny" row above; rows 0 and 2 by hand too.
  const Tensor E = embeddings();
  const std::vector<std::vector<double>> rows = {
      {0.393860660789216, 0.378043868884631, 0.843157453802386},
      kShinyContext,
      {0.394397397574827, 0.389471910609429, 0.860353382958081}};
  const Tensor fused = scaled_dot_product_attention(E, E, E, 1.0, false);
  const Tensor composed = nn::composed_attention(E, E, E, 1.0, false);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t d = 0; d < 3; ++d) {
      EXPECT_NEAR(fused.at({i, d}), rows[i][d], 1e-12);
      EXPECT_NEAR(composed.at({i, d}), rows[i][d], 1e-12);
    }
  // Causal: "Hello" sees only itself; "shiny" sees Hello and itself; "sun" sees everything.
  const std::vector<std::vector<double>> causal = {
      {0.34, 0.22, 0.54}, {0.461483330946451, 0.296726314281969, 0.821329819033887}, rows[2]};
  const Tensor cf = scaled_dot_product_attention(E, E, E, 1.0, true);
  const Tensor cc = nn::composed_attention(E, E, E, 1.0, true);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t d = 0; d < 3; ++d) {
      EXPECT_NEAR(cf.at({i, d}), causal[i][d], 1e-12);
      EXPECT_NEAR(cc.at({i, d}), causal[i][d], 1e-12);
    }
}

TEST(AttentionWorkedExample, ScalingChangesTheAnswer) {
  // The example is unscaled; with the usual 1/sqrt(d_k) = 1/sqrt(3) the weights are flatter.
  const Tensor E = embeddings();
  const Tensor unscaled = nn::composed_attention(E.narrow(0, 1, 1), E, E, 1.0, false);
  const Tensor scaled = nn::composed_attention(E.narrow(0, 1, 1), E, E, 1.0 / std::sqrt(3.0), false);
  EXPECT_GT(max_abs_diff(unscaled, scaled), 1e-4);
}
