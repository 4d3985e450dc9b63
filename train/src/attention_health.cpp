#include <minitrain/train/attention_health.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace minitrain::train {

namespace {

const char* const kColumns[] = {"entropy", "max_weight", "logit_std", "grad_q", "grad_k", "grad_v"};
constexpr int kColumnsPerLayer = 6;

double qk_over_v(const LayerHealth& l) { return (l.grad_q + l.grad_k) / (2 * l.grad_v); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string format(const char* fmt, double a, double b = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}

// "layers 1, 3 " + what + " at iter N (" + details + "): " + meaning
std::string line(const std::vector<std::size_t>& layers, const std::string& what, int64_t iter,
                 const std::string& details, const std::string& meaning) {
  std::string names;
  for (std::size_t l : layers) names += (names.empty() ? "" : ", ") + std::to_string(l);
  return "attention health: layer" + std::string(layers.size() > 1 ? "s " : " ") + names + " " + what + " at iter " +
         std::to_string(iter) + " (" + details + "): " + meaning;
}

}  // namespace

std::vector<std::string> HealthJudge::assess(int64_t iter, const std::vector<LayerHealth>& layers) {
  const HealthThresholds& t = thresholds_;
  std::vector<std::string> out;
  if (iter < t.from_iter) return out;
  std::vector<std::size_t> saturated, vanished, spiking;
  std::string entropies, spreads, ratios, factors;  // the offending layers' numbers, comma-separated
  const auto append = [](std::string& list, const std::string& item) { list += (list.empty() ? "" : ", ") + item; };
  history_q_.resize(layers.size());
  history_k_.resize(layers.size());
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const LayerHealth& l = layers[i];
    if (l.attention.normalized_entropy < t.saturated_entropy) {  // NaN (no record) compares false
      saturated.push_back(i);
      append(entropies, format("%.3g", l.attention.normalized_entropy));
      append(spreads, format("%.3g", l.attention.logit_std));
    }
    if (l.grad_v > 0 && qk_over_v(l) < t.vanished_ratio) {
      vanished.push_back(i);
      append(ratios, format("%.2g", qk_over_v(l)));
    }
    if (static_cast<int64_t>(history_q_[i].size()) >= t.spike_history) {
      const double mq = median(history_q_[i]), mk = median(history_k_[i]);
      const double worst = std::max(mq > 0 ? l.grad_q / mq : 0.0, mk > 0 ? l.grad_k / mk : 0.0);
      if (worst > t.spike_factor) {
        spiking.push_back(i);
        append(factors, format("%.0fx", worst));
      }
    }
    history_q_[i].push_back(l.grad_q);
    history_k_[i].push_back(l.grad_k);
  }
  if (!saturated.empty() && !warned_saturated_) {
    warned_saturated_ = true;
    out.push_back(line(saturated, "saturated", iter,
                       "entropy/log T " + entropies + format(" below %.3g; logit spread ", t.saturated_entropy) + spreads,
                       "one key takes nearly all the weight and the softmax passes almost no gradient to q and k; "
                       "a smaller attention scale or learning rate avoids it"));
  }
  if (!vanished.empty() && !warned_vanished_) {
    warned_vanished_ = true;
    out.push_back(line(vanished, "lost their q/k gradients", iter,
                       "(|dW_q| + |dW_k|) / 2|dW_v| " + ratios + format(" below %.2g", t.vanished_ratio),
                       "W_q and W_k barely learn while W_v does"));
  }
  if (!spiking.empty() && !warned_spike_) {
    warned_spike_ = true;
    out.push_back(line(spiking, "have spiking q/k gradients", iter,
                       factors + format(" the median of earlier records, above %.0fx", t.spike_factor),
                       "near-ties between saturated keys make rare steps explode"));
  }
  return out;
}

AttentionHealth::AttentionHealth(Trainer& trainer, std::vector<std::shared_ptr<nn::MultiHeadAttention>> layers,
                                 int64_t interval, HealthThresholds thresholds,
                                 std::function<void(const std::string&)> warn)
    : trainer_(trainer),
      watch_(std::move(layers)),
      interval_(interval),
      judge_(thresholds),
      warn_(warn ? std::move(warn) : [](const std::string& s) { spdlog::warn("{}", s); }) {
  if (interval < 1) throw std::invalid_argument("AttentionHealth: interval must be at least 1, got " + std::to_string(interval));
  std::vector<std::string> columns;
  for (std::size_t i = 0; i < watch_.size(); ++i)
    for (const char* c : kColumns) columns.push_back("attn" + std::to_string(i) + "_" + c);
  trainer_.add_metric_columns(columns);
  trainer_.on_after_backward([this](int64_t iter, double) {
    if (iter % interval_ != 0 || !watch_.enabled()) return;
    const std::vector<LayerHealth> layers = watch_.read();
    std::vector<double> values;
    for (const LayerHealth& l : layers)
      values.insert(values.end(), {l.attention.normalized_entropy, l.attention.max_probability, l.attention.logit_std,
                                   l.grad_q, l.grad_k, l.grad_v});
    trainer_.record_metrics(iter, values);
    ++records_;
    for (const std::string& warning : judge_.assess(iter, layers)) warn_(warning);
  });
  // The layers carry hooks only for the steps that are recorded.
  trainer_.on_step([this](int64_t iter, double) { watch_.set_enabled((iter + 1) % interval_ == 0); });
}

GnuplotResult AttentionHealth::plot(const std::string& out_dir) const {
  const std::filesystem::path dir(out_dir);
  const std::string png = (dir / "attention_health.png").string(), script_path = png + ".gp";
  {
    std::ofstream f(script_path);
    if (!f) return {GnuplotResult::Status::failed, "cannot write " + script_path};
    f << "# Attention health of a minitrain run: gnuplot -c <this file> <png> <metrics.csv>\n"
         "set datafile separator ','\nset terminal pngcairo size 900,800\nset output ARG1\n"
         "set multiplot layout 2,1\nset grid\nset key outside right\nset xlabel 'iteration'\n"
         "set ylabel 'attention entropy / log T'\nset yrange [0:1.05]\nplot ";
    const std::size_t n = watch_.size();
    // Standard columns 1-7, then 6 per layer: entropy is column 8 + 6i, logit spread 10 + 6i.
    for (std::size_t i = 0; i < n; ++i)
      f << (i ? ", " : "") << (i ? "''" : "ARG2") << " using 1:" << 8 + kColumnsPerLayer * i
        << " skip 1 with linespoints title 'layer " << i << "'";
    f << ", " << judge_.thresholds().saturated_entropy << " with lines dt 2 lc rgb 'black' title 'saturated below'";
    f << "\nset ylabel 'logit spread (std of scaled scores)'\nset yrange [*:*]\nset logscale y\nplot ";
    for (std::size_t i = 0; i < n; ++i)
      f << (i ? ", " : "") << (i ? "''" : "ARG2") << " using 1:" << 10 + kColumnsPerLayer * i
        << " skip 1 with linespoints title 'layer " << i << "'";
    f << "\nunset multiplot\n";
    if (!f.flush()) return {GnuplotResult::Status::failed, "cannot write " + script_path};
  }
  return run_gnuplot(script_path, {png, (dir / "metrics.csv").string()});
}

}  // namespace minitrain::train
