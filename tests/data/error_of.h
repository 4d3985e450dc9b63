// Shared by the data tests: the message of the exception a call throws.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace minitrain::data {

// The message of the exception `f` throws (fails the test when it throws nothing or another type).
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

}  // namespace minitrain::data
