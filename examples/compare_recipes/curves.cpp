#include "curves.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace minitrain::recipes {

Curve mean_curve(const std::vector<Curve>& curves) {
  if (curves.empty()) return {};
  Curve mean(curves.front().size());
  for (const Curve& c : curves) {
    if (c.size() != mean.size())
      throw std::invalid_argument("mean_curve: curves of " + std::to_string(c.size()) + " and " +
                                  std::to_string(mean.size()) + " evaluations");
    for (std::size_t i = 0; i < c.size(); ++i) {
      if (c[i].iter != curves.front()[i].iter)
        throw std::invalid_argument("mean_curve: evaluated at different iterations");
      mean[i].iter = c[i].iter;
      mean[i].seconds += c[i].seconds / static_cast<double>(curves.size());
      mean[i].val_loss += c[i].val_loss / static_cast<double>(curves.size());
    }
  }
  return mean;
}

double first_reaching(const Curve& curve, double target, bool by_seconds) {
  auto x = [&](const CurvePoint& p) { return by_seconds ? p.seconds : static_cast<double>(p.iter); };
  for (std::size_t i = 0; i < curve.size(); ++i) {
    if (!(curve[i].val_loss <= target)) continue;
    if (i == 0) return x(curve[0]);
    // Linear between the last evaluation above the target and this one, at or below it.
    const CurvePoint &a = curve[i - 1], &b = curve[i];
    const double t = (a.val_loss - target) / (a.val_loss - b.val_loss);
    return x(a) + t * (x(b) - x(a));
  }
  return std::numeric_limits<double>::quiet_NaN();
}

double loss_at_seconds(const Curve& curve, double seconds) {
  for (std::size_t i = 0; i < curve.size(); ++i) {
    if (curve[i].seconds < seconds) continue;
    if (i == 0) return curve[0].val_loss;
    const CurvePoint &a = curve[i - 1], &b = curve[i];
    const double t = (seconds - a.seconds) / (b.seconds - a.seconds);
    return a.val_loss + t * (b.val_loss - a.val_loss);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? std::numeric_limits<double>::quiet_NaN() : s / static_cast<double>(v.size());
}

double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

}  // namespace minitrain::recipes
