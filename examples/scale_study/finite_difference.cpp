#include "finite_difference.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

namespace minitrain::study {

namespace {

double dot(const double* a, const double* b, int64_t d) {
  double total = 0;
  for (int64_t i = 0; i < d; ++i) total += a[i] * b[i];
  return total;
}

// The two per-key quantities L is made of: s_j = scale · q·k_j and w_j = v_j·u / sqrt(d), so that
// L = Σ_j softmax(s)_j w_j. A perturbation of q moves every s_j, of k_j only s_j, of v_j only w_j.
struct Parts {
  std::vector<double> s, w;
};

double score(const AttentionSample& x, int64_t j, double scale) { return scale * dot(x.q.data(), &x.K[j * x.d], x.d); }
double value(const AttentionSample& x, int64_t j) {
  return dot(&x.V[j * x.d], x.u.data(), x.d) / std::sqrt(static_cast<double>(x.d));
}

std::vector<double> scores_of(const AttentionSample& x, double scale) {
  std::vector<double> s(static_cast<std::size_t>(x.n));
  for (int64_t j = 0; j < x.n; ++j) s[j] = score(x, j, scale);
  return s;
}

Parts parts_of(const AttentionSample& x, double scale) {
  Parts p{scores_of(x, scale), std::vector<double>(static_cast<std::size_t>(x.n))};
  for (int64_t j = 0; j < x.n; ++j) p.w[j] = value(x, j);
  return p;
}

double combine(const Parts& p) {  // Σ softmax(s)_j w_j, max-subtracted
  const double m = *std::max_element(p.s.begin(), p.s.end());
  double z = 0, total = 0;
  for (std::size_t j = 0; j < p.s.size(); ++j) {
    const double e = std::exp(p.s[j] - m);
    z += e;
    total += e * p.w[j];
  }
  return total / z;
}

void check(const AttentionSample& x) {
  const auto d = static_cast<std::size_t>(x.d), n = static_cast<std::size_t>(x.n);
  if (x.d <= 0 || x.n <= 0 || x.q.size() != d || x.u.size() != d || x.K.size() != n * d || x.V.size() != n * d)
    throw std::invalid_argument("AttentionSample: q, u must hold d values and K, V n·d values");
}

// Central difference in one entry `v` of the sample; `loss` re-evaluates L after the entry changed.
double central_difference(double& v, double step, const std::function<double()>& loss) {
  const double saved = v;
  v = saved + step;
  const double plus = loss();
  v = saved - step;
  const double minus = loss();
  v = saved;
  return (plus - minus) / (2 * step);
}

}  // namespace

double sample_loss(const AttentionSample& x, double scale) {
  check(x);
  return combine(parts_of(x, scale));
}

std::vector<double> sample_probabilities(const AttentionSample& x, double scale) {
  check(x);
  std::vector<double> s = scores_of(x, scale);
  const double m = *std::max_element(s.begin(), s.end());
  double z = 0;
  for (double& v : s) z += (v = std::exp(v - m));
  for (double& v : s) v /= z;
  std::sort(s.begin(), s.end(), std::greater<double>());
  return s;
}

SampleGradients finite_difference_gradients(const AttentionSample& sample, double scale, double step) {
  check(sample);
  if (!(step > 0)) throw std::invalid_argument("finite_difference_gradients: step must be positive");
  AttentionSample x = sample;  // perturbed in place, one entry at a time
  const Parts base = parts_of(x, scale);
  SampleGradients g{std::vector<double>(x.q.size()), std::vector<double>(x.K.size()), std::vector<double>(x.V.size())};
  for (int64_t i = 0; i < x.d; ++i)  // q moves every score
    g.q[i] = central_difference(x.q[i], step, [&] { return combine(Parts{scores_of(x, scale), base.w}); });
  for (int64_t j = 0; j < x.n; ++j)
    for (int64_t i = 0; i < x.d; ++i) {
      Parts p = base;
      g.K[j * x.d + i] = central_difference(x.K[j * x.d + i], step, [&] {
        p.s[j] = score(x, j, scale);  // k_j moves s_j only
        return combine(p);
      });
      p = base;
      g.V[j * x.d + i] = central_difference(x.V[j * x.d + i], step, [&] {
        p.w[j] = value(x, j);  // v_j moves w_j only
        return combine(p);
      });
    }
  return g;
}

double numeric_uncertainty(const AttentionSample& x, double scale, double step) {
  check(x);
  const Parts p = parts_of(x, scale);
  const double m = *std::max_element(p.s.begin(), p.s.end());
  double z = 0, total = 0;
  for (std::size_t j = 0; j < p.s.size(); ++j) {
    const double e = std::exp(p.s[j] - m);
    z += e;
    total += e * std::abs(p.w[j]);
  }
  constexpr double kEpsilon = 2.220446049250313e-16;  // float64 unit roundoff
  return kEpsilon * (total / z) / (2 * step);
}

double rounding_floor(const AttentionSample& x, double scale, double step, double largest_gradient) {
  return numeric_uncertainty(x, scale, step) / largest_gradient;
}

double relative_error(const std::vector<double>& analytic, const std::vector<double>& numeric) {
  if (analytic.size() != numeric.size())
    throw std::invalid_argument("relative_error: " + std::to_string(analytic.size()) + " analytic values vs " +
                                std::to_string(numeric.size()) + " numeric");
  double diff = 0, size = 0;
  for (std::size_t i = 0; i < analytic.size(); ++i) {
    diff = std::max(diff, std::abs(analytic[i] - numeric[i]));
    size = std::max({size, std::abs(analytic[i]), std::abs(numeric[i])});
  }
  return size > 0 ? diff / size : 0.0;
}

double worst_excess(const std::vector<double>& analytic, const std::vector<double>& numeric, double atol, double rtol) {
  if (analytic.size() != numeric.size())
    throw std::invalid_argument("worst_excess: " + std::to_string(analytic.size()) + " analytic values vs " +
                                std::to_string(numeric.size()) + " numeric");
  if (!(atol > 0) || !(rtol >= 0)) throw std::invalid_argument("worst_excess: atol must be > 0 and rtol >= 0");
  double worst = 0;
  for (std::size_t i = 0; i < analytic.size(); ++i) {
    const double excess = std::abs(analytic[i] - numeric[i]) / (atol + rtol * std::abs(numeric[i]));
    if (std::isnan(excess)) return std::numeric_limits<double>::infinity();  // a NaN gradient is wrong
    worst = std::max(worst, excess);
  }
  return worst;
}

}  // namespace minitrain::study
