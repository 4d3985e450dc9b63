// bench_health: what --health_interval costs. Trains the same GPT through train::Trainer with attention
// health off and on (train::AttentionHealth at the given interval), alternating the two a few times in one
// process, and prints ms/step for each and their ratio. Also the direct estimate: the recorded steps' extra
// time over the median step, spread over the interval. Random tokens (the cost does not depend on the text).
#include <minitrain/core/factory.h>
#include <minitrain/core/threads.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/attention_health.h>
#include <minitrain/train/trainer.h>

#include "bench_configs.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <vector>

using namespace minitrain;
using Clock = std::chrono::steady_clock;

namespace {

struct Timing {
  std::vector<double> step_ms;   // every timed step
  std::vector<double> recorded;  // the steps health recorded (on only)
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double mean(const std::vector<double>& v) { return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }

Timing run(const bench::BenchConfig& b, int64_t steps, int64_t warmup, int64_t interval) {
  nn::GPT model(b.model);
  train::TrainOptions o;
  o.max_iters = warmup + steps;
  o.eval_interval = o.max_iters + 1;  // evaluations only at 0 and the end, outside the timed steps
  o.eval_iters = 1;
  o.out_dir = "";
  o.log = o.progress = false;
  const int64_t B = b.batch_size, T = b.model.block_size, V = b.model.vocab_size;
  train::Trainer trainer(
      model, [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); },
      [&](bool, Generator& gen) {
        Tensor x = randint(0, V, {B, T}, gen), y = randint(0, V, {B, T}, gen);
        return train::TokenBatch{x, y};
      },
      o);
  std::unique_ptr<train::AttentionHealth> health;
  if (interval > 0)
    health = std::make_unique<train::AttentionHealth>(trainer, model.attention_layers(), interval, train::HealthThresholds{},
                                                      [](const std::string&) {});
  Timing t;
  auto previous = Clock::now();
  trainer.on_eval([&](int64_t, double, double) { previous = Clock::now(); });
  trainer.on_step([&](int64_t iter, double) {  // runs after health's own on_step: whole steps are timed
    const auto now = Clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - previous).count();
    previous = now;
    if (iter >= warmup) {
      t.step_ms.push_back(ms);
      if (interval > 0 && iter % interval == 0) t.recorded.push_back(ms);
    }
  });
  trainer.run();
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config = "nano";
  int64_t steps = 300, warmup = 10, interval = 100, rounds = 3;
  int threads = 2;
  CLI::App app{"The cost of attention health (--health_interval) in training steps"};
  app.add_option("--config", config, bench::kConfigHelp)->check(CLI::IsMember({"nano", "small"}));
  app.add_option("--steps", steps, "timed steps per run")->check(CLI::PositiveNumber);
  app.add_option("--interval", interval, "health interval")->check(CLI::PositiveNumber);
  app.add_option("--rounds", rounds, "off/on pairs, alternating")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads)->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  const bench::BenchConfig b = bench::bench_config(config);
  std::printf("%s, %d threads, %lld timed steps per run, interval %lld, %lld rounds\n", config.c_str(), threads,
              (long long)steps, (long long)interval, (long long)rounds);
  std::vector<double> off, on, recorded;
  for (int64_t r = 0; r < rounds; ++r) {
    const Timing a = run(b, steps, warmup, 0), h = run(b, steps, warmup, interval);
    std::printf("round %lld: off %.2f ms/step, on %.2f ms/step (mean)\n", (long long)r, mean(a.step_ms), mean(h.step_ms));
    off.insert(off.end(), a.step_ms.begin(), a.step_ms.end());
    on.insert(on.end(), h.step_ms.begin(), h.step_ms.end());
    recorded.insert(recorded.end(), h.recorded.begin(), h.recorded.end());
  }
  const double m_off = mean(off), m_on = mean(on);
  std::printf("mean step: off %.2f ms, on %.2f ms: ratio %.4f (%+.2f%%)\n", m_off, m_on, m_on / m_off,
              100 * (m_on / m_off - 1));
  const double extra = mean(recorded) - median(on);
  std::printf("recorded steps: mean %.2f ms against a median step of %.2f ms: %.2f ms extra, %.3f%% of a step at "
              "interval %lld\n", mean(recorded), median(on), extra, 100 * extra / median(on) / interval, (long long)interval);
  return 0;
}
