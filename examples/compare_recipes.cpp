// compare_recipes: today's Llama-style recipe against nanoGPT's, on the bundled corpus, at equal steps and
// equal wall time, several seeds each.
//
//   ./build/examples/compare_recipes --out_dir docs/recipes     # 2 recipes x 3 seeds x 2000 steps
//   ./build/examples/compare_recipes --quick --out_dir /tmp/r   # the same pipeline in a few seconds
//
// nanoGPT:  train_gpt's defaults (4 layers, 4 heads, width 128, context 64, batch 12, LayerNorm, learned
//           positions, GELU, tied head, AdamW lr 1e-3 -> 1e-4 with 100 warmup steps, clip 1).
// llama:    the same sizes, data and schedule with RMSNorm, rotary positions, SwiGLU, QK-norm, no biases and an
//           untied head; Muon (lr 0.02, momentum 0.95, Nesterov) for the blocks' matrices and AdamW for the rest.
// Run k of each recipe uses seed + k for the initial weights and the batches, so the two recipes see the same
// data. Writes curves.csv (every evaluation), val_loss.png (by step), val_loss_time.png (by training
// seconds) and REPORT.md (final losses, steps and seconds to reach nanoGPT's final val loss).
#include <minitrain/core/threads.h>
#include <minitrain/data/text_dataset.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/gnuplot.h>
#include <minitrain/train/optimizer.h>
#include <minitrain/train/trainer.h>

#include "cli_checks.h"
#include "curves.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace minitrain;
using recipes::Curve;

namespace {

struct Recipe {
  std::string name, description;
  nn::GPTConfig model;
  bool muon = false;
};

struct Flags {
  std::string out_dir = "docs/recipes", data = MINITRAIN_DEFAULT_CORPUS;
  int64_t iters = 2000, seeds = 3, eval_interval = 100, eval_iters = 20, batch_size = 12;
  uint64_t seed = 1337;
  double learning_rate = 1e-3, muon_lr = 0.02;
  int threads = 2;
  bool quick = false;
};

std::vector<Recipe> recipes_for(int64_t vocab_size) {
  nn::GPTConfig sizes;  // train_gpt's defaults
  sizes.n_layer = 4, sizes.n_head = 4, sizes.n_embd = 128, sizes.block_size = 64;
  sizes.vocab_size = vocab_size, sizes.bias = false, sizes.dropout = 0.0;
  nn::GPTConfig llama = nn::llama_style(sizes);
  llama.qk_norm = true;
  return {{"nanogpt", "LayerNorm, learned positions, GELU, tied head; AdamW", sizes, false},
          {"llama", "RMSNorm, rotary positions, SwiGLU, QK-norm, untied head; Muon for the blocks' matrices, AdamW for "
                    "the rest",
           llama, true}};
}

struct Run {
  Curve curve;
  double ms_per_step = 0;
  int64_t parameters = 0;
};

Run train_one(const Recipe& recipe, const data::TextDataset& dataset, const Flags& f, uint64_t seed) {
  nn::GPTConfig config = recipe.model;
  config.seed = seed;
  nn::GPT model(config);
  train::TrainOptions o;
  o.max_iters = f.iters;
  o.lr_decay_iters = f.iters;
  o.warmup_iters = std::min<int64_t>(100, f.iters / 10);
  o.learning_rate = f.learning_rate;
  o.min_lr = f.learning_rate / 10;
  o.eval_interval = f.eval_interval;
  o.eval_iters = f.eval_iters;
  o.seed = seed;
  o.out_dir = "";  // nothing written: the curves come through the hooks
  o.log = false;
  o.progress = false;
  if (recipe.muon) {
    const auto muon = train::MuonOptions(f.muon_lr).momentum(0.95).weight_decay(0.0);
    const auto adamw = train::AdamWOptions(f.learning_rate).betas({o.beta1, o.beta2}).weight_decay(o.weight_decay);
    o.make_optimizer = [muon, adamw](const train::NamedParameters& params) -> std::unique_ptr<train::Optimizer> {
      return train::make_muon_with_adamw(params, muon, adamw);
    };
  }
  const int64_t B = f.batch_size, T = config.block_size;
  train::BatchSource batches = [&](bool train_split, Generator& gen) {
    data::Batch b = dataset.get_batch(train_split ? data::Split::Train : data::Split::Val, B, T, gen);
    return train::TokenBatch{std::move(b.x), std::move(b.y)};
  };
  train::Trainer trainer(model, [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); }, batches, o,
                         {{"dropout", &model.dropout_generator()}});
  // Training time: wall time minus the evaluations (which run between a step's end and the next step).
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  Clock::time_point last_step = start;
  double eval_seconds = 0;
  Run run;
  trainer.on_step([&](int64_t, double) { last_step = Clock::now(); });
  trainer.on_eval([&](int64_t iter, double, double val_loss) {
    const Clock::time_point now = Clock::now();
    eval_seconds += std::chrono::duration<double>(now - last_step).count();
    const double training = std::chrono::duration<double>(now - start).count() - eval_seconds;
    run.curve.push_back({iter, training, val_loss});
    last_step = now;
  });
  trainer.run();
  run.ms_per_step = run.curve.back().seconds * 1e3 / static_cast<double>(f.iters);
  run.parameters = model.num_parameters();
  return run;
}

std::string number(double v, const char* format = "%.4f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string mean_pm_std(const std::vector<double>& v, const char* format = "%.4f") {
  return number(recipes::mean_of(v), format) + " ± " + number(recipes::std_of(v), format);
}

// Writes the mean curve of each recipe as "iter seconds val_loss" rows for gnuplot.
std::string write_mean_curve(const std::string& out_dir, const std::string& name, const Curve& curve) {
  const std::string path = out_dir + "/mean_" + name + ".dat";
  std::ofstream out(path);
  for (const auto& p : curve) out << p.iter << ' ' << p.seconds << ' ' << p.val_loss << '\n';
  return path;
}

// Two PNGs from the mean curves; file names reach gnuplot as arguments only (train/gnuplot.h).
void plot(const std::string& out_dir, const std::vector<Recipe>& recipes, const std::vector<std::string>& curves) {
  const std::string script = (std::filesystem::temp_directory_path() /
                              ("compare_recipes_" + std::to_string(getpid()) + ".gp")).string();
  for (const bool by_time : {false, true}) {
    {
      std::ofstream s(script);
      s << "set terminal pngcairo size 900,560 font ',10' noenhanced\nset output ARG1\nset grid\n"
        << "set ylabel 'val loss (nats/char), mean of seeds'\nset yrange [0.55:*]\n"
        << (by_time ? "set xlabel 'training seconds'\n" : "set xlabel 'step'\n") << "plot ARG2 using "
        << (by_time ? "2:3" : "1:3") << " with linespoints title '" << recipes[0].name << "', ARG3 using "
        << (by_time ? "2:3" : "1:3") << " with linespoints title '" << recipes[1].name << "'\n";
    }
    const std::string png = out_dir + (by_time ? "/val_loss_time.png" : "/val_loss.png");
    const train::GnuplotResult r = train::run_gnuplot(script, {png, curves[0], curves[1]});
    if (!r.ok()) std::cerr << "compare_recipes: cannot draw " << png << ": " << r.error << "\n";
  }
  std::filesystem::remove(script);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Today's Llama-style recipe against nanoGPT's on the bundled corpus, several seeds each"};
  using examples::integer_in;
  using examples::number_in;
  app.add_option("--out_dir", f.out_dir, "curves.csv, plots and REPORT.md go here")->capture_default_str();
  app.add_option("--data", f.data, "UTF-8 text (default: the bundled toy corpus)")->capture_default_str();
  app.add_option("--iters", f.iters, "steps per run")->check(integer_in(10, 10'000'000))->capture_default_str();
  app.add_option("--seeds", f.seeds, "runs per recipe (seeds seed, seed + 1, ...)")->check(integer_in(1, 100))->capture_default_str();
  app.add_option("--seed", f.seed, "the first seed")->check(examples::seed_value())->capture_default_str();
  app.add_option("--eval_interval", f.eval_interval, "steps between val-loss evaluations")->check(integer_in(1, 10'000'000))->capture_default_str();
  app.add_option("--eval_iters", f.eval_iters, "batches per evaluation")->check(integer_in(1, 1'000'000))->capture_default_str();
  app.add_option("--learning_rate", f.learning_rate, "AdamW's peak lr (both recipes)")->check(number_in(1e-9, 10))->capture_default_str();
  app.add_option("--muon_lr", f.muon_lr, "Muon's peak lr (llama recipe)")->check(number_in(1e-9, 10))->capture_default_str();
  app.add_option("--threads", f.threads)->check(integer_in(1, 1024))->capture_default_str();
  app.add_flag("--quick", f.quick, "100 steps, one seed: the pipeline in seconds");
  CLI11_PARSE(app, argc, argv);
  if (f.quick) f.iters = 100, f.seeds = 1, f.eval_interval = 25, f.eval_iters = 4;
  if (f.eval_interval > f.iters) {
    std::cerr << "--eval_interval " << f.eval_interval << " is longer than --iters " << f.iters << "\n";
    return 1;
  }
  try {
    set_num_threads(f.threads);
    std::filesystem::create_directories(f.out_dir);
    const data::TextDataset dataset = data::TextDataset::from_file(f.data);
    const std::vector<Recipe> recipes = recipes_for(dataset.vocab_size());
    std::vector<std::vector<Run>> runs(recipes.size());
    std::ofstream csv(f.out_dir + "/curves.csv");
    csv << "recipe,seed,iter,train_seconds,val_loss\n";
    // Seeds outermost, recipes alternating: a slow patch of a shared host hits both recipes alike.
    for (int64_t k = 0; k < f.seeds; ++k)
      for (std::size_t r = 0; r < recipes.size(); ++r) {
        const uint64_t seed = f.seed + static_cast<uint64_t>(k);
        runs[r].push_back(train_one(recipes[r], dataset, f, seed));
        const Run& run = runs[r].back();
        for (const auto& p : run.curve)
          csv << recipes[r].name << ',' << seed << ',' << p.iter << ',' << number(p.seconds, "%.3f") << ','
              << number(p.val_loss, "%.5f") << '\n';
        std::printf("%-8s seed %llu: final val loss %.4f, %.1f ms/step\n", recipes[r].name.c_str(),
                    static_cast<unsigned long long>(seed), run.curve.back().val_loss, run.ms_per_step);
        std::fflush(stdout);
      }

    // What the report says, per recipe and per seed pair.
    std::vector<Curve> means;
    std::vector<std::string> mean_files;
    std::ostringstream md;
    std::string command = "compare_recipes";
    for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
    md << "# Today's recipe against nanoGPT's\n\nGenerated by `" << command
       << "` (examples/compare_recipes.cpp) on the bundled toy corpus (entropy 0.6098 nats/char): " << f.iters
       << " steps of batch " << f.batch_size << ", context 64, " << f.seeds << " seed" << (f.seeds > 1 ? "s" : "")
       << " per recipe from " << f.seed << " (same initial-weight seed and same batches for both recipes), "
       << "val loss every " << f.eval_interval << " steps over " << f.eval_iters << " batches, " << f.threads
       << " threads. Both recipes: AdamW (β 0.9, 0.99, weight decay 0.1, lr " << f.learning_rate
       << " with warmup and cosine decay to a tenth), gradients clipped at 1.\n\n"
       << "| recipe | parts | parameters | final val loss | ms/step |\n|---|---|---|---|---|\n";
    for (std::size_t r = 0; r < recipes.size(); ++r) {
      std::vector<Curve> curves;
      std::vector<double> finals, ms;
      for (const Run& run : runs[r]) {
        curves.push_back(run.curve);
        finals.push_back(run.curve.back().val_loss);
        ms.push_back(run.ms_per_step);
      }
      means.push_back(recipes::mean_curve(curves));
      mean_files.push_back(write_mean_curve(f.out_dir, recipes[r].name, means.back()));
      md << "| " << recipes[r].name << " | " << recipes[r].description
         << (recipes[r].muon ? " (Muon lr " + number(f.muon_lr, "%g") + ")" : std::string()) << " | "
         << runs[r].front().parameters << " | " << mean_pm_std(finals) << " | " << mean_pm_std(ms, "%.1f") << " |\n";
    }
    // Equal steps: where the llama recipe's curve first reaches nanoGPT's final val loss, per seed and for
    // the means. Equal wall time: the llama recipe's loss after nanoGPT's training seconds.
    md << "\n| seed | nanoGPT final val loss | llama reaches it at step | ratio of steps | at second | ratio of time "
          "| llama val loss at nanoGPT's time |\n|---|---|---|---|---|---|---|\n";
    std::vector<double> step_ratios, time_ratios;
    auto row = [&](const std::string& label, const Curve& nano, const Curve& llama) {
      const double target = nano.back().val_loss;
      const double step = recipes::first_reaching(llama, target, false);
      const double second = recipes::first_reaching(llama, target, true);
      const double step_ratio = step / static_cast<double>(nano.back().iter);
      const double time_ratio = second / nano.back().seconds;
      md << "| " << label << " | " << number(target) << " | " << number(step, "%.0f") << " | "
         << number(step_ratio, "%.2f") << " | " << number(second, "%.1f") << " | " << number(time_ratio, "%.2f")
         << " | " << number(recipes::loss_at_seconds(llama, nano.back().seconds)) << " |\n";
      return std::make_pair(step_ratio, time_ratio);
    };
    for (int64_t k = 0; k < f.seeds; ++k) {
      const auto [s, t] = row(std::to_string(f.seed + static_cast<uint64_t>(k)), runs[0][k].curve, runs[1][k].curve);
      step_ratios.push_back(s);
      time_ratios.push_back(t);
    }
    const auto [mean_steps, mean_time] = row("mean curves", means[0], means[1]);
    md << "\nRatio of steps to reach nanoGPT's final val loss (mean curves): **" << number(mean_steps, "%.2f")
       << "** (per seed " << mean_pm_std(step_ratios, "%.2f") << "); of training time: **" << number(mean_time, "%.2f")
       << "** (per seed " << mean_pm_std(time_ratios, "%.2f") << "). NaN means the curve never got there.\n\n"
       << "![val loss by step](val_loss.png)\n\n![val loss by training time](val_loss_time.png)\n\n"
       << "Data: [curves.csv](curves.csv) (every evaluation of every run).\n";
    std::ofstream(f.out_dir + "/REPORT.md") << md.str();
    plot(f.out_dir, recipes, mean_files);
    std::printf("ratio of steps to nanoGPT's final val loss: %.2f (mean curves), of training time %.2f\nreport: %s/REPORT.md\n",
                mean_steps, mean_time, f.out_dir.c_str());
  } catch (const std::exception& e) {
    std::cerr << "compare_recipes: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
