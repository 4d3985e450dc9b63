// Shared by the core tests: runs f, expects std::invalid_argument, and checks that the message holds each
// fragment (the op's name, the shapes, the dtypes: what a user needs to find the mistake).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace minitrain::test {

inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning '" << fragments.front() << "'";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    for (const auto& frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << "message: " << msg;
  }
}

}  // namespace minitrain::test
