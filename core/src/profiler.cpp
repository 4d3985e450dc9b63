#include <minitrain/core/profiler.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

namespace minitrain::profiler {

namespace {
bool g_enabled = false;
thread_local int g_depth = 0;
std::mutex g_mutex;
std::map<std::string, Entry>& table() {
  static std::map<std::string, Entry> t;
  return t;
}
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void set_enabled(bool on) { g_enabled = on; }
bool enabled() { return g_enabled; }

void reset() {
  std::lock_guard<std::mutex> lock(g_mutex);
  table().clear();
}

std::vector<Entry> entries() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<Entry> out;
  for (auto& [name, e] : table()) out.push_back(e);
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return a.forward_ms + a.backward_ms > b.forward_ms + b.backward_ms;
  });
  return out;
}

Scope::Scope(const char* op, bool backward)
    : op_(op), backward_(backward), counted_(g_enabled), active_(g_enabled && g_depth == 0) {
  if (!counted_) return;
  ++g_depth;
  if (active_) start_ns_ = now_ns();
}

Scope::~Scope() {
  if (!counted_) return;
  --g_depth;
  if (!active_) return;
  const double ms = static_cast<double>(now_ns() - start_ns_) * 1e-6;
  std::lock_guard<std::mutex> lock(g_mutex);
  Entry& e = table()[op_];
  e.op = op_;
  if (backward_) {
    e.backward_ms += ms;
    ++e.backward_calls;
  } else {
    e.forward_ms += ms;
    ++e.forward_calls;
  }
}

}  // namespace minitrain::profiler
