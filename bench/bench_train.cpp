// bench_train: times full GPT training steps (forward, cross-entropy, backward, AdamW, zero_grad) for a
// named config and prints ms/step, tokens/s, achieved GFLOP/s against a sgemm peak measured here, peak
// RSS and a per-op breakdown. A benchmark program, not a test: compare its figures side by side with
// bench/pytorch_peer.py (see bench/README.md).
#include <minitrain/core/factory.h>
#include <minitrain/core/profiler.h>
#include <minitrain/core/threads.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/optimizer.h>

#include "bench_configs.h"

#include <CLI/CLI.hpp>
#include <cblas.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <vector>

using namespace minitrain;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Best of a few 1024³ sgemm runs with OpenBLAS's own threading on `threads` threads: the ceiling a training
// step's GEMMs can reach on this machine. (minitrain itself runs OpenBLAS single-threaded inside its own
// OpenMP team, so the pool is set back to one thread afterwards.)
double sgemm_peak_gflops(int threads) {
  openblas_set_num_threads(threads);
  const int n = 1024;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    best = std::max(best, 2.0 * n * n * n / seconds_since(t) * 1e-9);
  }
  openblas_set_num_threads(1);
  return best;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// The breakdown groups op names into the categories the performance issue tracks.
std::string category(const std::string& op) {
  if (op == "matmul" || op == "linear") return "matmul";  // linear: a Linear layer's gemm, bias included
  if (op == "scaled_dot_product_attention" || op == "multi_head_attention") return "attention";
  if (op == "layer_norm" || op == "rms_norm") return "norm";
  if (op == "gelu" || op == "gelu_tanh" || op == "silu" || op == "relu") return "activation";
  if (op == "rotary_embedding") return "rotary";
  if (op == "cross_entropy") return "cross_entropy";
  return "other";
}

}  // namespace

int main(int argc, char** argv) {
  std::string config = "nano", architecture = "nanogpt";
  nn::GPTConfig c;
  int64_t batch = 0, steps = 20, warmup = 5;
  int threads = 1;
  bool profile = true;
  CLI::App app{"Time GPT training steps"};
  app.add_option("--config", config, bench::kConfigHelp)->check(CLI::IsMember({"nano", "small"}));
  app.add_option("--n_layer", c.n_layer);
  app.add_option("--n_head", c.n_head);
  app.add_option("--n_embd", c.n_embd);
  app.add_option("--block_size", c.block_size);
  app.add_option("--batch_size", batch);
  app.add_option("--steps", steps, "timed steps (median reported)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads)->check(CLI::PositiveNumber);
  app.add_option("--profile", profile, "per-op breakdown (adds a little overhead)");
  app.add_option("--architecture", architecture,
                 "nanogpt (the config's own) or llama (llama_style of the same sizes with QK-norm: RMSNorm, rotary, "
                 "SwiGLU, no biases, untied head)")
      ->check(CLI::IsMember({"nanogpt", "llama"}));
  app.parse_complete_callback([&] {
    // The named config fills in what the flags did not set.
    const bench::BenchConfig named = bench::bench_config(config);
    if (app.count("--n_layer") == 0) c.n_layer = named.model.n_layer;
    if (app.count("--n_head") == 0) c.n_head = named.model.n_head;
    if (app.count("--n_embd") == 0) c.n_embd = named.model.n_embd;
    if (app.count("--block_size") == 0) c.block_size = named.model.block_size;
    if (app.count("--batch_size") == 0) batch = named.batch_size;
    c.vocab_size = named.model.vocab_size;
    c.bias = named.model.bias;
    c.dropout = named.model.dropout;
  });
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  if (architecture == "llama") {
    c = nn::llama_style(c);
    c.qk_norm = true;
  }

  nn::GPT model(c);
  train::AdamW opt(model.named_parameters(), train::AdamWOptions(1e-3).betas({0.9, 0.99}).weight_decay(0.1));
  Generator gen(0);
  const int64_t T = c.block_size, tokens = batch * T;
  // As nanoGPT counts: without the position table (the untied head of the llama architecture is counted).
  const int64_t n_params = model.num_parameters() - (model.wpe ? c.block_size * c.n_embd : 0);
  const double flops_per_step = (6.0 * n_params + 12.0 * c.n_layer * T * c.n_embd) * tokens;
  const double peak = sgemm_peak_gflops(threads);

  std::vector<double> step_ms;
  double optimizer_ms = 0;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    const bool timed = s >= warmup;
    if (s == warmup) {
      profiler::reset();
      profiler::set_enabled(profile);
    }
    Tensor x = randint(0, c.vocab_size, {batch, T}, gen), y = randint(0, c.vocab_size, {batch, T}, gen);
    const auto t0 = Clock::now();
    Tensor loss = model.loss(x, y);
    loss.backward();
    const auto t1 = Clock::now();
    opt.step();
    opt.zero_grad();
    if (timed) {
      optimizer_ms += seconds_since(t1) * 1e3;
      step_ms.push_back(seconds_since(t0) * 1e3);
    }
  }
  profiler::set_enabled(false);
  std::vector<double> sorted = step_ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const double gflops = flops_per_step / (median * 1e-3) * 1e-9;

  std::printf("config %s (%s): n_layer %lld, n_head %lld, n_embd %lld, block %lld, batch %lld, %lld params, threads %d\n",
              config.c_str(), architecture.c_str(), (long long)c.n_layer, (long long)c.n_head, (long long)c.n_embd, (long long)T,
              (long long)batch, (long long)model.num_parameters(), threads);
  std::printf("step: median %.1f ms (min %.1f, max %.1f) over %lld steps\n", median, sorted.front(), sorted.back(),
              (long long)steps);
  std::printf("step time per million parameters: %.3f ms\n", median / (static_cast<double>(n_params) * 1e-6));
  std::printf("throughput: %.0f tokens/s, %.1f GFLOP/s (%.2f GFLOP/step), %.0f%% of measured sgemm peak %.1f GFLOP/s\n",
              tokens / (median * 1e-3), gflops, flops_per_step * 1e-9, 100.0 * gflops / peak, peak);
  std::printf("peak RSS: %.1f MiB\n", peak_rss_mib());
  if (profile) {
    std::map<std::string, std::pair<double, double>> groups;  // category -> (forward, backward) ms
    double covered = 0;
    for (const auto& e : profiler::entries()) {
      auto& g = groups[category(e.op)];
      g.first += e.forward_ms;
      g.second += e.backward_ms;
      covered += e.forward_ms + e.backward_ms;
    }
    double total = 0;
    for (double ms : step_ms) total += ms;
    groups["optimizer"] = {optimizer_ms, 0};
    groups["other"].first += std::max(0.0, total - covered - optimizer_ms);  // graph bookkeeping, copies, ...
    std::printf("per-op time per step (forward / backward ms, share of the step):\n");
    for (const char* name : {"matmul", "attention", "norm", "activation", "rotary", "cross_entropy", "optimizer", "other"}) {
      auto [f, b] = groups[name];
      std::printf("  %-14s %8.2f / %8.2f  %5.1f%%\n", name, f / steps, b / steps, 100.0 * (f + b) / total);
    }
    // What "other" is made of, largest first (the rest is time outside any op: graph walk, zero_grad, ...).
    std::printf("  other, by op:");
    int shown = 0;
    for (const auto& e : profiler::entries()) {
      if (category(e.op) != "other" || shown++ == 8) continue;
      std::printf(" %s %.2f/%.2f", e.op.c_str(), e.forward_ms / steps, e.backward_ms / steps);
    }
    std::printf("\n");
  }
  return 0;
}
