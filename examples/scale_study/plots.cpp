#include "plots.h"

#include <minitrain/train/gnuplot.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <unistd.h>

namespace minitrain::study {

namespace {

// A gnuplot script with inline data blocks ($name << EOD ... EOD), so no data files are left behind.
class Script {
 public:
  Script(int width, int height) {
    s_ << "set terminal pngcairo size " << width << ',' << height << " font ',10' noenhanced\n";
  }
  Script& operator<<(const std::string& line) {
    s_ << line << '\n';
    return *this;
  }
  // Returns the block's name. Non-finite values become gnuplot's missing-data marker.
  std::string data(const std::vector<std::vector<double>>& rows) {
    const std::string name = "$d" + std::to_string(blocks_++);
    s_ << name << " << EOD\n";
    for (const auto& row : rows) {
      for (double v : row) s_ << (std::isfinite(v) ? fmt(v) : std::string("NaN")) << ' ';
      s_ << '\n';
    }
    s_ << "EOD\n";
    return name;
  }
  // The PNG's name (under the user's --out_dir) reaches gnuplot as ARG1, never through the script text
  // or a shell (train/gnuplot.h). A plot that fails says why in one line; the others are still drawn.
  bool render(const std::string& png) const {
    const std::filesystem::path script =
        std::filesystem::temp_directory_path() / ("scale_study_" + std::to_string(getpid()) + "_" +
                                                  std::filesystem::path(png).stem().string() + ".gp");
    {
      std::ofstream f(script);
      if (!f) return false;
      f << "set output ARG1\n" << s_.str();
    }
    const train::GnuplotResult result = train::run_gnuplot(script.string(), {png});
    std::filesystem::remove(script);
    if (!result.ok()) std::cerr << "scale_study: cannot draw " << png << ": " << result.error << "\n";
    return result.ok();
  }

 private:
  static std::string fmt(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
  }
  std::ostringstream s_;
  int blocks_ = 0;
};

std::string quote(const std::string& s) { return "'" + s + "'"; }  // labels hold no single quote

template <class T>
void add_unique(std::vector<T>& v, const T& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

std::string lr_label(double lr) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "lr %g", lr);
  return buf;
}

// Trailing mean over `window` steps: per-step losses of a batch of 12 are too noisy to compare runs.
std::vector<double> smooth(const std::vector<double>& x, std::size_t window) {
  std::vector<double> out(x.size());
  double total = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    total += x[i];
    if (i >= window) total -= x[i - window];
    out[i] = total / static_cast<double>(std::min(i + 1, window));
  }
  return out;
}

void plot_part1_metric(Script& s, const std::vector<CaseResult>& cases, int64_t n, Estimate CaseResult::*metric,
                       const std::string& title, bool log_y) {
  std::vector<std::string> rules;
  for (const CaseResult& c : cases) add_unique(rules, c.rule.label);
  int64_t d_min = INT64_MAX, d_max = 0;
  for (const CaseResult& c : cases) {
    d_min = std::min(d_min, c.d_k);
    d_max = std::max(d_max, c.d_k);
  }
  const double left = static_cast<double>(d_min) / 1.5, right = static_cast<double>(d_max) * 1.5;
  s << ("set title " + quote(title + ", n = " + std::to_string(n) + " keys"))
    << ("set xrange [" + std::to_string(left) + ":" + std::to_string(right) + "]");
  s << (log_y ? "set logscale xy" : "unset logscale; set logscale x");
  std::string plot = "plot ";
  for (const std::string& rule : rules) {
    std::vector<std::vector<double>> rows;
    for (const CaseResult& c : cases)
      if (c.n_keys == n && c.rule.label == rule)
        rows.push_back({static_cast<double>(c.d_k), (c.*metric).mean, (c.*metric).se});
    std::sort(rows.begin(), rows.end());
    plot += s.data(rows) + " using 1:2:3 with yerrorlines lw 2 title " + quote("scale " + rule) + ", ";
  }
  s << plot.substr(0, plot.size() - 2);
}

// One panel: a per-case value against x (d_k, log axis; or the sweep's exponent, linear), a line per key.
void plot_lines(Script& s, const std::vector<CaseResult>& cases, const std::function<std::string(const CaseResult&)>& line,
                const std::function<double(const CaseResult&)>& x, const std::function<double(const CaseResult&)>& y,
                const std::string& title, const std::string& scales) {
  std::vector<std::string> lines;
  for (const CaseResult& c : cases) add_unique(lines, line(c));
  s << ("set title " + quote(title)) << scales;
  std::string plot = "plot ";
  for (const std::string& l : lines) {
    std::vector<std::vector<double>> rows;
    for (const CaseResult& c : cases)
      if (line(c) == l) rows.push_back({x(c), y(c)});
    std::sort(rows.begin(), rows.end());
    plot += s.data(rows) + " using 1:2 with linespoints lw 2 title " + quote(l) + ", ";
  }
  s << plot.substr(0, plot.size() - 2);
}

}  // namespace

bool gnuplot_available() { return train::gnuplot_installed(); }

std::vector<std::string> plot_single_layer(const std::string& dir, const std::vector<CaseResult>& cases) {
  if (!gnuplot_available() || cases.empty()) return {};
  std::vector<int64_t> keys;
  for (const CaseResult& c : cases) add_unique(keys, c.n_keys);
  const int cols = static_cast<int>(keys.size());
  std::vector<std::string> made;

  Script norms(560 * cols, 840);
  norms << "set multiplot layout 2," + std::to_string(cols) << "set grid" << "set key top left" << "set xlabel 'd_k'";
  for (int64_t n : keys) plot_part1_metric(norms, cases, n, &CaseResult::grad_scores, "|dL/dscores|", true);
  for (int64_t n : keys) plot_part1_metric(norms, cases, n, &CaseResult::grad_q, "|dL/dq|", true);
  if (norms.render(dir + "/part1_grad_norms.png")) made.push_back("part1_grad_norms.png");

  Script entropy(560 * cols, 420);
  entropy << "set multiplot layout 1," + std::to_string(cols) << "set grid" << "set key right center"
          << "set xlabel 'd_k'" << "set yrange [0:1.05]";
  for (int64_t n : keys) plot_part1_metric(entropy, cases, n, &CaseResult::entropy, "attention entropy / log n", false);
  if (entropy.render(dir + "/part1_entropy.png")) made.push_back("part1_entropy.png");
  return made;
}

std::vector<std::string> plot_spread_and_sweep(const std::string& dir, const std::vector<CaseResult>& cases,
                                               const std::vector<CaseResult>& sweep) {
  if (!gnuplot_available() || cases.empty()) return {};
  std::vector<std::string> made;
  using Value = std::function<double(const CaseResult&)>;
  const std::vector<std::pair<std::string, Value>> panels{
      {"median |dL/dq|", [](const CaseResult& c) { return c.grad_q_spread.median; }},
      {"99th percentile |dL/dq|", [](const CaseResult& c) { return c.grad_q_spread.p99; }},
      {"share of samples with |dL/dq| < 1e-6", [](const CaseResult& c) { return c.grad_q_spread.vanished; }},
      {"median softmax Jacobian norm |diag(p) - pp^T|_2", [](const CaseResult& c) { return c.jacobian_spread.median; }},
  };
  const int64_t n = cases.front().n_keys;  // the first key count, as the sweep
  std::vector<CaseResult> first_n;
  for (const CaseResult& c : cases)
    if (c.n_keys == n) first_n.push_back(c);
  const std::string keys = ", n = " + std::to_string(n) + " keys";
  Script spread(1120, 840);
  spread << "set multiplot layout 2,2" << "set grid" << "set key top left" << "set xlabel 'd_k'";
  for (const auto& [title, value] : panels)
    plot_lines(spread, first_n, [](const CaseResult& c) { return "scale " + c.rule.label; },
               [](const CaseResult& c) { return static_cast<double>(c.d_k); }, value, title + keys,
               title.rfind("share", 0) == 0 ? "set logscale x; unset logscale y" : "set logscale xy");
  if (spread.render(dir + "/part1_spread.png")) made.push_back("part1_spread.png");
  if (sweep.empty()) return made;
  Script sw(1120, 840);
  sw << "set multiplot layout 2,2" << "set grid" << "set key top right" << "set xlabel 'p in c = d_k^p'";
  for (const auto& [title, value] : panels)
    plot_lines(sw, sweep, [](const CaseResult& c) { return "d_k " + std::to_string(c.d_k); },
               [](const CaseResult& c) { return c.rule.power; }, value, title + keys,
               title.rfind("share", 0) == 0 ? "unset logscale" : "unset logscale; set logscale y");
  if (sw.render(dir + "/part1_sweep.png")) made.push_back("part1_sweep.png");
  return made;
}

std::vector<std::string> plot_gpt_runs(const std::string& dir, const std::vector<RunResult>& all_runs) {
  if (!gnuplot_available() || all_runs.empty()) return {};
  std::vector<RunResult> runs;  // the first seed's runs: a line per scale stays readable
  for (const RunResult& r : all_runs)
    if (r.seed == all_runs.front().seed) runs.push_back(r);
  std::vector<double> lrs;
  std::vector<std::string> rules;
  for (const RunResult& r : runs) {
    add_unique(lrs, r.learning_rate);
    add_unique(rules, r.rule.label);
  }
  const int cols = static_cast<int>(lrs.size());
  std::vector<std::string> made;

  // One panel per learning rate, one line per scale, of a per-step value.
  const auto per_lr = [&](const std::string& file, const std::string& ylabel, bool log_y,
                          const std::function<std::vector<std::vector<double>>(const RunResult&)>& rows) {
    Script s(560 * cols, 420);
    s << "set multiplot layout 1," + std::to_string(cols) << "set grid" << "set xlabel 'iteration'" << "set key outside top center horizontal"
      << ("set ylabel " + quote(ylabel)) << (log_y ? "set logscale y" : "unset logscale");
    for (double lr : lrs) {
      s << ("set title " + quote(lr_label(lr)));
      std::string plot = "plot ";
      for (const RunResult& r : runs)
        if (r.learning_rate == lr)
          plot += s.data(rows(r)) + " using 1:2 with lines lw 1.5 title " + quote("scale " + r.rule.label) + ", ";
      s << plot.substr(0, plot.size() - 2);
    }
    if (s.render(dir + "/" + file)) made.push_back(file);
  };
  per_lr("part2_loss.png", "train loss (mean of 10 steps)", false, [](const RunResult& r) {
    std::vector<double> loss;
    for (const StepRecord& s : r.steps) loss.push_back(s.loss);
    loss = smooth(loss, 10);
    std::vector<std::vector<double>> rows;
    for (std::size_t i = 0; i < loss.size(); ++i) rows.push_back({static_cast<double>(r.steps[i].iter), loss[i]});
    return rows;
  });
  per_lr("part2_grad_norm.png", "global grad norm (before clipping)", true, [](const RunResult& r) {
    std::vector<std::vector<double>> rows;
    for (const StepRecord& s : r.steps) rows.push_back({static_cast<double>(s.iter), s.grad_norm});
    return rows;
  });
  per_lr("part2_qk_over_v.png", "(|dW_q| + |dW_k|) / 2|dW_v|, layer mean, mean of 10 steps", true, [](const RunResult& r) {
    std::vector<double> ratio, iters;
    for (const StepRecord& s : r.steps) {
      if (s.layers.empty()) continue;
      ratio.push_back(mean_qk_over_v(s));
      iters.push_back(static_cast<double>(s.iter));
    }
    ratio = smooth(ratio, 10);
    std::vector<std::vector<double>> rows;
    for (std::size_t i = 0; i < ratio.size(); ++i) rows.push_back({iters[i], ratio[i]});
    return rows;
  });

  // Attention entropy of every layer: a panel per run (rows: learning rates, columns: scales).
  Script s(420 * static_cast<int>(rules.size()), 330 * cols);
  s << "set multiplot layout " + std::to_string(cols) + "," + std::to_string(rules.size()) << "set grid"
    << "set yrange [0:1.05]" << "set key outside right font ',8'" << "set xlabel 'iteration'";
  for (double lr : lrs)
    for (const std::string& rule : rules)
      for (const RunResult& r : runs) {
        if (r.learning_rate != lr || r.rule.label != rule) continue;
        s << ("set title " + quote("entropy / log n: scale " + rule + ", " + lr_label(lr)));
        const std::size_t layers = r.steps.front().layers.size();
        if (layers == 0) {  // the first step was not finite: nothing recorded
          s << "plot NaN title 'no finite step'";
          continue;
        }
        std::string plot = "plot ";
        for (std::size_t l = 0; l < layers; ++l) {
          std::vector<std::vector<double>> rows;
          for (const StepRecord& step : r.steps)
            if (step.layers.size() == layers) rows.push_back({static_cast<double>(step.iter), step.layers[l].entropy});
          plot += s.data(rows) + " using 1:2 with lines lw 1.5 title " + quote("layer " + std::to_string(l)) + ", ";
        }
        s << plot.substr(0, plot.size() - 2);
      }
  if (s.render(dir + "/part2_entropy.png")) made.push_back("part2_entropy.png");
  return made;
}

}  // namespace minitrain::study
