#include "gpt_runs.h"

#include <minitrain/core/threads.h>
#include <minitrain/train/grad_norms.h>
#include <minitrain/train/optimizer.h>

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

void set_recording(nn::GPT& model, bool on) {
  for (const auto& block : *model.h) {
    block->attn->record_statistics = on;
    block->attn->statistics.clear();
  }
}

// Mean val loss over eval_iters batches drawn from the same stream at every evaluation, as Trainer.
double val_loss(nn::GPT& model, const data::TextDataset& dataset, const GptStudyOptions& o) {
  model.eval();
  set_recording(model, false);
  NoGradGuard no_grad;
  Generator gen(o.seed + 1);
  double total = 0;
  for (int64_t k = 0; k < o.eval_iters; ++k) {
    data::Batch b = dataset.get_batch(data::Split::Val, o.batch_size, o.model.block_size, gen);
    total += model.loss(b.x, b.y).item();
  }
  model.train();
  set_recording(model, true);
  return total / static_cast<double>(o.eval_iters);
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
  train::AdamW optimizer(model.named_parameters(),
                         train::AdamWOptions(learning_rate).betas({o.beta1, o.beta2}).weight_decay(o.weight_decay));
  const std::vector<Tensor> params = model.parameters();
  Generator data_gen(o.seed);
  model.train();
  set_recording(model, true);

  const auto start = std::chrono::steady_clock::now();
  for (int64_t iter = 0; iter < o.iters; ++iter) {
    if (iter % o.eval_interval == 0) r.evals.push_back({iter, val_loss(model, dataset, o)});
    StepRecord step;
    step.iter = iter;
    step.lr = train::cosine_lr(iter, o.warmup_iters, o.iters, learning_rate, learning_rate * o.min_lr_ratio);
    optimizer.set_lr(step.lr);
    data::Batch b = dataset.get_batch(data::Split::Train, o.batch_size, config.block_size, data_gen);
    Tensor loss = model.loss(b.x, b.y);
    step.loss = loss.item();
    step.grad_norm = NAN;
    if (std::isfinite(step.loss)) {
      loss.backward();
      for (const auto& block : *model.h) {  // before clipping: the gradients backward produced
        const train::QKVNorms g = train::qkv_grad_norms(*block->attn);
        const nn::AttentionStatistics& s = block->attn->statistics.back();
        step.layers.push_back({g.q, g.k, g.v, s.normalized_entropy, s.max_probability, s.logit_std});
        block->attn->statistics.clear();
      }
      step.grad_norm = train::clip_grad_norm(params, o.grad_clip);
    }
    r.steps.push_back(step);
    if (!std::isfinite(step.loss) || !std::isfinite(step.grad_norm)) {
      r.diverged = true;
      if (log) log(describe(r) + ": diverged at iter " + std::to_string(iter));
      break;
    }
    optimizer.step();
    optimizer.zero_grad();
    if (log && (iter + 1) % o.eval_interval == 0) {
      char buf[128];
      std::snprintf(buf, sizeof buf, ": iter %lld, loss %.4f, grad norm %.3g", static_cast<long long>(iter + 1),
                    step.loss, step.grad_norm);
      log(describe(r) + buf);
    }
  }
  if (!r.diverged) r.evals.push_back({o.iters, val_loss(model, dataset, o)});
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
