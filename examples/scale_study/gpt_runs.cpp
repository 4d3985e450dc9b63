#include "gpt_runs.h"

#include <minitrain/core/threads.h>
#include <minitrain/train/attention_watch.h>
#include <minitrain/train/grad_norms.h>
#include <minitrain/train/trainer.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace minitrain::study {

namespace {

void validate(const GptStudyOptions& o, double learning_rate) {
  const auto fail = [](const std::string& what) { throw std::invalid_argument("GptStudyOptions: " + what); };
  const auto positive = [&](int64_t v, const char* name) {
    if (v <= 0) fail(std::string(name) + " must be positive, got " + std::to_string(v));
  };
  positive(o.batch_size, "batch_size");
  positive(o.iters, "iters");
  positive(o.eval_interval, "eval_interval");
  positive(o.eval_iters, "eval_iters");
  if (o.warmup_iters < 0) fail("warmup_iters must not be negative");
  if (!(learning_rate > 0)) fail("learning rates must be positive, got " + std::to_string(learning_rate));
}

std::string describe(const RunResult& r) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "scale %s (%.4g), lr %g, seed %llu", r.rule.label.c_str(), r.scale, r.learning_rate,
                static_cast<unsigned long long>(r.seed));
  return buf;
}

}  // namespace

double qk_over_v(const LayerStep& l) { return (l.grad_q + l.grad_k) / (2 * l.grad_v); }

double mean_qk_over_v(const StepRecord& step) {
  double total = 0;
  for (const LayerStep& l : step.layers) total += qk_over_v(l);
  return step.layers.empty() ? NAN : total / static_cast<double>(step.layers.size());
}

double mean_entropy(const StepRecord& step) {
  double total = 0;
  for (const LayerStep& l : step.layers) total += l.entropy;
  return step.layers.empty() ? NAN : total / static_cast<double>(step.layers.size());
}

// train::Trainer runs the recipe (schedule, clipping, divergence checks, evaluation); the study only
// watches, through the trainer's hooks and the attention layers' forward hooks.
RunResult train_gpt_run(const data::TextDataset& dataset, const GptStudyOptions& o, const ScaleRule& rule,
                        double learning_rate, const LogFn& log) {
  validate(o, learning_rate);
  nn::GPTConfig config = o.model;
  config.vocab_size = dataset.vocab_size();
  config.seed = o.seed;
  config.validate();
  RunResult r;
  r.rule = rule;
  r.scale = config.attention_scale = rule.value(config.n_embd / config.n_head);
  r.learning_rate = learning_rate;
  r.seed = o.seed;
  nn::GPT model(config);

  train::TrainOptions t;
  t.max_iters = t.lr_decay_iters = o.iters;
  t.eval_interval = o.eval_interval;
  t.eval_iters = o.eval_iters;
  t.log_interval = o.iters;
  t.learning_rate = learning_rate;
  t.min_lr = learning_rate * o.min_lr_ratio;
  t.warmup_iters = o.warmup_iters;
  t.weight_decay = o.weight_decay, t.beta1 = o.beta1, t.beta2 = o.beta2, t.grad_clip = o.grad_clip;
  t.seed = o.seed;  // the batches; the initial weights come from config.seed
  t.out_dir = "";   // nothing written: the records below are the run's output
  t.progress = t.log = false;
  const auto batches = [&](bool train_split, Generator& gen) {
    data::Batch b = dataset.get_batch(train_split ? data::Split::Train : data::Split::Val, o.batch_size,
                                      config.block_size, gen);
    return train::TokenBatch{b.x, b.y};
  };
  train::Trainer trainer(model, [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); }, batches, t);
  train::AttentionWatch watch(model.attention_layers());
  const train::NamedParameters params = model.named_parameters();

  trainer.on_after_backward([&](int64_t iter, double loss) {  // before clipping: the gradients backward produced
    StepRecord step{iter, loss, trainer.optimizer().param_groups().at(0).options().get_lr(), train::global_grad_norm(params), {}};
    for (const train::LayerHealth& l : watch.read())
      step.layers.push_back({l.grad_q, l.grad_k, l.grad_v, l.attention.normalized_entropy,
                             l.attention.max_probability, l.attention.logit_std});
    r.steps.push_back(step);
  });
  trainer.on_eval([&](int64_t iter, double, double val_loss) {
    if (std::isfinite(val_loss)) r.evals.push_back({iter, val_loss});
  });
  trainer.on_step([&](int64_t iter, double loss) {
    if (!log || (iter + 1) % o.eval_interval != 0) return;
    char buf[128];
    std::snprintf(buf, sizeof buf, ": iter %lld, loss %.4f, grad norm %.3g", static_cast<long long>(iter + 1), loss,
                  r.steps.back().grad_norm);
    log(describe(r) + buf);
  });
  const auto start = std::chrono::steady_clock::now();
  try {
    trainer.run();
  } catch (const train::TrainingDiverged& e) {
    // The step that stopped it ends the record, with a NaN loss when backward never ran for it.
    if (r.steps.empty() || r.steps.back().iter != e.iter) r.steps.push_back({e.iter, NAN, NAN, NAN, {}});
    r.diverged = true;
    if (log) log(describe(r) + ": diverged at iter " + std::to_string(e.iter));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

std::vector<RunResult> train_gpt_runs(const data::TextDataset& dataset, const GptStudyOptions& o,
                                      const std::vector<ScaleRule>& rules, const LogFn& log) {
  if (o.seeds < 1) throw std::invalid_argument("train_gpt_runs: seeds must be at least 1, got " + std::to_string(o.seeds));
  struct Job {
    const ScaleRule* rule;
    double learning_rate;
    GptStudyOptions options;  // with this run's seed
  };
  std::vector<Job> jobs;
  for (const ScaleRule& rule : rules)
    for (double lr : o.learning_rates)
      for (int64_t s = 0; s < o.seeds; ++s) {
        jobs.push_back({&rule, lr, o});
        jobs.back().options.seed = o.seed + static_cast<uint64_t>(s);
      }
  std::vector<RunResult> results(jobs.size());
  std::vector<std::exception_ptr> errors(jobs.size());
  std::atomic<std::size_t> next{0};
  std::mutex log_mutex;
  const LogFn locked_log = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(log_mutex);
    if (log) log(line);
  };
  const auto worker = [&] {
    set_num_threads(1);  // one core per run: OpenMP's thread count is per thread, so set it here
    for (std::size_t i; (i = next++) < jobs.size();) {
      try {
        results[i] = train_gpt_run(dataset, jobs[i].options, *jobs[i].rule, jobs[i].learning_rate, locked_log);
        const RunResult& r = results[i];
        char buf[160];
        std::snprintf(buf, sizeof buf, ": done, %zu steps in %.0f s (%.0f ms/step), final val loss %.4f%s",
                      r.steps.size(), r.seconds, 1e3 * r.seconds / static_cast<double>(r.steps.size()),
                      r.evals.back().val_loss, r.diverged ? " (diverged)" : "");
        locked_log(describe(r) + buf);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, o.jobs) && static_cast<std::size_t>(t) < jobs.size(); ++t) pool.emplace_back(worker);
  for (std::thread& t : pool) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return results;
}

}  // namespace minitrain::study
