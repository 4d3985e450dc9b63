// bench_distributed: times data-parallel GPT training steps under mpirun (or alone for one rank) and the
// gradient all-reduce inside them, for the cost model in docs/distributed.md.
//
//   ./build/bench/bench_distributed --config nano                       # 1 rank, batch 12
//   mpirun -np 2 ./build/bench/bench_distributed --config nano          # 2 ranks x 6 (same global batch)
//   mpirun -np 2 ./build/bench/bench_distributed --config nano --batch_size 24   # 2 ranks x 12
//
// A step is what the Trainer does: forward and backward on this rank's rows, average the gradients
// (GradientAverager: flat buckets, non-blocking all-reduce), clip, AdamW, zero_grad. Rank 0 prints the
// median step time, its parts, and the all-reduce of the same gradient buckets timed alone.
#include <minitrain/core/factory.h>
#include <minitrain/core/random.h>
#include <minitrain/core/threads.h>
#include <minitrain/distributed/mpi.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/distributed.h>
#include <minitrain/train/optimizer.h>

#include "bench_configs.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

using namespace minitrain;
using namespace minitrain::train;
using Clock = std::chrono::steady_clock;

namespace {
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// The slowest rank's value: what the job waits for.
double max_over_ranks(const Communicator& comm, double v) {
  const std::vector<double> all = comm.all_gather({v});
  return *std::max_element(all.begin(), all.end());
}
}  // namespace

int main(int argc, char** argv) {
  std::string config = "nano";
  int64_t batch = 0, steps = 20, warmup = 3, bucket_kib = 1024;
  int threads = 0;
  bool overlap = GradientAveragerOptions{}.overlap;
  CLI::App app{"Time data-parallel GPT training steps and their gradient all-reduce"};
  app.add_option("--config", config, bench::kConfigHelp)->check(CLI::IsMember({"nano", "small"}));
  app.add_option("--batch_size", batch, "global batch, split across ranks (default: the config's)");
  app.add_option("--steps", steps, "timed steps (median reported)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads, "threads per rank (default: the machine's cores shared by its ranks)");
  app.add_option("--bucket_kib", bucket_kib, "gradient bucket size")->check(CLI::PositiveNumber);
  app.add_option("--overlap", overlap, "pipeline bucket packing with the non-blocking all-reduces");
  CLI11_PARSE(app, argc, argv);

  Communicator& comm = distributed::world();
  const bench::BenchConfig named = bench::bench_config(config);
  const nn::GPTConfig c = named.model;
  if (batch == 0) batch = named.batch_size;
  if (batch % comm.size() != 0) {
    if (comm.is_root()) std::fprintf(stderr, "--batch_size %lld is not divisible by %d ranks\n", (long long)batch, comm.size());
    return 1;
  }
  if (threads == 0) threads = threads_per_rank(comm, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  set_num_threads(threads);

  nn::GPT model(c);
  comm.broadcast(model.parameters());
  AdamW opt(model.named_parameters(), AdamWOptions(1e-3).betas({0.9, 0.99}).weight_decay(0.1));
  GradientAverager averager(comm, model.parameters(),
                            {static_cast<std::size_t>(bucket_kib) * 1024, overlap});
  const int64_t B = batch / comm.size(), T = c.block_size;
  Generator gen(1234 + static_cast<uint64_t>(comm.rank()));
  auto tokens = [&] { return randint(0, c.vocab_size, {B, T}, gen); };
  const std::vector<Tensor> params = model.parameters();

  std::vector<double> step_ms, compute_ms, reduce_ms, wait_ms;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    Tensor x = tokens(), y = tokens();
    comm.barrier();
    const auto t0 = Clock::now();
    model.loss(x, y).backward();
    const double fwd_bwd = ms_since(t0);
    const AllReduceStats before = averager.stats();
    if (comm.distributed()) averager.average();
    const double reduce = (averager.stats().seconds - before.seconds) * 1e3;
    const double wait = (averager.stats().wait_seconds - before.wait_seconds) * 1e3;
    const auto t1 = Clock::now();
    clip_grad_norm(params, 1.0);
    opt.step();
    opt.zero_grad();
    const double rest = ms_since(t1);
    const double total = ms_since(t0);
    if (s < warmup) continue;
    step_ms.push_back(max_over_ranks(comm, total));
    compute_ms.push_back(max_over_ranks(comm, fwd_bwd + rest));
    reduce_ms.push_back(max_over_ranks(comm, reduce));
    wait_ms.push_back(max_over_ranks(comm, wait));
  }

  // The same buckets reduced with no compute around them: the all-reduce's own cost.
  std::vector<double> alone_ms;
  if (comm.distributed()) {
    model.loss(tokens(), tokens()).backward();
    for (int rep = 0; rep < 20; ++rep) {
      comm.barrier();
      const AllReduceStats before = averager.stats();
      averager.average();
      alone_ms.push_back(max_over_ranks(comm, (averager.stats().seconds - before.seconds) * 1e3));
    }
  }

  if (comm.is_root()) {
    const int64_t n_params = model.num_parameters();
    const double grad_mib = static_cast<double>(n_params) * 4 / (1 << 20);
    const double step = median(step_ms);
    std::printf("config %s: %lld params (%.2f MiB of float32 gradients), %d rank%s x %d thread%s, global batch %lld "
                "(%lld per rank), T %lld, %lld buckets of <= %lld KiB, overlap %s\n",
                config.c_str(), (long long)n_params, grad_mib, comm.size(), comm.size() == 1 ? "" : "s", threads,
                threads == 1 ? "" : "s", (long long)batch, (long long)B, (long long)T, (long long)averager.num_buckets(),
                (long long)bucket_kib, overlap ? "on" : "off");
    std::printf("step %.2f ms median (min %.2f, max %.2f), %.0f tokens/s; compute (fwd+bwd+clip+AdamW) %.2f ms, "
                "gradient all-reduce %.2f ms/step (waiting %.2f ms)\n",
                step, *std::min_element(step_ms.begin(), step_ms.end()),
                *std::max_element(step_ms.begin(), step_ms.end()), static_cast<double>(batch * T) / step * 1e3,
                median(compute_ms), median(reduce_ms), median(wait_ms));
    if (!alone_ms.empty()) {
      const double ms = median(alone_ms), n = comm.size();
      // Ring all-reduce moves 2 (N - 1) / N of the buffer through each rank's link.
      const double bus_gbs = 2 * (n - 1) / n * static_cast<double>(n_params) * 4 / (ms * 1e-3) * 1e-9;
      std::printf("all-reduce alone: %.3f ms for %.2f MiB, bus bandwidth %.2f GB/s\n", ms, grad_mib, bus_gbs);
    }
  }
  return 0;
}
