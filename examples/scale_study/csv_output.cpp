#include "csv_output.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace minitrain::study {

namespace {

std::ofstream open_csv(const std::string& path, const char* header) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << header << '\n';
  return out;
}

// %.5g keeps the files small; the quantities are measured to a few percent at best.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.5g", v);
  return buf;
}

// Labels such as "1/sqrt(dk)" hold no comma or quote, but quote them anyway: they are user text.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

FdSummary summarise_fd(const CaseResult& c) {
  FdSummary s;
  for (const FiniteDifferenceCheck& f : c.fd) {
    ++s.checked;
    s.worst_error = std::max(s.worst_error, f.error);
    s.worst_excess = std::max(s.worst_excess, f.excess);
    s.wrong += verdict(f) == FdVerdict::Wrong;
    if (f.error > kFdTolerance) {
      ++s.failed;
      s.failed_max_runner_up = std::max(s.failed_max_runner_up, f.runner_up);
    }
  }
  return s;
}

void write_single_layer_csv(const std::string& path, const std::vector<CaseResult>& cases) {
  std::ofstream out = open_csv(path,
                               "d_k,n_keys,scale_rule,scale,samples,var_qk,var_qk_se,var_scores,var_scores_se,"
                               "max_prob,max_prob_se,entropy_ratio,entropy_ratio_se,grad_scores,grad_scores_se,"
                               "grad_q,grad_q_se,grad_k,grad_k_se,grad_v,grad_v_se,fd_checked,fd_failed,"
                               "fd_worst_rel_error,fd_worst_excess,fd_wrong,fd_failed_max_runner_up,"
                               "grad_scores_median,grad_scores_p99,grad_scores_vanished,grad_q_median,grad_q_p99,"
                               "grad_q_vanished,grad_k_median,grad_k_p99,grad_k_vanished,grad_v_median,grad_v_p99,"
                               "grad_v_vanished,jacobian,jacobian_se,jacobian_median,jacobian_p99");
  for (const CaseResult& c : cases) {
    out << c.d_k << ',' << c.n_keys << ',' << quoted(c.rule.label) << ',' << num(c.scale) << ',' << c.samples;
    for (const Estimate& e : {c.var_qk, c.var_scores, c.max_prob, c.entropy, c.grad_scores, c.grad_q, c.grad_k, c.grad_v})
      out << ',' << num(e.mean) << ',' << num(e.se);
    const FdSummary fd = summarise_fd(c);
    out << ',' << fd.checked << ',' << fd.failed << ',' << num(fd.worst_error) << ',' << num(fd.worst_excess) << ',' << fd.wrong
        << ',' << num(fd.failed_max_runner_up);
    for (const Spread& sp : {c.grad_scores_spread, c.grad_q_spread, c.grad_k_spread, c.grad_v_spread})
      out << ',' << num(sp.median) << ',' << num(sp.p99) << ',' << num(sp.vanished);
    out << ',' << num(c.jacobian.mean) << ',' << num(c.jacobian.se) << ',' << num(c.jacobian_spread.median) << ','
        << num(c.jacobian_spread.p99) << '\n';
  }
}

void write_steps_csv(const std::string& path, const std::vector<RunResult>& runs) {
  std::ofstream out = open_csv(path, "scale_rule,scale,learning_rate,seed,iter,loss,lr,grad_norm,mean_entropy,mean_qk_over_v");
  for (const RunResult& r : runs)
    for (const StepRecord& s : r.steps)
      out << quoted(r.rule.label) << ',' << num(r.scale) << ',' << num(r.learning_rate) << ',' << r.seed << ','
          << s.iter << ',' << num(s.loss) << ',' << num(s.lr) << ',' << num(s.grad_norm) << ',' << num(mean_entropy(s)) << ','
          << num(mean_qk_over_v(s)) << '\n';
}

void write_layers_csv(const std::string& path, const std::vector<RunResult>& runs, int64_t every) {
  if (every < 1) throw std::invalid_argument("write_layers_csv: every must be at least 1, got " + std::to_string(every));
  std::ofstream out = open_csv(path, "scale_rule,scale,learning_rate,seed,iter,layer,grad_q,grad_k,grad_v,entropy,max_prob,logit_std");
  for (const RunResult& r : runs)
    for (std::size_t i = 0; i < r.steps.size(); ++i) {
      const StepRecord& s = r.steps[i];
      if (s.iter % every != 0 && i + 1 != r.steps.size()) continue;
      for (std::size_t l = 0; l < s.layers.size(); ++l) {
        const LayerStep& x = s.layers[l];
        out << quoted(r.rule.label) << ',' << num(r.scale) << ',' << num(r.learning_rate) << ',' << r.seed << ','
            << s.iter << ',' << l
            << ',' << num(x.grad_q) << ',' << num(x.grad_k) << ',' << num(x.grad_v) << ',' << num(x.entropy) << ','
            << num(x.max_prob) << ',' << num(x.logit_std) << '\n';
      }
    }
}

}  // namespace minitrain::study
