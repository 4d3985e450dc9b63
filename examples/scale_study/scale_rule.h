// An attention scale factor written as a rule of the head size d_k, so one flag means the same thing
// at every d_k: scale = constant · d_k^power ("1", "1/sqrt(dk)", "1/dk", "0.5", "dk^-0.75", "2*dk^-0.5").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minitrain::study {

struct ScaleRule {
  std::string label;  // as written by the user, used in tables, CSV files and plot keys
  double constant = 1, power = 0;
  double value(int64_t d_k) const;  // constant · d_k^power
};

// Throws std::invalid_argument naming the text when it is none of the forms above or not positive.
ScaleRule parse_scale_rule(const std::string& text);
// The three factors of the study: 1 (no scaling), 1/sqrt(dk) (the standard one), 1/dk.
std::vector<ScaleRule> default_scale_rules();

}  // namespace minitrain::study
