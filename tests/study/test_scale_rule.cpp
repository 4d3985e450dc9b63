// The --scale syntax of the study: a number, 1/sqrt(dk), 1/dk, dk^P, C*dk^P.
#include "scale_rule.h"

#include <gtest/gtest.h>

#include <stdexcept>

using namespace minitrain::study;

TEST(ScaleRule, ParsesEveryForm) {
  EXPECT_DOUBLE_EQ(parse_scale_rule("1").value(64), 1.0);
  EXPECT_DOUBLE_EQ(parse_scale_rule("0.5").value(64), 0.5);
  EXPECT_DOUBLE_EQ(parse_scale_rule("1/sqrt(dk)").value(64), 0.125);
  EXPECT_DOUBLE_EQ(parse_scale_rule("1/dk").value(64), 1.0 / 64);
  EXPECT_DOUBLE_EQ(parse_scale_rule("dk^-0.25").value(16), 0.5);
  EXPECT_DOUBLE_EQ(parse_scale_rule("2*dk^-0.5").value(16), 0.5);
  EXPECT_EQ(parse_scale_rule("2*dk^-0.5").label, "2*dk^-0.5");
  ASSERT_EQ(default_scale_rules().size(), 3u);
  EXPECT_EQ(default_scale_rules()[1].label, "1/sqrt(dk)");
}

TEST(ScaleRule, RejectsWhatItCannotRead) {
  for (const char* bad : {"", "abc", "0", "-1", "dk^", "*dk^2", "2dk^1", "1/sqrt(d)", "inf", "1e999"})
    EXPECT_THROW(parse_scale_rule(bad), std::invalid_argument) << bad;
  try {
    parse_scale_rule("abc");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'abc'"), std::string::npos) << e.what();
  }
}
