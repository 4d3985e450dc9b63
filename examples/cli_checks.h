// Flag checks shared by the example programs: every number is parsed strictly and refused when out of
// range, naming the flag (CLI11 prefixes the option's name) and the accepted range. Nothing is clamped:
// CLI11's own conversion saturates out-of-range integers (99999999999999999999999 became INT64_MAX) and
// its number validators accept "nan".
#pragma once

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace minitrain::examples {

// A decimal integer in [lo, hi].
inline CLI::Validator integer_in(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        int64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, value);
        const std::string range = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
        if (text.empty() || ptr != end || (ec != std::errc() && ec != std::errc::result_out_of_range))
          return "'" + text.substr(0, 40) + "' is not an integer (expected " + range + ")";
        if (ec == std::errc::result_out_of_range || value < lo || value > hi)
          return text.substr(0, 40) + " is out of range (expected " + range + ")";
        return "";
      },
      "INT in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", "integer_in");
}

// A seed: a decimal integer in [0, 2^64 - 1] (no sign, no exponent: "-1" and "1e23" are not seeds).
inline CLI::Validator seed_value() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, value);
        if (text.empty() || ptr != end || ec != std::errc())
          return "'" + text.substr(0, 40) + "' is not a seed (expected an integer in [0, 18446744073709551615])";
        return "";
      },
      "UINT64", "seed_value");
}

inline std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A finite number in [lo, hi] ("nan", "inf" and trailing text are refused).
inline CLI::Validator number_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = text.empty() ? NAN : std::strtod(text.c_str(), &end);
        const std::string range = "a finite number in [" + number_text(lo) + ", " + number_text(hi) + "]";
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value))
          return "'" + text.substr(0, 40) + "' is not " + range;
        if (value < lo || value > hi) return text.substr(0, 40) + " is out of range (expected " + range + ")";
        return "";
      },
      "NUMBER in [" + number_text(lo) + ", " + number_text(hi) + "]", "number_in");
}

}  // namespace minitrain::examples
