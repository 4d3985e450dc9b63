// scale_study: what the attention scale factor c in softmax(c·q·k) does to attention and its gradients,
// measured in one layer at initialisation and in a GPT during training (see docs/scale_study/REPORT.md).
//
//   ./build/examples/scale_study --out_dir docs/scale_study   # the full study, ~12 min on 2 cores
//   ./build/examples/scale_study --quick --out_dir /tmp/quick  # the same pipeline in under a minute
//   ./build/examples/scale_study --parts 1 --scale 0.5 --scale "dk^-0.75" --out_dir /tmp/mine
//
// Writes part1.csv, part2_steps.csv, part2_layers.csv, PNG plots (with gnuplot) and REPORT.md.
#include "scale_study/csv_output.h"
#include "scale_study/gpt_runs.h"
#include "scale_study/plots.h"
#include "scale_study/report.h"
#include "scale_study/single_layer.h"

#include <minitrain/core/threads.h>

#include "cli_checks.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

using namespace minitrain;
using namespace minitrain::study;

namespace {

struct Flags {
  std::string out_dir = "scale_study";
  std::vector<int> parts{1, 2};
  bool quick = false;
  std::vector<int64_t> head_sizes{16, 64, 256, 1024}, keys{8, 64};
  std::vector<std::string> extra_scales;
  // Part 1's continuous sweep c = d_k^p over these exponents (first key count only; empty: no sweep).
  std::vector<double> sweep{-1.25, -1.125, -1, -0.875, -0.75, -0.625, -0.5, -0.375, -0.25, -0.125, 0};
  SingleLayerOptions single;
  GptStudyOptions gpt;
  std::string data = MINITRAIN_DEFAULT_CORPUS;
  int64_t layer_csv_every = 10;
};

// The default GPT and why (measured on the 2-core machine the defaults were chosen on).
constexpr const char* kBudgetNote =
    "the issue suggests 6 layers of width 256 (head size 64). Measured with train_gpt while choosing the "
    "defaults, a step of that model (batch 12, context 64, one core) took 446 ms, so six runs, two at a time, "
    "would get about 500 steps each in the ~12 minutes the study may spend on training. Width 128 with 2 heads "
    "keeps the depth and the head size of 64 (the d_k the scale acts on) at 185 ms per step (measured the same "
    "way) and buys 1,000 steps per run. Three seeds per run (to tell real gaps from seed noise) make it about "
    "35 minutes of training.";

void apply_quick(CLI::App& app, Flags& f) {
  const auto unless_given = [&](const char* flag, auto& field, auto value) {
    if (app.count(flag) == 0) field = value;
  };
  unless_given("--samples", f.single.samples, int64_t{200});
  unless_given("--fd_samples", f.single.fd_samples, int64_t{4});
  unless_given("--sweep", f.sweep, std::vector<double>{-1, -0.5, 0});
  unless_given("--seeds", f.gpt.seeds, int64_t{2});
  unless_given("--n_layer", f.gpt.model.n_layer, int64_t{2});
  unless_given("--n_embd", f.gpt.model.n_embd, int64_t{64});
  unless_given("--n_head", f.gpt.model.n_head, int64_t{1});
  unless_given("--iters", f.gpt.iters, int64_t{60});
  unless_given("--warmup_iters", f.gpt.warmup_iters, int64_t{5});
  unless_given("--eval_interval", f.gpt.eval_interval, int64_t{20});
  unless_given("--eval_iters", f.gpt.eval_iters, int64_t{2});
  unless_given("--layer_csv_every", f.layer_csv_every, int64_t{1});
}

// One clear line for each invalid combination (CLI11 checks types and ranges).
void validate(const Flags& f) {
  const auto fail = [](const std::string& what) { throw CLI::ValidationError(what); };
  for (int p : f.parts)
    if (p != 1 && p != 2) fail("--parts: " + std::to_string(p) + " is not 1 or 2");
  if (f.single.fd_samples > f.single.samples)
    fail("--fd_samples " + std::to_string(f.single.fd_samples) + " is more than --samples " + std::to_string(f.single.samples));
  if (f.gpt.model.n_embd % f.gpt.model.n_head != 0)
    fail("--n_embd " + std::to_string(f.gpt.model.n_embd) + " is not divisible by --n_head " + std::to_string(f.gpt.model.n_head));
  if (!std::filesystem::is_regular_file(f.data)) fail("--data: no such file: " + f.data);
}

std::string command_line(int argc, char** argv) {
  std::string s = "scale_study";
  for (int i = 1; i < argc; ++i) s += std::string(" ") + argv[i];
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void print_case(const CaseResult& c) {
  const FdSummary fd = summarise_fd(c);
  std::printf("n %3lld  d_k %5lld  scale %-11s  Var(q·k) %8.2f  max p %.3f  H/log n %.3f  |dL/ds| %.4f  |dL/dq| %.4f  "
              "|dL/dK| %.4f  FD failed %lld/%lld (worst %.1e)\n",
              static_cast<long long>(c.n_keys), static_cast<long long>(c.d_k), c.rule.label.c_str(), c.var_qk.mean,
              c.max_prob.mean, c.entropy.mean, c.grad_scores.mean, c.grad_q.mean, c.grad_k.mean,
              static_cast<long long>(fd.failed), static_cast<long long>(fd.checked), fd.worst_error);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  f.gpt.model.n_layer = 6;
  f.gpt.model.n_embd = 128;
  f.gpt.model.n_head = 2;
  f.gpt.model.block_size = 64;
  f.gpt.model.bias = false;
  f.gpt.model.dropout = 0.0;
  f.gpt.iters = 1000;
  CLI::App app{"The attention-scale study: what 1, 1/sqrt(d_k), 1/d_k (or any factor) do to attention gradients"};
  // Numbers parsed strictly and refused out of range, never clamped (examples/cli_checks.h).
  using examples::integer_in;
  using examples::number_in;
  constexpr int64_t kMaxCount = 1'000'000'000;
  const auto size = integer_in(1, int64_t{1} << 20), count = integer_in(1, kMaxCount);
  app.add_option("--out_dir", f.out_dir, "CSV files, plots and REPORT.md go here")->capture_default_str();
  app.add_option("--parts", f.parts, "which parts to run: 1 (one layer), 2 (GPT training)")->delimiter(',')->capture_default_str();
  app.add_flag("--quick", f.quick, "a small version of everything, under a minute (explicit flags still win)");
  app.add_option("--scale", f.extra_scales, "extra scale factor besides 1, 1/sqrt(dk), 1/dk: a number, dk^P or C*dk^P (repeatable)");
  app.add_option("--head_sizes", f.head_sizes, "part 1: the d_k values")->delimiter(',')->check(integer_in(1, int64_t{1} << 16))->capture_default_str();
  app.add_option("--keys", f.keys, "part 1: numbers of keys n")->delimiter(',')->check(integer_in(2, int64_t{1} << 20))->capture_default_str();
  app.add_option("--sweep", f.sweep, "part 1: exponents p of the sweep c = d_k^p (with the first --keys)")->delimiter(',')->check(number_in(-4, 4))->capture_default_str();
  app.add_option("--samples", f.single.samples, "part 1: samples per (d_k, n)")->check(integer_in(2, int64_t{1} << 30))->capture_default_str();
  app.add_option("--fd_samples", f.single.fd_samples, "part 1: of those, checked by finite differences")->check(integer_in(0, int64_t{1} << 30))->capture_default_str();
  app.add_option("--fd_step", f.single.fd_step, "part 1: finite-difference step")->check(number_in(1e-12, 1))->capture_default_str();
  app.add_option("--seed", f.single.seed, "part 1: the samples' seed")->check(examples::seed_value())->capture_default_str();
  app.add_option("--n_layer", f.gpt.model.n_layer, "part 2: transformer blocks")->check(size)->capture_default_str();
  app.add_option("--n_embd", f.gpt.model.n_embd, "part 2: width")->check(size)->capture_default_str();
  app.add_option("--n_head", f.gpt.model.n_head, "part 2: heads (d_k = n_embd / n_head)")->check(size)->capture_default_str();
  app.add_option("--qk_norm", f.gpt.model.qk_norm, "part 2: RMSNorm on each head of q and k before the scores (the "
                 "scale is then a free choice)")->capture_default_str();
  app.add_option("--block_size", f.gpt.model.block_size, "part 2: context length")->check(size)->capture_default_str();
  app.add_option("--batch_size", f.gpt.batch_size, "part 2: sequences per step")->check(size)->capture_default_str();
  app.add_option("--iters", f.gpt.iters, "part 2: training steps per run")->check(count)->capture_default_str();
  app.add_option("--warmup_iters", f.gpt.warmup_iters, "part 2: linear warmup steps")->check(integer_in(0, kMaxCount))->capture_default_str();
  app.add_option("--learning_rates", f.gpt.learning_rates, "part 2: peak learning rates, each run with every scale")->delimiter(',')->check(number_in(1e-12, 1e9))->capture_default_str();
  app.add_option("--grad_clip", f.gpt.grad_clip, "part 2: clip the global grad norm (0: off)")->check(number_in(0, 1e12))->capture_default_str();
  app.add_option("--eval_interval", f.gpt.eval_interval, "part 2: steps between val-loss evaluations")->check(count)->capture_default_str();
  app.add_option("--eval_iters", f.gpt.eval_iters, "part 2: batches per evaluation")->check(integer_in(1, 1'000'000))->capture_default_str();
  app.add_option("--train_seed", f.gpt.seed, "part 2: initial weights and batches")->check(examples::seed_value())->capture_default_str();
  app.add_option("--seeds", f.gpt.seeds, "part 2: runs per scale and learning rate, seeds train_seed, train_seed + 1, ...")->check(integer_in(1, 1000))->capture_default_str();
  app.add_option("--jobs", f.gpt.jobs, "part 2: runs trained at once, one thread each")->check(integer_in(1, 1024))->capture_default_str();
  app.add_option("--data", f.data, "part 2: UTF-8 text (default: the bundled toy corpus)")->capture_default_str();
  app.add_option("--layer_csv_every", f.layer_csv_every, "part 2: per-layer CSV rows every this many steps")->check(count)->capture_default_str();
  std::vector<ScaleRule> rules = default_scale_rules();
  try {
    app.parse(argc, argv);
    if (f.quick) apply_quick(app, f);
    validate(f);
    for (const std::string& text : f.extra_scales) {
      const ScaleRule rule = parse_scale_rule(text);
      bool known = false;
      for (const ScaleRule& r : rules) known = known || r.label == rule.label;
      if (!known) rules.push_back(rule);
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::invalid_argument& e) {
    std::cerr << "--scale: " << e.what() << "\n";
    return 1;
  }

  try {
    set_num_threads(1);  // part 1 is many small products; part 2 gives each run its own core
    std::filesystem::create_directories(f.out_dir);
    const auto run_part = [&](int p) { return std::find(f.parts.begin(), f.parts.end(), p) != f.parts.end(); };
    StudyReport report;
    report.command = command_line(argc, argv);
    report.single_layer = f.single;
    report.gpt = f.gpt;

    if (run_part(1)) {
      const auto start = std::chrono::steady_clock::now();
      std::printf("part 1: one attention layer, %lld samples per case\n", static_cast<long long>(f.single.samples));
      for (int64_t n : f.keys)
        for (int64_t d : f.head_sizes)
          for (const CaseResult& c : measure_single_layer(d, n, rules, f.single)) {
            print_case(c);
            report.cases.push_back(c);
          }
      report.part1 = true;
      std::vector<ScaleRule> sweep;
      for (double p : f.sweep) {
        char text[32];
        std::snprintf(text, sizeof text, "dk^%g", p);
        sweep.push_back(parse_scale_rule(text));
      }
      if (!sweep.empty()) {
        std::printf("part 1: the sweep c = d_k^p over %zu exponents, n = %lld\n", sweep.size(),
                    static_cast<long long>(f.keys.front()));
        SingleLayerOptions no_fd = f.single;
        no_fd.fd_samples = 0;  // the sweep is about the statistics; the checks ran above
        for (int64_t d : f.head_sizes)
          for (const CaseResult& c : measure_single_layer(d, f.keys.front(), sweep, no_fd)) report.sweep.push_back(c);
      }
      report.part1_seconds = seconds_since(start);
      write_single_layer_csv(f.out_dir + "/part1.csv", report.cases);
      report.csv_files.push_back("part1.csv");
      if (!report.sweep.empty()) {
        write_single_layer_csv(f.out_dir + "/part1_sweep.csv", report.sweep);
        report.csv_files.push_back("part1_sweep.csv");
      }
      for (const std::string& p : plot_single_layer(f.out_dir, report.cases)) report.plots.push_back(p);
      for (const std::string& p : plot_spread_and_sweep(f.out_dir, report.cases, report.sweep)) report.plots.push_back(p);
    }

    if (run_part(2)) {
      const auto start = std::chrono::steady_clock::now();
      const data::TextDataset dataset = data::TextDataset::from_file(f.data);
      for (data::Split split : {data::Split::Train, data::Split::Val})
        if (dataset.size(split) <= f.gpt.model.block_size)
          throw std::invalid_argument("--block_size " + std::to_string(f.gpt.model.block_size) + " is longer than the " +
                                      data::split_name(split) + " split of " + f.data);
      nn::GPTConfig config = f.gpt.model;
      config.vocab_size = dataset.vocab_size();
      report.gpt_parameters = nn::GPT::expected_num_parameters(config);
      if (!f.quick && app.count("--n_layer") + app.count("--n_embd") + app.count("--n_head") + app.count("--iters") == 0)
        report.budget_note = kBudgetNote;
      std::printf("part 2: GPT %lld layers, width %lld, %lld heads; %zu scales x %zu learning rates, %lld steps each\n",
                  static_cast<long long>(config.n_layer), static_cast<long long>(config.n_embd),
                  static_cast<long long>(config.n_head), rules.size(), f.gpt.learning_rates.size(),
                  static_cast<long long>(f.gpt.iters));
      std::fflush(stdout);
      report.runs = train_gpt_runs(dataset, f.gpt, rules, [](const std::string& line) {
        std::printf("  %s\n", line.c_str());
        std::fflush(stdout);
      });
      report.part2 = true;
      report.part2_seconds = seconds_since(start);
      write_steps_csv(f.out_dir + "/part2_steps.csv", report.runs);
      write_layers_csv(f.out_dir + "/part2_layers.csv", report.runs, f.layer_csv_every);
      report.csv_files.insert(report.csv_files.end(), {"part2_steps.csv", "part2_layers.csv"});
      for (const std::string& p : plot_gpt_runs(f.out_dir, report.runs)) report.plots.push_back(p);
    }

    const std::string path = f.out_dir + "/REPORT.md";
    std::ofstream out(path);
    if (!out) throw std::runtime_error("cannot write " + path);
    out << render_report(report);
    std::printf("report: %s (%.1f min)\n", path.c_str(), (report.part1_seconds + report.part2_seconds) / 60);
  } catch (const std::exception& e) {
    std::cerr << "scale_study: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
