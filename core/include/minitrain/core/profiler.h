// A per-op time profile for benchmarks: forward and backward wall time per op name. Off by default;
// when off, a Scope costs one branch. Nested scopes (an op that calls other ops, a backward that runs
// forward ops) are charged to the outermost one only, so the totals add up to the time spent in ops.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minitrain::profiler {

void set_enabled(bool on);
bool enabled();
void reset();

struct Entry {
  std::string op;
  double forward_ms = 0, backward_ms = 0;
  int64_t forward_calls = 0, backward_calls = 0;
};
std::vector<Entry> entries();  // sorted by total time, largest first

class Scope {
 public:
  explicit Scope(const char* op, bool backward = false);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* op_;
  bool backward_;
  bool counted_;  // entered while profiling was on (so the nesting depth was raised)
  bool active_;   // the outermost scope: its time is recorded
  int64_t start_ns_ = 0;
};

}  // namespace minitrain::profiler
