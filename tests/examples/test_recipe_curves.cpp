// The arithmetic of compare_recipes' report (examples/compare_recipes/curves.h): mean curves over seeds,
// where a curve first reaches a target (interpolated between evaluations, in steps or seconds), the loss
// at a given training time.
#include "curves.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

using namespace minitrain::recipes;

namespace {
// val loss 2.0, 1.5, 1.0, 0.8 at steps 0, 100, 200, 300, and 0, 10, 20, 30 seconds
Curve falling() { return {{0, 0, 2.0}, {100, 10, 1.5}, {200, 20, 1.0}, {300, 30, 0.8}}; }
}  // namespace

TEST(RecipeCurves, FirstReachingInterpolatesBetweenEvaluations) {
  EXPECT_DOUBLE_EQ(first_reaching(falling(), 1.25, false), 150.0);  // halfway from 1.5 (100) to 1.0 (200)
  EXPECT_DOUBLE_EQ(first_reaching(falling(), 1.25, true), 15.0);
  EXPECT_DOUBLE_EQ(first_reaching(falling(), 1.0, false), 200.0);   // reached exactly at an evaluation
  EXPECT_DOUBLE_EQ(first_reaching(falling(), 2.5, false), 0.0);     // already there at the start
  EXPECT_TRUE(std::isnan(first_reaching(falling(), 0.5, false)));   // never
  // The first crossing counts, not a later one after a bump.
  const Curve bumpy{{0, 0, 2.0}, {100, 10, 0.9}, {200, 20, 1.2}, {300, 30, 0.7}};
  EXPECT_DOUBLE_EQ(first_reaching(bumpy, 1.0, false), 100.0 * (2.0 - 1.0) / (2.0 - 0.9));
}

TEST(RecipeCurves, LossAtSecondsAndMeanCurve) {
  EXPECT_DOUBLE_EQ(loss_at_seconds(falling(), 25), 0.9);
  EXPECT_DOUBLE_EQ(loss_at_seconds(falling(), 0), 2.0);
  EXPECT_TRUE(std::isnan(loss_at_seconds(falling(), 31)));
  Curve other = falling();
  for (auto& p : other) p.val_loss += 1.0, p.seconds *= 3;
  const Curve mean = mean_curve({falling(), other});
  ASSERT_EQ(mean.size(), 4u);
  EXPECT_DOUBLE_EQ(mean[2].val_loss, 1.5);
  EXPECT_DOUBLE_EQ(mean[2].seconds, 40.0);
  EXPECT_EQ(mean[3].iter, 300);
  other.pop_back();
  EXPECT_THROW(mean_curve({falling(), other}), std::invalid_argument);
  EXPECT_DOUBLE_EQ(std_of({1.0, 3.0}), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(std_of({4.0}), 0.0);
}
