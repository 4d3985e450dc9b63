// The finite-difference verdict must be able to fail: deliberately wrong gradients (sign flipped, ×10,
// zeroed) are judged Wrong for every sample at every d_k and scale of the study, including scale 1 at
// large d_k, where the correct gradients fail the plain relative-error check and are judged
// TooSmallToSee. (The rule it replaces, max|a − n| / max(|a|, |n|) ≤ 20 × rounding floor, never exceeds 2,
// so it "explained" any gradient once the floor reached 0.1.)
#include "finite_difference.h"
#include "single_layer.h"

#include <minitrain/core/random.h>

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

using namespace minitrain;
using namespace minitrain::study;

namespace {

AttentionSample random_sample(Generator& gen, int64_t d, int64_t n) {
  AttentionSample x{d, n, std::vector<double>(d), std::vector<double>(n * d), std::vector<double>(n * d),
                    std::vector<double>(d)};
  for (auto* part : {&x.q, &x.K, &x.V, &x.u})
    for (double& v : *part) v = gen.normal();
  return x;
}

SampleGradients transformed(SampleGradients g, const std::function<double(double)>& f) {
  for (auto* part : {&g.q, &g.K, &g.V})
    for (double& v : *part) v = f(v);
  return g;
}

struct Mutation {
  std::string name;
  std::function<double(double)> apply;
};

const std::vector<Mutation> kMutations{
    {"sign flipped", [](double g) { return -g; }},
    {"times 10", [](double g) { return 10 * g; }},
    {"zeroed", [](double) { return 0.0; }},
};

constexpr int64_t kKeys = 8;
constexpr double kStep = 1e-6;

}  // namespace

TEST(FdVerdict, WrongGradientsAreCaughtAtEveryHeadSizeAndScale) {
  Generator gen(31);
  int too_small_to_see = 0;
  for (int64_t d : {16, 64, 256, 1024}) {
    for (double scale : {1.0, 1 / std::sqrt(static_cast<double>(d)), 1 / static_cast<double>(d)}) {
      for (int sample = 0; sample < 3; ++sample) {
        SCOPED_TRACE("d_k " + std::to_string(d) + ", scale " + std::to_string(scale) + ", sample " +
                     std::to_string(sample));
        const AttentionSample x = random_sample(gen, d, kKeys);
        const SampleGradients analytic = library_gradients(x, scale);
        const SampleGradients numeric = finite_difference_gradients(x, scale, kStep);
        const FiniteDifferenceCheck right = judge_gradients(x, scale, kStep, analytic, numeric);
        EXPECT_NE(verdict(right), FdVerdict::Wrong) << "the library's gradient, error " << right.error << ", excess "
                                                    << right.excess;
        too_small_to_see += verdict(right) == FdVerdict::TooSmallToSee;
        for (const Mutation& m : kMutations) {
          const FiniteDifferenceCheck wrong = judge_gradients(x, scale, kStep, transformed(analytic, m.apply), numeric);
          EXPECT_EQ(verdict(wrong), FdVerdict::Wrong) << m.name << ": error " << wrong.error << ", excess " << wrong.excess;
        }
      }
    }
  }
  // Scale 1 at d_k 256 and 1024 saturates some samples: the case the old rule let anything through.
  EXPECT_GT(too_small_to_see, 0) << "no correct gradient was too small to see: the hard case was not exercised";
}

TEST(FdVerdict, ExcessIsUnboundedAndNaNIsWrong) {
  EXPECT_DOUBLE_EQ(worst_excess({1.0, -2.0}, {1.0, -2.0}, 1e-9, 1e-5), 0.0);
  EXPECT_GT(worst_excess({-1.0}, {1.0}, 1e-9, 1e-5), 1e4);  // a sign flip of a visible gradient
  EXPECT_LE(worst_excess({2e-12}, {-3e-12}, 1e-11, 1e-5), 1.0);  // both below the noise: cannot tell
  EXPECT_TRUE(std::isinf(worst_excess({std::nan("")}, {1.0}, 1e-9, 1e-5)));
  EXPECT_THROW(worst_excess({1.0}, {1.0, 2.0}, 1e-9, 1e-5), std::invalid_argument);
  EXPECT_THROW(worst_excess({1.0}, {1.0}, 0.0, 1e-5), std::invalid_argument);
}
