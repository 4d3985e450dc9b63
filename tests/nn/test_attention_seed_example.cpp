// The worked self-attention example from ../shared/seeds/002_4f72bf66b4b9a2af.txt ("Hello shiny sun!"):
// three 3-d embeddings, the context vector of "shiny" from unscaled dot-product scores, softmax and the
// weighted sum of the embeddings (query = key = value = the embeddings, scale 1, no mask).
//
// Recomputed by hand (python, double precision):
//   scores against shiny  = [0.7842, 1.3569, 1.2487]           (exact dot products)
//   softmax weights       = [0.229133593866989, 0.406264819921970, 0.364601586211041]
//   context("shiny")      = [0.398960236474622, 0.385424285978169, 0.860951139387973]
//
// The seed claims [0.3992, 0.3858, 0.8610]. That is NOT what the computation gives: to 4 decimals the
// right answer is [0.3990, 0.3854, 0.8610]. The seed's weighted products are off in the 4th decimal
// (e.g. 0.2156 for 0.4063·0.53 = 0.2153, 0.1972 for 0.3646·0.54 = 0.1969), so its sum is off by
// [+2.4e-4, +3.76e-4, +4.9e-5]. We assert the correct value and how far the seed's claim is from it.
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
const std::vector<double> kSeedClaim = {0.3992, 0.3858, 0.8610};

Tensor embeddings() { return from_vector(kEmbeddings, {3, 3}); }
}  // namespace

TEST(AttentionSeedExample, ShinyContextWithComposedAttention) {
  const Tensor E = embeddings();
  const Tensor q = E.narrow(0, 1, 1);  // (1, 3): the query "shiny"
  const Tensor ctx = nn::composed_attention(q, E, E, /*scale=*/1.0, /*causal=*/false);
  ASSERT_EQ(ctx.shape(), (Shape{1, 3}));
  for (int64_t d = 0; d < 3; ++d) EXPECT_NEAR(ctx.at({0, d}), kShinyContext[d], 1e-12) << d;
}

TEST(AttentionSeedExample, ShinyContextWithFusedAttention) {
  const Tensor E = embeddings();
  const Tensor ctx = scaled_dot_product_attention(E.narrow(0, 1, 1), E, E, 1.0, false);
  for (int64_t d = 0; d < 3; ++d) EXPECT_NEAR(ctx.at({0, d}), kShinyContext[d], 1e-12) << d;
}

TEST(AttentionSeedExample, StepByStepScoresAndWeights) {
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

TEST(AttentionSeedExample, AllThreeRowsAtOnceAndCausalVariant) {
  // Full self-attention over the sentence: row 1 is the seed's "shiny" row; rows 0 and 2 by hand too.
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

TEST(AttentionSeedExample, SeedClaimIsOffInTheFourthDecimal) {
  const Tensor E = embeddings();
  const Tensor ctx = nn::composed_attention(E.narrow(0, 1, 1), E, E, 1.0, false);
  double worst = 0;
  for (int64_t d = 0; d < 3; ++d) worst = std::max(worst, std::fabs(kSeedClaim[d] - ctx.at({0, d})));
  // The claim misses by 3.76e-4 in the second component: more than 4-decimal rounding (5e-5) explains.
  EXPECT_NEAR(worst, 3.757e-4, 1e-6);
  EXPECT_GT(std::fabs(kSeedClaim[0] - ctx.at({0, 0})), 5e-5);
  EXPECT_GT(std::fabs(kSeedClaim[1] - ctx.at({0, 1})), 5e-5);
  EXPECT_LT(std::fabs(kSeedClaim[2] - ctx.at({0, 2})), 5e-5);  // the third component rounds correctly
  // Rounded to the seed's 4 decimals, the right answer is [0.3990, 0.3854, 0.8610].
  const std::vector<double> rounded = {0.3990, 0.3854, 0.8610};
  for (int64_t d = 0; d < 3; ++d) EXPECT_NEAR(std::round(ctx.at({0, d}) * 1e4) / 1e4, rounded[d], 1e-12);
}

TEST(AttentionSeedExample, ScalingChangesTheAnswer) {
  // The example is unscaled; with the usual 1/sqrt(d_k) = 1/sqrt(3) the weights are flatter.
  const Tensor E = embeddings();
  const Tensor unscaled = nn::composed_attention(E.narrow(0, 1, 1), E, E, 1.0, false);
  const Tensor scaled = nn::composed_attention(E.narrow(0, 1, 1), E, E, 1.0 / std::sqrt(3.0), false);
  EXPECT_GT(max_abs_diff(unscaled, scaled), 1e-4);
}
