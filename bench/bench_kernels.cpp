// bench_kernels: fused kernels against their composed references (the ops they replace), forward + backward,
// side by side: rms_norm against x · rsqrt(mean(x²) + eps) · weight, and rotary_embedding against Hugging
// Face's x·cos + rotate_half(x)·sin built from narrow, cat and mul. The two are alternated round by round
// in one process, so a busy moment on the machine hits both; the median round is reported.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/threads.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

using namespace minitrain;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// One forward + backward of f on leaf copies of the inputs, with a fixed upstream gradient.
using Step = std::function<void()>;

Step make_step(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
               const Tensor& upstream) {
  return [=]() {
    std::vector<Tensor> leaves;
    for (const Tensor& t : inputs) leaves.push_back(t.detach().set_requires_grad(true));
    f(leaves).backward(upstream);
  };
}

// ms per step of `fused` and `composed`, each the median over `rounds` rounds of `iters` steps, alternated.
std::pair<double, double> time_pair(const Step& fused, const Step& composed, int rounds, int iters) {
  std::vector<double> a, b;
  for (int i = 0; i < 3; ++i) {  // warm-up: buffer pool, caches, OpenMP team
    fused();
    composed();
  }
  for (int r = 0; r < rounds; ++r)
    for (int which = 0; which < 2; ++which) {
      const Step& step = which == 0 ? fused : composed;
      const auto start = Clock::now();
      for (int i = 0; i < iters; ++i) step();
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count() / iters;
      (which == 0 ? a : b).push_back(ms);
    }
  return {median(a), median(b)};
}

void report(const char* what, std::pair<double, double> ms) {
  std::printf("%-50s fused %8.4f ms   composed %8.4f ms   composed / fused %5.2fx\n", what, ms.first, ms.second,
              ms.second / ms.first);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("fused kernels against their composed references, forward + backward");
  int threads = 1, rounds = 15, iters = 20;
  int64_t rows = 64 * 64, width = 128;
  app.add_option("--threads", threads)->check(CLI::PositiveNumber);
  app.add_option("--rounds", rounds, "alternated rounds (the median is reported)")->check(CLI::PositiveNumber);
  app.add_option("--iters", iters, "forward + backward steps per round")->check(CLI::PositiveNumber);
  app.add_option("--rows", rows, "rms_norm rows (B·T)")->check(CLI::PositiveNumber);
  app.add_option("--width", width, "rms_norm width (C)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  std::printf("threads %d, %d rounds of %d steps, median round\n", threads, rounds, iters);

  Generator g(1);
  {
    const Tensor x = randn({rows, width}, g), w = add(randn({width}, g), 1.0), up = randn({rows, width}, g);
    const double eps = 1e-6;
    const Step fused = make_step([&](auto in) { return rms_norm(in[0], in[1], eps); }, {x, w}, up);
    const Step composed = make_step(
        [&](auto in) { return mul(mul(in[0], rsqrt(add(mean(mul(in[0], in[0]), {-1}, true), eps))), in[1]); }, {x, w}, up);
    char what[96];
    std::snprintf(what, sizeof what, "rms_norm (%lld, %lld) float32", (long long)rows, (long long)width);
    report(what, time_pair(fused, composed, rounds, iters));
  }
  {
    // q of one nano-sized attention layer: (B, H, T, D) = (12, 4, 64, 32).
    const int64_t B = 12, H = 4, T = 64, D = 32;
    const Tensor x = randn({B, H, T, D}, g), up = randn({B, H, T, D}, g);
    const auto [cos, sin] = rotary_tables(D, 0, T, 10000.0, DType::Float32);
    const Tensor cos_full = cat({cos, cos}, 1), sin_full = cat({sin, sin}, 1);  // (T, D), as transformers keeps them
    const Step fused = make_step([&](auto in) { return rotary_embedding(in[0], cos, sin, RotaryLayout::Halves); }, {x}, up);
    const Step composed = make_step([&](auto in) {
      const Tensor rotated_half = cat({neg(in[0].narrow(-1, D / 2, D / 2)), in[0].narrow(-1, 0, D / 2)}, -1);
      return add(mul(in[0], cos_full), mul(rotated_half, sin_full));
    }, {x}, up);
    report("rotary_embedding (12, 4, 64, 32) halves float32", time_pair(fused, composed, rounds, iters));
  }
  return 0;
}
