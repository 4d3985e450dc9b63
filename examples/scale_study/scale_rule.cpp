#include "scale_rule.h"

#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace minitrain::study {

namespace {
// The whole of `text` as a finite number, or false.
bool parse_number(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(out);
}
}  // namespace

double ScaleRule::value(int64_t d_k) const { return constant * std::pow(static_cast<double>(d_k), power); }

ScaleRule parse_scale_rule(const std::string& text) {
  ScaleRule rule;
  rule.label = text;
  const auto fail = [&](const std::string& why) {
    return std::invalid_argument("scale '" + text + "': " + why +
                                 " (write a number, 1/sqrt(dk), 1/dk, dk^P or C*dk^P)");
  };
  if (text == "1/sqrt(dk)") {
    rule.power = -0.5;
  } else if (text == "1/dk") {
    rule.power = -1;
  } else {
    const std::size_t dk = text.find("dk^");
    std::string constant = text, power;
    if (dk != std::string::npos) {
      constant = dk == 0 ? "1" : text.substr(0, dk);
      if (dk > 0) {  // "C*" before dk^P
        if (constant.size() < 2 || constant.back() != '*') throw fail("expected C*dk^P");
        constant.pop_back();
      }
      power = text.substr(dk + 3);
      if (!parse_number(power, rule.power)) throw fail("the power is not a number");
    }
    if (!parse_number(constant, rule.constant)) throw fail("not a number");
  }
  if (!(rule.constant > 0)) throw fail("the scale must be positive");
  return rule;
}

std::vector<ScaleRule> default_scale_rules() {
  return {parse_scale_rule("1"), parse_scale_rule("1/sqrt(dk)"), parse_scale_rule("1/dk")};
}

}  // namespace minitrain::study
