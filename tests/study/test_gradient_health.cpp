// What the attention scale does to gradients, shown where people look: this test prints the table of
// part 1 (run it with `ctest --test-dir build -L study --verbose`, README) and asserts its shapes. With
// c = 1 the typical gradient vanishes while rare near-ties explode, which the mean hides; with 1/d_k
// gradients shrink as d_k^-1/2; with 1/sqrt(d_k) every statistic stays flat.
//
// 4,000 samples of n = 8 keys per d_k (seed fixed), the same samples for every scale. The thresholds sit
// well inside the measured values (in the table): c = 1's median ‖dL/dq‖ falls ~10^4× (asserted 100×), its
// 99th percentile rises ~6× (asserted 3×), the flat statistics move by up to 7% (p99 at d_k 16; asserted 10%; with 2,000 samples the p99's sampling
// noise alone reached 10%).
#include "claims.h"
#include "health_table.h"
#include "single_layer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

using namespace minitrain::study;

namespace {

const std::vector<int64_t> kHeadSizes{16, 64, 256, 1024};

const std::vector<CaseResult>& cases() {
  static const std::vector<CaseResult> measured = [] {
    SingleLayerOptions o;
    o.samples = 4000;
    o.fd_samples = 4;
    std::vector<CaseResult> out;
    for (int64_t d : kHeadSizes)
      for (const CaseResult& c : measure_single_layer(
               d, 8, {parse_scale_rule("1"), parse_scale_rule("1/sqrt(dk)"), parse_scale_rule("1/dk")}, o))
        out.push_back(c);
    return out;
  }();
  return measured;
}

const CaseResult& at(int64_t d, const std::string& rule) {
  const CaseResult* c = find_case(cases(), d, 8, rule);
  if (!c) throw std::logic_error("case not measured");
  return *c;
}

// max over d_k of |x / mean − 1| for a per-case statistic.
double deviation(const std::string& rule, double (*statistic)(const CaseResult&)) {
  double mean = 0, worst = 0;
  for (int64_t d : kHeadSizes) mean += statistic(at(d, rule)) / static_cast<double>(kHeadSizes.size());
  for (int64_t d : kHeadSizes) worst = std::max(worst, std::abs(statistic(at(d, rule)) / mean - 1));
  return worst;
}

}  // namespace

TEST(GradientHealth, PrintsTheTableAndNoGradientIsWrong) {
  std::cout << gradient_health_table(cases()) << std::flush;
  for (const CaseResult& c : cases())
    for (const FiniteDifferenceCheck& f : c.fd) {
      EXPECT_NE(verdict(f), FdVerdict::Wrong) << c.rule.label << " d_k " << c.d_k;
      if (c.rule.label == "1/sqrt(dk)") {
        EXPECT_EQ(verdict(f), FdVerdict::Pass) << "d_k " << c.d_k;
      }
    }
}

TEST(GradientHealth, ScaleOneVanishesTypicallyAndExplodesRarely) {
  const CaseResult &small = at(16, "1"), &large = at(1024, "1");
  EXPECT_GE(small.grad_q_spread.median / large.grad_q_spread.median, 100);
  EXPECT_GE(large.grad_q_spread.p99 / small.grad_q_spread.p99, 3);
  EXPECT_LE(small.grad_q_spread.vanished, 0.005);  // 1 sample in 4,000 at d_k 16; 42% at 1024
  EXPECT_GE(large.grad_q_spread.vanished, 0.2);
  // The mean alone would not show it: it stays within a factor of 3.
  EXPECT_LT(std::max(small.grad_q.mean, large.grad_q.mean) / std::min(small.grad_q.mean, large.grad_q.mean), 3);
  // The softmax passes less and less: its Jacobian norm falls.
  EXPECT_GE(small.jacobian.mean / large.jacobian.mean, 3);
}

TEST(GradientHealth, InverseHeadSizeShrinksGradientsAsTheSquareRoot) {
  const double slope = loglog_slope(series(cases(), 8, "1/dk"), &CaseResult::grad_q);
  EXPECT_NEAR(slope, -0.5, 0.1);
}

TEST(GradientHealth, InverseSquareRootKeepsEveryStatisticFlat) {
  const std::string rule = "1/sqrt(dk)";
  using Stat = double (*)(const CaseResult&);
  const std::vector<std::pair<const char*, Stat>> statistics{
      {"mean ‖dL/dscores‖", [](const CaseResult& c) { return c.grad_scores.mean; }},
      {"median ‖dL/dscores‖", [](const CaseResult& c) { return c.grad_scores_spread.median; }},
      {"p99 ‖dL/dscores‖", [](const CaseResult& c) { return c.grad_scores_spread.p99; }},
      {"mean ‖dL/dq‖", [](const CaseResult& c) { return c.grad_q.mean; }},
      {"median ‖dL/dq‖", [](const CaseResult& c) { return c.grad_q_spread.median; }},
      {"p99 ‖dL/dq‖", [](const CaseResult& c) { return c.grad_q_spread.p99; }},
      {"mean ‖dL/dK‖", [](const CaseResult& c) { return c.grad_k.mean; }},
      {"mean ‖dL/dV‖", [](const CaseResult& c) { return c.grad_v.mean; }},
      {"mean ‖J‖₂", [](const CaseResult& c) { return c.jacobian.mean; }},
      {"median ‖J‖₂", [](const CaseResult& c) { return c.jacobian_spread.median; }},
      {"entropy / log n", [](const CaseResult& c) { return c.entropy.mean; }},
  };
  for (const auto& [name, statistic] : statistics) EXPECT_LE(deviation(rule, statistic), 0.10) << name;
  for (int64_t d : kHeadSizes) EXPECT_EQ(at(d, rule).grad_q_spread.vanished, 0) << "d_k " << d;
}

TEST(GradientHealth, JacobianNormAndSpreadOnKnownInputs) {
  EXPECT_NEAR(softmax_jacobian_norm({0.25, 0.25, 0.25, 0.25}), 0.25, 1e-12);  // (I − 11ᵀ/n)/n: 1/n
  const double eps = 1e-6;  // two keys: eigenvalue 2·p1·p2
  EXPECT_NEAR(softmax_jacobian_norm({1 - eps, eps}) / (2 * eps * (1 - eps)), 1, 1e-6);
  EXPECT_NEAR(softmax_jacobian_norm({0.7, 0.2, 0.1}), 0.3, 0.1);  // between p_(2) and p_(1)
  const Spread s = spread({5, 1, 3, 2, 4, 1e-7, 1e-9});
  EXPECT_DOUBLE_EQ(s.median, 2);
  EXPECT_NEAR(s.vanished, 2.0 / 7, 1e-15);
  EXPECT_NEAR(s.p99, 4.94, 1e-12);  // between the two largest: 4 + 0.94·(5 − 4)
  EXPECT_THROW(spread({}), std::invalid_argument);
}
