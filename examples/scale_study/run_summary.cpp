#include "run_summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace minitrain::study {

double median(std::vector<double> v) {
  if (v.empty()) throw std::invalid_argument("median: no values");
  const std::size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  return v[mid];
}

namespace {

// Per-layer mean of `field` over steps [first, last) that have layer records.
std::vector<double> layer_means(const std::vector<StepRecord>& steps, std::size_t first, std::size_t last,
                                double (*field)(const LayerStep&)) {
  std::vector<double> sum;
  int64_t count = 0;
  for (std::size_t i = first; i < last; ++i) {
    if (steps[i].layers.empty()) continue;  // a step whose loss was not finite
    sum.resize(steps[i].layers.size(), 0.0);
    for (std::size_t l = 0; l < sum.size(); ++l) sum[l] += field(steps[i].layers[l]);
    ++count;
  }
  for (double& s : sum) s /= static_cast<double>(count);
  return sum;
}

}  // namespace

RunSummary summarise(const RunResult& run) {
  if (run.steps.empty()) throw std::invalid_argument("summarise: the run has no steps");
  RunSummary s;
  char label[96];
  std::snprintf(label, sizeof label, "scale %s, lr %g, seed %llu", run.rule.label.c_str(), run.learning_rate,
                static_cast<unsigned long long>(run.seed));
  s.label = label;
  s.rule = run.rule.label;
  s.seed = run.seed;
  s.scale = run.scale;
  s.learning_rate = run.learning_rate;
  s.steps = static_cast<int64_t>(run.steps.size());
  s.diverged = run.diverged;
  s.ms_per_step = 1e3 * run.seconds / static_cast<double>(s.steps);
  s.final_val = run.evals.back().val_loss;
  s.best_val = s.final_val;
  for (const EvalRecord& e : run.evals) s.best_val = std::min(s.best_val, e.val_loss);

  const std::size_t n = run.steps.size(), tail = n - std::max<std::size_t>(1, n / 10);
  std::vector<double> norms, losses;
  for (std::size_t i = 0; i < n; ++i) {
    const StepRecord& step = run.steps[i];
    if (i >= tail) s.end_loss += step.loss / static_cast<double>(n - tail);
    if (norms.size() >= 10) {  // spikes are judged against the steps before, once there are some
      const std::size_t from = norms.size() - std::min<std::size_t>(norms.size(), kSpikeWindow);
      std::vector<double> prev_norms(norms.begin() + static_cast<std::ptrdiff_t>(from), norms.end());
      std::vector<double> prev_losses(losses.begin() + static_cast<std::ptrdiff_t>(from), losses.end());
      if (step.grad_norm > kGradSpikeFactor * median(prev_norms)) ++s.grad_spikes;
      if (step.loss > median(prev_losses) + kLossSpikeNats) ++s.loss_spikes;
    }
    if (!std::isfinite(step.loss) || !std::isfinite(step.grad_norm)) continue;  // the diverged last step
    if (step.grad_norm > s.grad_norm_max) {
      s.grad_norm_max = step.grad_norm;
      s.grad_norm_max_iter = step.iter;
    }
    norms.push_back(step.grad_norm);
    losses.push_back(step.loss);
  }
  s.grad_norm_median = norms.empty() ? NAN : median(norms);
  for (int q = 0; q < 4; ++q) {  // the 10 steps before each quarter mark (NaN where the run had stopped)
    const std::size_t end = std::max<std::size_t>(1, n * static_cast<std::size_t>(q + 1) / 4);
    const std::size_t begin = end - std::min<std::size_t>(end, 10);
    double total = 0;
    for (std::size_t i = begin; i < end; ++i) total += run.steps[i].loss;
    s.loss_at[q] = total / static_cast<double>(end - begin);
  }
  s.stalled = !s.diverged && s.loss_at[0] - s.loss_at[1] < kStallNats;

  s.entropy_init = layer_means(run.steps, 0, 1, [](const LayerStep& l) { return l.entropy; });
  s.logit_std_init = layer_means(run.steps, 0, 1, [](const LayerStep& l) { return l.logit_std; });
  s.qk_over_v_init = layer_means(run.steps, 0, 1, qk_over_v);
  s.entropy_end = layer_means(run.steps, tail, n, [](const LayerStep& l) { return l.entropy; });
  s.logit_std_end = layer_means(run.steps, tail, n, [](const LayerStep& l) { return l.logit_std; });
  s.qk_over_v_end = layer_means(run.steps, tail, n, qk_over_v);
  for (double h : s.entropy_end) {
    s.saturated_layers += h < kSaturatedEntropy;
    s.flat_layers += h > kFlatEntropy;
  }
  return s;
}

namespace {
std::string format_mean_sd(double mean, double sd) {
  char buf[64];
  std::snprintf(buf, sizeof buf, " (%.4f ± %.4f, ", mean, sd);
  return buf;
}
}  // namespace

// The scales at one learning rate ordered by their mean final val loss over seeds, each as mean ± sample
// standard deviation (n seeds). Neighbours whose means differ by less than the sum of their deviations
// are joined by "≈" and called not distinguishable; "<" means the gap is larger than that noise.
std::string rank_by_final_val(const std::vector<RunSummary>& summaries, double lr) {
  struct Scale {
    std::string rule;
    std::vector<double> finals;
    double mean = 0, sd = 0;
  };
  std::vector<Scale> scales;
  for (const RunSummary& s : summaries) {
    if (s.learning_rate != lr) continue;
    auto it = std::find_if(scales.begin(), scales.end(), [&](const Scale& x) { return x.rule == s.rule; });
    if (it == scales.end()) it = scales.insert(scales.end(), Scale{s.rule, {}, 0, 0});
    it->finals.push_back(s.final_val);
  }
  for (Scale& x : scales) {
    const double n = static_cast<double>(x.finals.size());
    for (double v : x.finals) x.mean += v / n;
    for (double v : x.finals) x.sd += (v - x.mean) * (v - x.mean);
    x.sd = x.finals.size() > 1 ? std::sqrt(x.sd / (n - 1)) : 0.0;
  }
  std::sort(scales.begin(), scales.end(), [](const Scale& a, const Scale& b) { return a.mean < b.mean; });
  std::string out, ties;
  for (std::size_t i = 0; i < scales.size(); ++i) {
    const Scale& x = scales[i];
    if (i > 0) {
      const bool close = x.mean - scales[i - 1].mean <= x.sd + scales[i - 1].sd;
      out += close ? " ≈ " : " < ";
      if (close) ties += (ties.empty() ? "" : "; ") + scales[i - 1].rule + " and " + x.rule;
    }
    out += "scale " + x.rule + format_mean_sd(x.mean, x.sd) + std::to_string(x.finals.size()) + " seeds)";
  }
  if (scales.size() > 1 && scales.front().finals.size() < 2)
    return out + ". One seed per scale: no noise estimate, so no gap above can be called real.";
  return out + (ties.empty() ? ". Every gap is larger than the seed-to-seed spread."
                             : ". Not distinguishable (gap within the seed-to-seed spread): " + ties + ".");
}

}  // namespace minitrain::study
