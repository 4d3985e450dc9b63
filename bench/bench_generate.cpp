// Times sampling: GPT::generate with its KV cache against recomputing the whole context for every new
// token (what nanoGPT's generate does), from a one-token prompt up to a full block. Prints tokens/s of
// both and their ratio. The PyTorch side of the comparison is bench/pytorch_peer.py --generate.
#include <minitrain/core/factory.h>
#include <minitrain/core/threads.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/nn/init.h>

#include "bench_configs.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

using namespace minitrain;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// nanoGPT's loop: forward the (cropped) context, take the last position's logits, pick the next token.
// Greedy, so that both loops produce the same tokens and do the same work.
std::vector<int64_t> generate_by_recomputing(nn::GPT& model, std::vector<int64_t> tokens, int64_t new_tokens) {
  NoGradGuard no_grad;
  const int64_t V = model.config().vocab_size, block = model.config().block_size;
  for (int64_t s = 0; s < new_tokens; ++s) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(tokens.size()), block);
    std::vector<int64_t> context(tokens.end() - n, tokens.end());
    Tensor logits = model.forward(from_vector(context, {1, n})).narrow(1, n - 1, 1).reshape({V});
    const std::vector<float> row = logits.to_vector<float>();
    tokens.push_back(static_cast<int64_t>(std::max_element(row.begin(), row.end()) - row.begin()));
  }
  return tokens;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config = "small";
  int threads = 1;
  CLI::App app{"Time token generation with and without the KV cache"};
  app.add_option("--config", config, bench::kConfigHelp)->check(CLI::IsMember({"nano", "small"}));
  app.add_option("--threads", threads)->check(CLI::PositiveNumber);
  int repeats = 1;
  app.add_option("--repeats", repeats, "cached generations to time (the median is reported; more for profiling)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  const nn::GPTConfig c = bench::bench_config(config).model;
  set_num_threads(threads);
  nn::manual_seed(0);
  nn::GPT model(c);
  model.eval();

  const std::vector<int64_t> prompt{0};
  const int64_t new_tokens = c.block_size - 1;  // fills the block exactly: the cache never slides
  Generator gen(0);
  model.generate(prompt, 8, 0.0, 0, gen);  // warm-up

  std::vector<double> cached_times;
  std::vector<int64_t> cached;
  for (int r = 0; r < repeats; ++r) {
    const auto start = Clock::now();
    cached = model.generate(prompt, new_tokens, 0.0, 0, gen);
    cached_times.push_back(seconds_since(start));
  }
  std::sort(cached_times.begin(), cached_times.end());
  const double cached_s = cached_times[cached_times.size() / 2];
  auto t = Clock::now();
  const std::vector<int64_t> recomputed = generate_by_recomputing(model, prompt, new_tokens);
  const double recomputed_s = seconds_since(t);

  std::printf("config %s: n_layer %lld, n_embd %lld, block %lld, threads %d; %lld new tokens from a 1-token prompt\n",
              config.c_str(), (long long)c.n_layer, (long long)c.n_embd, (long long)c.block_size, threads,
              (long long)new_tokens);
  std::printf("with KV cache:        %8.1f tokens/s (%.1f ms)\n", new_tokens / cached_s, cached_s * 1e3);
  std::printf("recomputing context:  %8.1f tokens/s (%.1f ms)\n", new_tokens / recomputed_s, recomputed_s * 1e3);
  std::printf("speed-up of the cache: %.1fx; same greedy tokens: %s\n", recomputed_s / cached_s,
              cached == recomputed ? "yes" : "NO");
  return cached == recomputed ? 0 : 1;
}
