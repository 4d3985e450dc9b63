// The measurable facts about one attention layer at initialisation (i.i.d. N(0, 1) q, k, v),
// asserted on measure_single_layer: the code the scale_study program runs for part 1 of the report.
//
// Fixed seed; 800 samples per d_k with 8 keys (standard errors of a few percent; the closest threshold,
// scale 1's 2x on |dL/dq| at d_k = 1024, sits about 3 standard errors away), 100 with 64 keys, where the
// effects are larger (7x on |dL/dq|).
#include "claims.h"
#include "single_layer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

using namespace minitrain::study;

namespace {

const std::vector<int64_t> kHeadSizes{16, 64, 256, 1024};

// ctest runs every test in its own process, so each test measures only the cases and rules it needs
// (the samples of a (d_k, n) case do not depend on which rules or other cases are measured).
std::vector<CaseResult> measure(const std::vector<int64_t>& head_sizes, int64_t n, const std::vector<std::string>& rules,
                                int64_t fd_samples = 0) {
  SingleLayerOptions o;
  o.samples = n == 8 ? 800 : 100;
  o.fd_samples = fd_samples;
  std::vector<ScaleRule> parsed;
  for (const std::string& r : rules) parsed.push_back(parse_scale_rule(r));
  std::vector<CaseResult> out;
  for (int64_t d : head_sizes)
    for (const CaseResult& c : measure_single_layer(d, n, parsed, o)) out.push_back(c);
  return out;
}

std::vector<CaseResult> join(std::vector<CaseResult> a, const std::vector<CaseResult>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const CaseResult& at(const std::vector<CaseResult>& cases, int64_t d, int64_t n, const std::string& rule) {
  const CaseResult* c = find_case(cases, d, n, rule);
  if (!c) throw std::logic_error("case not measured");
  return *c;
}

const std::vector<int64_t> kLarge{64, 256, 1024};

}  // namespace

TEST(SingleLayerFacts, ScoreVarianceIsHeadSizeAndOneAfterScaling) {
  const auto cases = measure(kHeadSizes, 8, {"1/sqrt(dk)"});
  for (int64_t d : kHeadSizes) {
    const CaseResult& c = at(cases, d, 8, "1/sqrt(dk)");
    // Within 3 standard errors (the SE comes from the per-sample spread, so it is honest about the tails).
    EXPECT_NEAR(c.var_qk.mean, static_cast<double>(d), 3 * c.var_qk.se) << "d_k " << d;
    EXPECT_NEAR(c.var_scores.mean, 1.0, 3 * c.var_scores.se) << "d_k " << d;
    EXPECT_LT(c.var_qk.se, 0.05 * static_cast<double>(d)) << "too few samples to say anything";
  }
}

TEST(SingleLayerFacts, ScaleOneVanishesThroughTheSaturatedSoftmax) {
  const auto cases = measure(kHeadSizes, 8, {"1", "1/sqrt(dk)"});
  const auto s = series(cases, 8, "1");
  ASSERT_EQ(s.size(), kHeadSizes.size());
  for (std::size_t i = 1; i < s.size(); ++i)
    EXPECT_LT(s[i]->grad_scores.mean, s[i - 1]->grad_scores.mean) << "d_k " << s[i]->d_k;
  const CaseResult &one = at(cases, 1024, 8, "1"), &standard = at(cases, 1024, 8, "1/sqrt(dk)");
  EXPECT_GE(standard.grad_scores.mean / one.grad_scores.mean, 5.0)
      << one.grad_scores.mean << " vs " << standard.grad_scores.mean;
  EXPECT_LT(one.entropy.mean, 0.1);
  EXPECT_GT(one.max_prob.mean, 0.95);
}

TEST(SingleLayerFacts, ScaleOneBlowsUpTheQueryAndKeyGradients) {
  const auto cases = join(measure(kLarge, 8, {"1", "1/sqrt(dk)"}), measure(kLarge, 64, {"1", "1/sqrt(dk)"}));
  for (int64_t n : {8, 64})
    for (int64_t d : kLarge) {
      const CaseResult &one = at(cases, d, n, "1"), &standard = at(cases, d, n, "1/sqrt(dk)");
      EXPECT_GE(one.grad_q.mean / standard.grad_q.mean, 2.0) << "d_k " << d << ", n " << n;
      EXPECT_GE(one.grad_k.mean / standard.grad_k.mean, 2.0) << "d_k " << d << ", n " << n;
    }
}

TEST(SingleLayerFacts, InverseHeadSizeVanishesThroughFlatAttention) {
  const auto cases = join(measure(kHeadSizes, 8, {"1/dk"}), measure(kLarge, 64, {"1/dk"}));
  for (int64_t n : {8, 64})
    for (int64_t d : kLarge) EXPECT_GE(at(cases, d, n, "1/dk").entropy.mean, 0.97) << "d_k " << d << ", n " << n;
  const double slope = loglog_slope(series(cases, 8, "1/dk"), &CaseResult::grad_q);
  EXPECT_GE(slope, -0.6);
  EXPECT_LE(slope, -0.4);
}

TEST(SingleLayerFacts, InverseSqrtHeadSizeKeepsEveryNormFlatAndPassesFiniteDifferences) {
  const auto cases = measure(kHeadSizes, 8, {"1/sqrt(dk)"}, 8);
  const auto s = series(cases, 8, "1/sqrt(dk)");
  for (Estimate CaseResult::*m : {&CaseResult::grad_scores, &CaseResult::grad_q, &CaseResult::grad_k, &CaseResult::grad_v})
    EXPECT_LE(max_relative_deviation(s, m), 0.25);
  for (const CaseResult* c : s) EXPECT_NEAR(c->entropy.mean, s.front()->entropy.mean, 0.05) << "d_k " << c->d_k;
  for (int64_t d : kHeadSizes) {
    const CaseResult& c = at(cases, d, 8, "1/sqrt(dk)");
    ASSERT_EQ(c.fd.size(), 8u);
    for (const FiniteDifferenceCheck& f : c.fd) {
      EXPECT_LE(f.error, kFdTolerance) << "d_k " << d;
      // The check has teeth here: rounding alone could not hide an error near the tolerance.
      EXPECT_LT(f.rounding_floor, kFdTolerance / 100) << "d_k " << d;
    }
  }
}

TEST(SingleLayerFacts, FiniteDifferencesFailAtScaleOneOnlyBecauseTheSoftmaxSaturates) {
  const auto cases = measure({1024}, 8, {"1"}, 8);
  const CaseResult& c = at(cases, 1024, 8, "1");
  int failed = 0;
  for (const FiniteDifferenceCheck& f : c.fd) {
    if (f.error <= kFdTolerance) continue;
    ++failed;
    // Why: one key holds more than 99.99% of the weight, so the gradient through the softmax is tiny,
    // and the error is what float64 rounding of L gives a gradient that small (not a wrong gradient).
    EXPECT_LT(f.runner_up, kSaturatedRunnerUp) << "error " << f.error;
    EXPECT_EQ(verdict(f), FdVerdict::TooSmallToSee) << "error " << f.error << ", excess " << f.excess;
    EXPECT_TRUE(explained_by_saturation(f));
  }
  EXPECT_GT(failed, 0) << "no check failed, so the explanation above was not exercised";
  // The same samples with 1/sqrt(d_k) pass (InverseSqrtHeadSizeKeepsEveryNormFlatAndPassesFiniteDifferences):
  // the samples are not special, the scale is.
}
