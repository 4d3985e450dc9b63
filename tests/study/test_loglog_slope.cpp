// loglog_slope: the exponent of a power law, shared by the claims and the report's sweep table.
#include "claims.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

using namespace minitrain::study;

TEST(LoglogSlope, RecoversTheExponentOfAPowerLaw) {
  const std::vector<double> x{16, 64, 256, 1024};
  std::vector<double> falling, rising, flat;
  for (double v : x) {
    falling.push_back(3 * std::pow(v, -0.5));
    rising.push_back(0.01 * std::pow(v, 1.25));
    flat.push_back(7);
  }
  EXPECT_NEAR(loglog_slope(x, falling), -0.5, 1e-12);
  EXPECT_NEAR(loglog_slope(x, rising), 1.25, 1e-12);
  EXPECT_NEAR(loglog_slope(x, flat), 0.0, 1e-12);
}

TEST(LoglogSlope, OfASeriesFitsTheMeansAgainstHeadSize) {
  std::vector<CaseResult> cases(3);
  const std::vector<const CaseResult*> s{&cases[0], &cases[1], &cases[2]};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    cases[i].d_k = int64_t{16} << (2 * i);  // 16, 64, 256
    cases[i].grad_q.mean = 2 / static_cast<double>(cases[i].d_k);
  }
  EXPECT_NEAR(loglog_slope(s, &CaseResult::grad_q), -1.0, 1e-12);
}

TEST(LoglogSlope, RejectsWhatHasNoSlope) {
  EXPECT_THROW(loglog_slope(std::vector<double>{4}, std::vector<double>{2}), std::invalid_argument);
  EXPECT_THROW(loglog_slope(std::vector<double>{}, std::vector<double>{}), std::invalid_argument);
  EXPECT_THROW(loglog_slope({1, 2, 3}, {1, 2}), std::invalid_argument);  // lengths differ
  EXPECT_THROW(loglog_slope({1, 2}, {1, 0}), std::invalid_argument);     // log(0)
  EXPECT_THROW(loglog_slope({-1, 2}, {1, 2}), std::invalid_argument);
  EXPECT_THROW(loglog_slope({1, 2}, {1, NAN}), std::invalid_argument);
  EXPECT_THROW(loglog_slope({8, 8}, {1, 2}), std::invalid_argument);     // one x: a vertical line
  EXPECT_THROW(loglog_slope(std::vector<const CaseResult*>{}, &CaseResult::grad_q), std::invalid_argument);
  try {
    loglog_slope({1, 2}, {1, 0});
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("loglog_slope: point 1 is (2, 0)"), std::string::npos) << e.what();
  }
}
