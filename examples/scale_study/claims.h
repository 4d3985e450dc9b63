// The claims about one attention layer, checked against part 1's measurements, for the report.
// (tests/study asserts the same facts on its own, with the helpers below.)
#pragma once

#include "single_layer.h"

#include <string>
#include <vector>

namespace minitrain::study {

// The case of (d_k, n, rule label), or nullptr.
const CaseResult* find_case(const std::vector<CaseResult>& cases, int64_t d_k, int64_t n, const std::string& rule);
// The cases of one key count and rule, in increasing d_k.
std::vector<const CaseResult*> series(const std::vector<CaseResult>& cases, int64_t n, const std::string& rule);
// Least-squares slope of log(y) against log(x): the exponent a of y ≈ C·x^a. Throws unless x and y have the
// same length, at least two points, every value positive and finite, and two different x.
double loglog_slope(const std::vector<double>& x, const std::vector<double>& y);
// The same over a series: log(metric's mean) against log(d_k).
double loglog_slope(const std::vector<const CaseResult*>& s, Estimate CaseResult::*metric);
// max over the series of |metric / (mean of the series' metric) − 1|: 0.25 means ±25%.
double max_relative_deviation(const std::vector<const CaseResult*>& s, Estimate CaseResult::*metric);
// The same for one field (median, p99) of a Spread.
double max_relative_deviation(const std::vector<const CaseResult*>& s, Spread CaseResult::*metric, double Spread::*field);

// A finite-difference check that fails is explained, not a wrong gradient, when its softmax is
// saturated (the runner-up weight is below kSaturatedRunnerUp: one key holds > 99.99% of the weight)
// and its verdict is TooSmallToSee: every entry agrees within kRoundingFactor times the rounding noise
// of the numeric gradient (single_layer.h), a test a wrong gradient fails.
inline constexpr double kSaturatedRunnerUp = 1e-4;
bool explained_by_saturation(const FiniteDifferenceCheck& check);

struct Claim {
  std::string statement;  // what the issue expects
  bool holds = false;
  std::string evidence;   // the measured numbers behind the verdict
};

// Needs the rules "1", "1/sqrt(dk)" and "1/dk"; claims whose cases were not measured are left out.
std::vector<Claim> check_single_layer_claims(const std::vector<CaseResult>& cases);

}  // namespace minitrain::study
