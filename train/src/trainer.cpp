#include <minitrain/train/trainer.h>

#include <minitrain/core/ops.h>
#include <minitrain/core/regular_file.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/metrics.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

namespace minitrain::train {

namespace {
using Clock = std::chrono::steady_clock;

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s % 3600 / 60));
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}
}  // namespace

void TrainOptions::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("TrainOptions: " + what); };
  auto positive = [&](int64_t v, const char* name) {
    if (v <= 0) fail(std::string(name) + " must be positive, got " + std::to_string(v));
  };
  auto in_range = [&](double v, double lo, double hi, const char* name) {
    if (!(std::isfinite(v) && v >= lo && v <= hi))
      fail(std::string(name) + " must be a finite number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
           "], got " + std::to_string(v));
  };
  if (max_iters < 0) fail("max_iters must not be negative, got " + std::to_string(max_iters));
  if (warmup_iters < 0) fail("warmup_iters must not be negative, got " + std::to_string(warmup_iters));
  positive(eval_interval, "eval_interval");
  positive(eval_iters, "eval_iters");
  positive(log_interval, "log_interval");
  positive(gradient_accumulation_steps, "gradient_accumulation_steps");
  positive(lr_decay_iters, "lr_decay_iters");
  in_range(learning_rate, 0, 1e9, "learning_rate");
  in_range(min_lr, 0, 1e9, "min_lr");
  in_range(weight_decay, 0, 1e9, "weight_decay");
  in_range(beta1, 0, std::nextafter(1.0, 0.0), "beta1");
  in_range(beta2, 0, std::nextafter(1.0, 0.0), "beta2");
  in_range(grad_clip, 0, 1e300, "grad_clip");
  if (resume && overwrite) fail("resume and overwrite exclude each other");
  if (resume && out_dir.empty()) fail("resume needs an out_dir to read the checkpoint from");
}

Trainer::Trainer(nn::Module& model, LossFn loss_fn, BatchSource batches, TrainOptions options,
                 std::map<std::string, Generator*> generators, std::map<std::string, std::string> metadata)
    : model_(model),
      loss_fn_(std::move(loss_fn)),
      batches_(std::move(batches)),
      options_(std::move(options)),
      generators_(std::move(generators)),
      metadata_(std::move(metadata)),
      data_gen_(options_.seed) {
  options_.validate();
  if (options_.make_optimizer) {
    optimizer_ = options_.make_optimizer(model_.named_parameters());
    if (!optimizer_) throw std::invalid_argument("TrainOptions: make_optimizer returned no optimizer");
  } else {
    optimizer_ = std::make_unique<AdamW>(model_.named_parameters(), AdamWOptions(options_.learning_rate)
                                                                        .betas({options_.beta1, options_.beta2})
                                                                        .weight_decay(options_.weight_decay));
  }
  generators_["data"] = &data_gen_;
  comm_ = options_.communicator ? options_.communicator : &single_;
  if (comm_->distributed()) averager_ = std::make_unique<GradientAverager>(*comm_, model_.parameters());
}

std::string Trainer::checkpoint_path() const { return (std::filesystem::path(options_.out_dir) / "ckpt.safetensors").string(); }

void Trainer::save(int64_t iter) {
  if (options_.out_dir.empty()) return;  // a run that writes nothing
  if (comm_->is_root()) {
    std::map<std::string, const Generator*> gens(generators_.begin(), generators_.end());
    save_checkpoint(checkpoint_path(), iter, model_, optimizer_.get(), gens, metadata_);
  }
  last_saved_iter_ = iter;
}

std::string Trainer::kept_checkpoint() const {
  if (last_saved_iter_ < 0) return "no checkpoint was written by this run";
  return "the last good checkpoint, from iter " + std::to_string(last_saved_iter_) + ", is kept at " + checkpoint_path();
}

// Every rank holds the same weights, so every rank reaches the same verdict and they stop together.
void Trainer::check_finite_weights(int64_t iter, bool live) {
  for (const auto& [name, p] : model_.named_parameters())
    for (double v : p.to_vector<double>())
      if (!std::isfinite(v)) {
        if (live) std::printf("\n");
        throw TrainingDiverged(iter, "training stopped at iter " + std::to_string(iter) + ": parameter '" + name +
                               "' is not finite; nothing was saved from it; " + kept_checkpoint());
      }
}

void Trainer::prepare_out_dir() {
  if (options_.out_dir.empty()) return;
  std::error_code ec;
  // Checked on every rank (all of them see out_dir when resuming), so that they all stop together.
  if (!options_.resume && !options_.overwrite && std::filesystem::exists(checkpoint_path(), ec))
    throw std::runtime_error(checkpoint_path() + " already exists: continue it with --resume, or replace it with "
                             "--overwrite (TrainOptions::resume / overwrite)");
  if (!comm_->is_root()) return;
  std::filesystem::create_directories(options_.out_dir);
  const int stale = remove_stale_temporaries(checkpoint_path());
  if (stale > 0 && options_.log)
    spdlog::info("removed {} temporary checkpoint file{} left by killed runs in {}", stale, stale == 1 ? "" : "s",
                 options_.out_dir);
  // A fresh run's metrics start afresh too (the old rows would mix two runs in one curve).
  if (!options_.resume) std::filesystem::remove(std::filesystem::path(options_.out_dir) / "metrics.csv", ec);
}

void Trainer::add_metric_columns(const std::vector<std::string>& names) {
  metric_columns_.insert(metric_columns_.end(), names.begin(), names.end());
}

void Trainer::record_metrics(int64_t iter, const std::vector<double>& values) {
  if (!metrics_) return;
  StepMetrics m;
  m.iter = iter;
  m.extra = values;
  metrics_->append(m);
}

TokenBatch Trainer::draw(bool train_split, Generator& gen) {
  TokenBatch b = batches_(train_split, gen);
  if (!comm_->distributed()) return b;
  return TokenBatch{shard_rows(b.x, *comm_), shard_rows(b.y, *comm_)};
}

void Trainer::diverged(int64_t iter, const std::vector<double>& loss_and_finite, double norm, bool live) {
  optimizer_->zero_grad();
  if (live) std::printf("\n");
  std::string what;
  // loss_and_finite: (loss, gradients finite) per rank, in rank order.
  for (std::size_t r = 0; r < loss_and_finite.size() / 2; ++r) {
    const double loss = loss_and_finite[2 * r];
    if (std::isfinite(loss) && loss_and_finite[2 * r + 1] != 0) continue;
    what += (what.empty() ? "" : "; ") + std::string(!std::isfinite(loss) ? "loss" : "gradient") +
            " is not finite on rank " + std::to_string(r) + " (loss " + std::to_string(loss) + ")";
  }
  if (what.empty())
    what = "gradient norm is not finite after averaging over " + std::to_string(comm_->size()) + " ranks (grad norm " +
           std::to_string(norm) + ")";
  throw TrainingDiverged(iter, "training stopped at iter " + std::to_string(iter) + ": " + what + "; " + kept_checkpoint());
}

std::pair<double, double> Trainer::estimate_loss() {
  const bool was_training = model_.is_training();
  model_.eval();
  NoGradGuard no_grad;
  double out[2] = {0, 0};
  for (int split = 0; split < 2; ++split) {
    // A fixed evaluation stream: the same batches at every evaluation, and the training stream untouched
    // (so a resumed run continues exactly).
    Generator eval_gen(options_.seed + 1 + static_cast<uint64_t>(split));
    for (int64_t k = 0; k < options_.eval_iters; ++k) {
      TokenBatch b = draw(split == 0, eval_gen);
      out[split] += loss_fn_(b.x, b.y).item();
    }
    out[split] /= static_cast<double>(std::max<int64_t>(1, options_.eval_iters));
  }
  model_.train(was_training);
  if (comm_->distributed()) {  // each rank evaluated its rows of the same batches: the mean of the means
    std::vector<double> sums{out[0], out[1]};
    comm_->all_reduce_sum(sums);
    return {sums[0] / comm_->size(), sums[1] / comm_->size()};
  }
  return {out[0], out[1]};
}

double Trainer::accumulate_gradients(const std::vector<TokenBatch>& micro_batches) {
  double total = 0;
  const double steps = static_cast<double>(micro_batches.size());
  for (const TokenBatch& b : micro_batches) {
    Tensor loss = loss_fn_(b.x, b.y);
    const double value = loss.item();
    if (!std::isfinite(value)) return value;
    mul(loss, 1.0 / steps).backward();
    total += value;
  }
  return total / steps;
}

TrainResult Trainer::run() {
  const bool root = comm_->is_root();
  prepare_out_dir();
  int64_t iter = 0;
  if (options_.resume) {  // every rank reads the checkpoint (out_dir must be visible to all of them)
    CheckpointContents c = load_checkpoint(checkpoint_path());
    restore_checkpoint(c, model_, optimizer_.get(), generators_);
    iter = c.iter;
    last_saved_iter_ = iter;
    if (root && options_.log) spdlog::info("resumed from {} at iter {}", checkpoint_path(), iter);
  }
  if (comm_->distributed()) comm_->broadcast(model_.parameters());  // rank 0's parameters everywhere
  metrics_.reset();
  if (root && !options_.out_dir.empty())
    metrics_ = std::make_unique<MetricsCsv>((std::filesystem::path(options_.out_dir) / "metrics.csv").string(),
                                            metric_columns_);
  MetricsCsv* metrics = metrics_.get();
  const bool live = root && options_.log && options_.progress && isatty(fileno(stdout));
  const bool log = root && options_.log;
  model_.train();
  TrainResult result;
  const auto start = Clock::now();
  auto last_log = Clock::now();
  int64_t tokens_since_log = 0, first_iter = iter;
  const std::vector<Tensor> params = model_.parameters();

  for (;; ++iter) {
    const double lr = options_.decay_lr ? cosine_lr(iter, options_.warmup_iters, options_.lr_decay_iters,
                                                    options_.learning_rate, options_.min_lr)
                                        : options_.learning_rate;
    // Groups made with another lr than learning_rate (Muon's) keep their ratio to it.
    optimizer_->scale_lr(lr, options_.learning_rate);
    if (iter % options_.eval_interval == 0 || iter == options_.max_iters) {
      auto [train_loss, val_loss] = estimate_loss();
      result.train_loss = train_loss;
      result.val_loss = val_loss;
      if (live) std::printf("\n");
      const ReferenceLoss& reference = options_.reference_loss;
      if (log && reference.defined())
        spdlog::info("iter {}: train loss {:.4f}, val loss {:.4f} ({} {:.4f}, gap {:.4f})", iter, train_loss, val_loss,
                     reference.label, reference.value, val_loss - reference.value);
      else if (log)
        spdlog::info("iter {}: train loss {:.4f}, val loss {:.4f}", iter, train_loss, val_loss);
      StepMetrics m;
      m.iter = iter;
      m.train_eval = train_loss;
      m.val_eval = val_loss;
      if (metrics) metrics->append(m);
      for (const auto& callback : on_eval_) callback(iter, train_loss, val_loss);
      // Evaluation runs before the step's own divergence check, so a model that diverged in the last
      // step shows up here first: never save it, and never call it good.
      if (!std::isfinite(train_loss) || !std::isfinite(val_loss)) {
        optimizer_->zero_grad();
        throw TrainingDiverged(iter, "training stopped at iter " + std::to_string(iter) +
                               ": the evaluation loss is not finite (train " + std::to_string(train_loss) + ", val " +
                               std::to_string(val_loss) + "); " + kept_checkpoint());
      }
      if (iter > first_iter || iter == options_.max_iters) {
        check_finite_weights(iter, live);
        save(iter);
        if (!options_.out_dir.empty()) result.checkpoint = checkpoint_path();
      }
    }
    if (iter >= options_.max_iters) break;

    std::vector<TokenBatch> micro;
    for (int64_t k = 0; k < options_.gradient_accumulation_steps; ++k) micro.push_back(draw(true, data_gen_));
    double loss = accumulate_gradients(micro);
    if (averager_) {
      // Every rank takes part even after a NaN of its own, so that all of them stop together.
      const bool finite_grads = averager_->average();
      const std::vector<double> all = comm_->all_gather({loss, finite_grads ? 1.0 : 0.0});
      loss = 0;
      bool finite = true;
      for (std::size_t r = 0; r < all.size() / 2; ++r) {
        loss += all[2 * r] / comm_->size();
        finite = finite && std::isfinite(all[2 * r]) && all[2 * r + 1] != 0;
      }
      if (!finite) diverged(iter, all, NAN, live);
    }
    if (std::isfinite(loss))
      for (const auto& callback : on_after_backward_) callback(iter, loss);
    const double norm = clip_grad_norm(params, options_.grad_clip);
    if (averager_ && !std::isfinite(norm)) diverged(iter, {}, norm, live);
    if (!std::isfinite(loss) || !std::isfinite(norm)) {
      optimizer_->zero_grad();
      if (live) std::printf("\n");
      throw TrainingDiverged(iter, "training stopped at iter " + std::to_string(iter) + ": " +
                             (!std::isfinite(loss) ? "loss" : "gradient norm") + " is not finite (loss " +
                             std::to_string(loss) + ", grad norm " + std::to_string(norm) +
                             "); " + kept_checkpoint());
    }
    optimizer_->step();
    optimizer_->zero_grad();
    for (const TokenBatch& b : micro) tokens_since_log += b.x.numel() * comm_->size();
    for (const auto& callback : on_step_) callback(iter, loss);

    if (root && iter % options_.log_interval == 0) {
      const auto now = Clock::now();
      const double dt = std::chrono::duration<double>(now - last_log).count();
      const double tok_s = dt > 0 ? static_cast<double>(tokens_since_log) / dt : 0.0;
      const double elapsed = std::chrono::duration<double>(now - start).count();
      const double per_iter = elapsed / static_cast<double>(iter - first_iter + 1);
      const double eta = per_iter * static_cast<double>(options_.max_iters - iter - 1);
      StepMetrics m;
      m.iter = iter;
      m.loss = loss;
      m.lr = lr;
      m.grad_norm = norm;
      m.tokens_per_sec = tok_s;
      if (metrics) metrics->append(m);
      if (live) {
        std::printf("\riter %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | ETA %s   ",
                    static_cast<long long>(iter), static_cast<long long>(options_.max_iters), loss, lr, norm, tok_s,
                    format_duration(eta).c_str());
        std::fflush(stdout);
      } else if (log) {
        spdlog::info("iter {}: loss {:.4f}, lr {:.2e}, grad norm {:.3f}, {:.0f} tok/s, ETA {}", iter, loss, lr, norm,
                     tok_s, format_duration(eta));
      }
      last_log = now;
      tokens_since_log = 0;
    }
  }
  result.iters = iter;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const std::string png = (std::filesystem::path(options_.out_dir) / "loss.png").string();
  // A failed metrics file was reported when it failed; plotting it would only report it again.
  if (metrics && !metrics->failed()) {
    const GnuplotResult plot = render_loss_curve(metrics->path(), png, options_.reference_loss);
    if (plot.status == GnuplotResult::Status::failed)
      spdlog::warn("loss curve: cannot draw {}: {}", png, plot.error);
    else if (log && plot.ok())
      spdlog::info("loss curve: {}", png);
    else if (log)
      spdlog::info("loss curve: not drawn, gnuplot is not installed");
  }
  return result;
}

}  // namespace minitrain::train
