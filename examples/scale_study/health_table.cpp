#include "health_table.h"

#include <algorithm>
#include <cstdio>

namespace minitrain::study {

namespace {

template <typename T>
std::string cell(const char* format, T value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

std::string fd_verdicts(const CaseResult& c) {
  int pass = 0, too_small = 0, wrong = 0;
  for (const FiniteDifferenceCheck& f : c.fd) {
    const FdVerdict v = verdict(f);
    pass += v == FdVerdict::Pass, too_small += v == FdVerdict::TooSmallToSee, wrong += v == FdVerdict::Wrong;
  }
  if (c.fd.empty()) return "-";
  std::string out = std::to_string(pass) + " pass";
  if (too_small) out += ", " + std::to_string(too_small) + " too small";
  if (wrong) out += ", " + std::to_string(wrong) + " WRONG";
  return out;
}

}  // namespace

std::string gradient_health_table(const std::vector<CaseResult>& cases) {
  std::vector<std::string> rules;
  for (const CaseResult& c : cases)
    if (std::find(rules.begin(), rules.end(), c.rule.label) == rules.end()) rules.push_back(c.rule.label);
  std::string out;
  for (const std::string& rule : rules) {
    out += "scale " + rule + "\n";
    out += "   n   d_k |  ‖dL/dscores‖ median      p99 | ‖dL/dq‖ median      p99   <1e-6 | ‖J‖₂ median  "
           "entropy/log n | finite differences\n";
    for (const CaseResult& c : cases) {
      if (c.rule.label != rule) continue;
      out += cell("%4lld", static_cast<long long>(c.n_keys));
      out += cell(" %5lld |", static_cast<long long>(c.d_k));
      out += cell("              %8.3g", c.grad_scores_spread.median) + cell(" %8.3g |", c.grad_scores_spread.p99);
      out += cell("        %8.3g", c.grad_q_spread.median) + cell(" %8.3g", c.grad_q_spread.p99) +
             cell(" %6.1f%% |", 100 * c.grad_q_spread.vanished);
      out += cell("    %8.3g", c.jacobian_spread.median) + cell("  %13.3f |", c.entropy.mean);
      out += " " + fd_verdicts(c) + "\n";
    }
  }
  return out;
}

}  // namespace minitrain::study
