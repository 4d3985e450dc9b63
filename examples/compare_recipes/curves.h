// Val-loss curves of several runs of one recipe, and the comparisons the recipe study reports: the mean
// curve over seeds, and where a curve first reaches a target loss (in steps or in training seconds).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minitrain::recipes {

struct CurvePoint {
  int64_t iter = 0;
  double seconds = 0;  // training time up to this evaluation (evaluations themselves excluded)
  double val_loss = 0;
};

using Curve = std::vector<CurvePoint>;  // in iteration order

// The pointwise mean of curves evaluated at the same iterations (iter and seconds averaged too); throws
// std::invalid_argument when they were not evaluated at the same iterations.
Curve mean_curve(const std::vector<Curve>& curves);

// The first point where the curve reaches `target` (val_loss <= target), interpolated linearly between
// the evaluation before and the one that reaches it: in iterations (by_seconds false) or training seconds.
// NaN when the curve never gets there.
double first_reaching(const Curve& curve, double target, bool by_seconds);

// The curve's val loss at `seconds` of training, interpolated between evaluations; NaN past its end.
double loss_at_seconds(const Curve& curve, double seconds);

// Sample mean and standard deviation (n - 1); the deviation is 0 for one value.
double mean_of(const std::vector<double>& v);
double std_of(const std::vector<double>& v);

}  // namespace minitrain::recipes
