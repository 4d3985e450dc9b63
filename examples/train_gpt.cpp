// train_gpt: trains a character-level GPT on the bundled toy corpus (or --data FILE), nanoGPT style,
// then prints the val loss beside the corpus entropy and a sample.
//
//   ./build/examples/train_gpt                         # the bundled corpus, a few minutes on 2 cores
//   ./build/examples/train_gpt --max_iters 5000 --out_dir out-big
//   ./build/examples/train_gpt --resume --out_dir out  # continue from out/ckpt.safetensors
//   mpirun -np 2 ./build/examples/train_gpt            # data-parallel: --batch_size is split across ranks
//   ./build/examples/train_gpt --health_interval 100   # attention health per layer in metrics.csv, with warnings
//   ./build/examples/train_gpt --optimizer muon        # Muon for the hidden matrices, AdamW for the rest
//   ./build/examples/train_gpt --init_from out/hf      # fine-tune a Hugging Face directory (export_gpt --format hf-gpt2)
#include <minitrain/core/regular_file.h>
#include <minitrain/core/threads.h>
#include <minitrain/data/text_dataset.h>
#include <minitrain/data/toy_corpus.h>
#include <minitrain/distributed/mpi.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/attention_health.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/distributed.h>
#include <minitrain/train/gpt_config_io.h>
#include <minitrain/train/hf_checkpoint.h>
#include <minitrain/train/trainer.h>

#include "architecture_flags.h"
#include "cli_checks.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

using namespace minitrain;

namespace {

struct Flags {
  nn::GPTConfig model;
  train::TrainOptions train;
  int64_t batch_size = 12;
  std::string data = MINITRAIN_DEFAULT_CORPUS;
  int threads = 2;  // the physical cores of the reference machine
  int64_t sample_chars = 300;
  int64_t health_interval = 0;  // 0: off
  // "adamw", or "muon": Muon for the blocks' matrices (split_for_muon), AdamW with the flags above for the
  // embeddings, head and gains. Muon's lr follows the schedule at muon_lr / learning_rate times AdamW's.
  std::string optimizer = "adamw";
  double muon_lr = 0.02, muon_momentum = 0.95, muon_weight_decay = 0.0;
  std::string init_from;        // a Hugging Face model directory to fine-tune
};

// The optimizer names --optimizer takes, and what the checkpoint's "optimizer" metadata holds (a checkpoint
// without it was written before Muon, by AdamW).
const std::vector<std::string> kOptimizers{"adamw", "muon"};

// Upper limits of the flags: far beyond what this machine can train, and small enough that no product
// of them overflows (the memory check below then decides what actually fits).
constexpr int64_t kMaxSize = int64_t{1} << 20;        // n_layer, n_head, n_embd, block_size, batch_size
constexpr int64_t kMaxIters = 1'000'000'000'000;      // max_iters and the other iteration counts
constexpr int64_t kMaxEvalIters = 1'000'000;          // batches per evaluation (each is a forward pass)
constexpr int64_t kMaxAccumulation = 1'000'000;
constexpr int64_t kMaxSampleChars = 10'000'000;

// One clear line for each invalid combination (the validators check each flag's type and range).
void validate(const Flags& f) {
  auto fail = [](const std::string& what) { throw CLI::ValidationError(what); };
  if (f.model.n_embd % f.model.n_head != 0)
    fail("--n_embd " + std::to_string(f.model.n_embd) + " is not divisible by --n_head " + std::to_string(f.model.n_head));
  const nn::GPTConfig& m = f.model;
  if (m.n_kv_head != 0 && m.n_head % m.n_kv_head != 0)
    fail("--n_kv_head " + std::to_string(m.n_kv_head) + " does not divide --n_head " + std::to_string(m.n_head));
  if (m.positional == nn::PositionalEncoding::Rotary && (m.n_embd / m.n_head) % 2 != 0)
    fail("rotary positions need an even head size, and --n_embd / --n_head is " + std::to_string(m.n_embd / m.n_head));
  if (f.train.lr_decay_iters <= f.train.warmup_iters)
    fail("--lr_decay_iters must be larger than --warmup_iters");
  const std::string problem = regular_file_problem(f.data);
  if (!problem.empty()) fail("--data " + f.data + ": " + problem);
}

std::string bytes_text(double bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) bytes /= 1024, ++u;
  char buf[48];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

// Refuses, before anything is allocated, a model and batch whose training would need more memory than
// this machine has. A rough count (float32): weights, gradients and two AdamW moments; per layer about
// 18 C-wide activations and the T x T attention weights of every head, kept for backward; logits, their
// softmax and gradient. Computed in floating point, so no size can overflow it.
void check_memory(const Flags& f, int64_t micro_batch) {
  const nn::GPTConfig& c = f.model;
  const double B = static_cast<double>(micro_batch), T = static_cast<double>(c.block_size);
  const double C = static_cast<double>(c.n_embd), H = static_cast<double>(c.n_head);
  double params = 0;
  try {
    params = static_cast<double>(nn::GPT::expected_num_parameters(c));
  } catch (const std::invalid_argument&) {
    params = INFINITY;
  }
  const double weights = 4.0 * 4.0 * params;
  const double activations = 4.0 * (static_cast<double>(c.n_layer) * B * T * (18.0 * C + H * T) +
                                    3.0 * B * T * static_cast<double>(c.vocab_size));
  const double need = weights + activations;
  const double have = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  if (need <= have) return;
  throw std::invalid_argument(
      "--n_layer " + std::to_string(c.n_layer) + " --n_head " + std::to_string(c.n_head) + " --n_embd " +
      std::to_string(c.n_embd) + " --block_size " + std::to_string(c.block_size) + " --batch_size " +
      std::to_string(micro_batch) + " (vocabulary " + std::to_string(c.vocab_size) + "): training would need about " +
      bytes_text(need) + " (weights, gradients and AdamW moments " + bytes_text(weights) + ", activations " +
      bytes_text(activations) + "), more than this machine's " + bytes_text(have) + " of memory");
}

// On --resume (shape, architecture and optimizer) and --init_from (shape and architecture) the model comes
// from the checkpoint: a flag given on the command line that disagrees with it is refused, naming each,
// rather than silently dropped. (--init_from takes --dropout: it is a training setting, not part of the
// weights.) The optimizer names are compared on --resume only.
void check_checkpoint_flags(const CLI::App& app, const nn::GPTConfig& given, const nn::GPTConfig& saved,
                            const std::string& mode, const std::vector<std::string>& architecture_flags,
                            const std::string& given_optimizer = "", const std::string& saved_optimizer = "") {
  std::string differ;
  for (const std::string& flag : architecture_flags)
    differ += std::string(differ.empty() ? "" : ", ") + flag + " (the architecture is the checkpoint's)";
  auto compare = [&](const char* flag, const std::string& mine, const std::string& theirs) {
    if (app.count(flag) > 0 && mine != theirs)
      differ += std::string(differ.empty() ? "" : ", ") + flag + " " + mine + " (checkpoint: " + theirs + ")";
  };
  compare("--n_layer", std::to_string(given.n_layer), std::to_string(saved.n_layer));
  compare("--n_head", std::to_string(given.n_head), std::to_string(saved.n_head));
  compare("--n_embd", std::to_string(given.n_embd), std::to_string(saved.n_embd));
  compare("--block_size", std::to_string(given.block_size), std::to_string(saved.block_size));
  compare("--bias", given.bias ? "true" : "false", saved.bias ? "true" : "false");
  if (mode == "--resume") compare("--dropout", std::to_string(given.dropout), std::to_string(saved.dropout));
  compare("--attention_scale", std::to_string(given.attention_scale), std::to_string(saved.attention_scale));
  if (mode == "--resume") compare("--optimizer", given_optimizer, saved_optimizer);
  if (!differ.empty())
    throw std::invalid_argument(mode + ": the model's shape" + (mode == "--resume" ? " and optimizer come" : " comes") +
                                " from the checkpoint, and these flags differ from it: " + differ +
                                (mode == "--resume" ? "; drop them or start a new --out_dir" : "; drop them"));
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  f.model.dropout = 0.0;
  f.model.bias = false;
  f.train.max_iters = 2000;
  f.train.eval_interval = 250;
  f.train.eval_iters = 20;
  CLI::App app{"Train a character-level GPT (nanoGPT's flags)"};
  using examples::integer_in;
  using examples::number_in;
  const auto size = integer_in(1, kMaxSize), iters = integer_in(1, kMaxIters);
  app.add_option("--n_layer", f.model.n_layer, "transformer blocks")->check(size)->capture_default_str();
  app.add_option("--n_head", f.model.n_head, "attention heads")->check(size)->capture_default_str();
  app.add_option("--n_embd", f.model.n_embd, "embedding width")->check(size)->capture_default_str();
  app.add_option("--block_size", f.model.block_size, "context length")->check(size)->capture_default_str();
  app.add_option("--batch_size", f.batch_size, "sequences per micro-batch (all ranks together under mpirun)")->check(size)->capture_default_str();
  app.add_option("--dropout", f.model.dropout, "dropout probability")->check(number_in(0.0, 0.99))->capture_default_str();
  app.add_option("--bias", f.model.bias, "biases in Linear and LayerNorm")->capture_default_str();
  app.add_option("--max_iters", f.train.max_iters, "training iterations")->check(integer_in(0, kMaxIters))->capture_default_str();
  app.add_option("--lr_decay_iters", f.train.lr_decay_iters, "end of the cosine decay")->check(iters)->capture_default_str();
  app.add_option("--learning_rate", f.train.learning_rate, "peak learning rate")->check(number_in(1e-12, 1e9))->capture_default_str();
  app.add_option("--min_lr", f.train.min_lr, "learning rate after decay")->check(number_in(0, 1e9))->capture_default_str();
  app.add_option("--warmup_iters", f.train.warmup_iters, "linear warmup steps")->check(integer_in(0, kMaxIters))->capture_default_str();
  app.add_option("--weight_decay", f.train.weight_decay, "AdamW weight decay")->check(number_in(0, 1e3))->capture_default_str();
  app.add_option("--beta1", f.train.beta1, "AdamW beta1")->check(number_in(0.0, 0.999999))->capture_default_str();
  app.add_option("--beta2", f.train.beta2, "AdamW beta2")->check(number_in(0.0, 0.999999))->capture_default_str();
  app.add_option("--grad_clip", f.train.grad_clip, "clip the global grad norm (0: off)")->check(number_in(0, 1e12))->capture_default_str();
  app.add_option("--eval_interval", f.train.eval_interval, "iterations between evaluations")->check(iters)->capture_default_str();
  app.add_option("--eval_iters", f.train.eval_iters, "batches per evaluation")->check(integer_in(1, kMaxEvalIters))->capture_default_str();
  app.add_option("--log_interval", f.train.log_interval, "iterations between log lines")->check(iters)->capture_default_str();
  app.add_option("--gradient_accumulation_steps", f.train.gradient_accumulation_steps, "micro-batches per step")
      ->check(integer_in(1, kMaxAccumulation))->capture_default_str();
  app.add_option("--seed", f.train.seed, "fixes every random stream")->check(examples::seed_value())->capture_default_str();
  app.add_option("--data", f.data, "UTF-8 text file (default: the bundled toy corpus)")->capture_default_str();
  app.add_option("--out_dir", f.train.out_dir, "checkpoint, metrics.csv and loss.png go here")->capture_default_str();
  auto* resume = app.add_flag("--resume", f.train.resume, "continue from out_dir/ckpt.safetensors");
  app.add_flag("--overwrite", f.train.overwrite, "start afresh even though out_dir holds a checkpoint (replacing it)")
      ->excludes(resume);
  app.add_option("--init_from", f.init_from,
                 "fine-tune the weights of a Hugging Face model directory (config.json + model.safetensors, model_type "
                 "gpt2); its vocabulary must be --data's characters (BPE tokenizers come with issue #16)")
      ->excludes(resume);
  auto* threads = app.add_option("--threads", f.threads, "threads for BLAS and kernels (per rank under mpirun; "
                                 "default there: the cores shared by the ranks on each machine)")->check(integer_in(1, 1024))->capture_default_str();
  app.add_option("--attention_scale", f.model.attention_scale,
                 "multiplies q·k in every attention layer (default: 1/sqrt(head size))")
      ->check(number_in(1e-6, 1e6));
  examples::ArchitectureFlags architecture;
  architecture.add_to(app);
  app.add_option("--health_interval", f.health_interval,
                 "every N steps, each attention layer's entropy, logit spread and q/k/v gradient norms into "
                 "metrics.csv and attention_health.png, with a warning when a layer saturates or its gradients "
                 "vanish or spike (0: off)")->check(integer_in(0, kMaxIters))->capture_default_str();
  app.add_option("--optimizer", f.optimizer,
                 "adamw, or muon: Muon for the blocks' weight matrices and AdamW (the flags above) for the rest")
      ->check(CLI::IsMember(kOptimizers))->capture_default_str();
  app.add_option("--muon_lr", f.muon_lr, "Muon's peak learning rate (scheduled with --learning_rate's warmup and "
                 "decay, at muon_lr / learning_rate times AdamW's)")->check(number_in(1e-12, 1e9))->capture_default_str();
  app.add_option("--muon_momentum", f.muon_momentum, "Muon's momentum (Nesterov)")->check(number_in(0.0, 0.999999))->capture_default_str();
  app.add_option("--muon_weight_decay", f.muon_weight_decay, "Muon's decoupled weight decay")->check(number_in(0, 1e3))->capture_default_str();
  app.add_option("--sample_chars", f.sample_chars, "characters to sample at the end")->check(integer_in(0, kMaxSampleChars))->capture_default_str();
  try {
    app.parse(argc, argv);
    f.model = architecture.apply(f.model);
    validate(f);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // With SIGXFSZ at its default, a write past `ulimit -f` kills the process silently mid-write; ignored,
  // the write fails with EFBIG and the checkpoint writer reports it in one line (the old file is kept).
  std::signal(SIGXFSZ, SIG_IGN);

  // Under mpirun every rank runs this program (data parallel); otherwise this is a single process.
  train::Communicator& comm = distributed::world();
  if (comm.distributed()) {
    if (!comm.is_root()) spdlog::set_level(spdlog::level::warn);  // rank 0 speaks for the job
    if (threads->count() == 0)
      f.threads = train::threads_per_rank(comm, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    if (f.batch_size % comm.size() != 0) {
      if (comm.is_root())
        spdlog::error("--batch_size {} is not divisible by the {} ranks: each rank trains on an equal share of "
                      "the batch", f.batch_size, comm.size());
      return 1;  // every rank sees the same, so all of them stop here
    }
    f.train.communicator = &comm;
    // mpirun forwards output through a pseudo-terminal whatever it is connected to: plain log lines.
    f.train.progress = false;
  }

  try {
    set_num_threads(f.threads);
    f.model.seed = f.train.seed;
    data::TextDataset dataset = data::TextDataset::from_file(f.data);
    f.model.vocab_size = dataset.vocab_size();
    if (f.train.resume) {  // the checkpoint's tokenizer and model shape must match this run
      const train::CheckpointContents c =
          train::load_checkpoint((std::filesystem::path(f.train.out_dir) / "ckpt.safetensors").string());
      if (c.metadata_value("tokenizer") != dataset.tokenizer().to_string())
        throw std::invalid_argument("--resume: the checkpoint's vocabulary differs from " + f.data + "'s");
      const nn::GPTConfig saved = train::gpt_config_from_json(c.metadata_value("gpt_config"));
      train::check_config_matches_tensors(saved, c.model, c.path);
      const auto saved_optimizer = c.metadata.find("optimizer");
      const std::string optimizer = saved_optimizer == c.metadata.end() ? "adamw" : saved_optimizer->second;
      if (std::find(kOptimizers.begin(), kOptimizers.end(), optimizer) == kOptimizers.end())
        throw std::invalid_argument(c.path + ": unknown optimizer '" + optimizer + "' in the metadata");
      check_checkpoint_flags(app, f.model, saved, "--resume", architecture.given(app), f.optimizer, optimizer);
      f.model = saved;
      f.optimizer = optimizer;
    }
    train::ImportedGPT imported;
    if (!f.init_from.empty()) {  // the shape, the weights and (when recorded) the vocabulary come from the directory
      train::ImportSettings settings;
      settings.seed = f.train.seed;
      if (app.count("--dropout") > 0) settings.dropout = f.model.dropout;
      imported = train::load_hf_checkpoint(f.init_from, settings);
      const nn::GPTConfig& loaded = imported.model->config();
      if (loaded.vocab_size != dataset.vocab_size())
        throw std::invalid_argument(
            "--init_from " + f.init_from + ": the model has a vocabulary of " + std::to_string(loaded.vocab_size) +
            " tokens but " + f.data + " has " + std::to_string(dataset.vocab_size()) +
            " characters; fine-tuning needs the model's own tokenizer (GPT-2's BPE arrives with issue #16)");
      auto it = imported.metadata.find("tokenizer");
      if (it == imported.metadata.end())
        spdlog::warn("--init_from {}: model.safetensors records no character vocabulary; its {} token ids are taken "
                     "to be {}'s characters in sorted order", f.init_from, loaded.vocab_size, f.data);
      else if (it->second != dataset.tokenizer().to_string())
        throw std::invalid_argument("--init_from " + f.init_from + ": the model's character vocabulary differs from " +
                                    f.data + "'s");
      check_checkpoint_flags(app, f.model, loaded, "--init_from", architecture.given(app));
      f.model = loaded;
      spdlog::info("initialised from {} ({} parameters, dropout {})", f.init_from, imported.model->num_parameters(),
                   loaded.dropout);
    }
    // Checked with the block size the model will use (the checkpoint's when resuming), before training.
    for (data::Split split : {data::Split::Train, data::Split::Val})
      if (dataset.size(split) <= f.model.block_size)
        throw std::invalid_argument("--block_size " + std::to_string(f.model.block_size) + " is longer than the " +
                                    data::split_name(split) + " split (" + std::to_string(dataset.size(split)) +
                                    " tokens) of " + f.data);
    check_memory(f, f.batch_size / comm.size());

    const bool bundled = std::filesystem::equivalent(f.data, MINITRAIN_DEFAULT_CORPUS);
    if (bundled) {
      data::ToyCorpus corpus;
      f.train.reference_loss = {"corpus entropy", corpus.entropy_per_char()};
      spdlog::info("bundled toy corpus: entropy {:.4f} nats/char (the floor no model can beat); with a {}-char "
                   "context the reachable floor is {:.4f}",
                   f.train.reference_loss.value, f.model.block_size, corpus.block_loss_floor(f.model.block_size, 500));
    }

    std::unique_ptr<nn::GPT> model_holder =
        imported.model ? std::move(imported.model) : std::make_unique<nn::GPT>(f.model);
    nn::GPT& model = *model_holder;
    spdlog::info("GPT: {} layers, {} heads, width {}, context {}, vocabulary {}: {} parameters", f.model.n_layer,
                 f.model.n_head, f.model.n_embd, f.model.block_size, f.model.vocab_size, model.num_parameters());
    if (comm.distributed())
      spdlog::info("data parallel: {} ranks ({} on this machine), each {} of the {} sequences per batch, {} thread{} "
                   "per rank", comm.size(), comm.local_size(), f.batch_size / comm.size(), f.batch_size, f.threads,
                   f.threads == 1 ? "" : "s");
    const int64_t B = f.batch_size, T = f.model.block_size;
    train::BatchSource batches = [&](bool train_split, Generator& gen) {
      data::Batch b = dataset.get_batch(train_split ? data::Split::Train : data::Split::Val, B, T, gen);
      return train::TokenBatch{std::move(b.x), std::move(b.y)};
    };
    train::LossFn loss = [&](const Tensor& x, const Tensor& y) { return model.loss(x, y); };
    std::map<std::string, std::string> metadata{{"gpt_config", train::gpt_config_to_json(f.model)},
                                                {"tokenizer", dataset.tokenizer().to_string()},
                                                {"optimizer", f.optimizer}};
    if (f.optimizer == "muon") {
      const auto muon = train::MuonOptions(f.muon_lr).momentum(f.muon_momentum).weight_decay(f.muon_weight_decay);
      const auto adamw = train::AdamWOptions(f.train.learning_rate)
                             .betas({f.train.beta1, f.train.beta2})
                             .weight_decay(f.train.weight_decay);
      f.train.make_optimizer = [muon, adamw](const train::NamedParameters& params) -> std::unique_ptr<train::Optimizer> {
        return train::make_muon_with_adamw(params, muon, adamw);
      };
      spdlog::info("optimizer: Muon (lr {}, momentum {}, weight decay {}) for the blocks' matrices, AdamW for the rest",
                   f.muon_lr, f.muon_momentum, f.muon_weight_decay);
    }
    train::Trainer trainer(model, loss, batches, f.train, {{"dropout", &model.dropout_generator()}}, metadata);
    std::unique_ptr<train::AttentionHealth> health;
    train::HealthThresholds thresholds;
    thresholds.from_iter = f.train.warmup_iters;  // attention starts uniform: no verdicts during warmup
    if (f.health_interval > 0)
      health = std::make_unique<train::AttentionHealth>(trainer, model.attention_layers(), f.health_interval,
                                                        thresholds, [&comm](const std::string& line) {
                                                          if (comm.is_root()) spdlog::warn("{}", line);
                                                        });
    train::TrainResult result = trainer.run();
    if (!comm.is_root()) return 0;
    if (health) {
      const train::GnuplotResult plot = health->plot(f.train.out_dir);
      if (plot.ok())
        spdlog::info("attention health: {} records in metrics.csv, plotted in {}", health->records(),
                     (std::filesystem::path(f.train.out_dir) / "attention_health.png").string());
      else
        spdlog::info("attention health: {} records in metrics.csv (no plot: {})", health->records(),
                     plot.status == train::GnuplotResult::Status::not_installed ? "gnuplot is not installed" : plot.error);
    }

    std::cout << "\nfinal: val loss " << result.val_loss << " nats/char";
    if (bundled)
      std::cout << " vs corpus entropy " << f.train.reference_loss.value << " (gap " << result.val_loss - f.train.reference_loss.value << ")";
    std::cout << ", train loss " << result.train_loss << ", " << result.iters << " iters in " << result.seconds << " s\n";
    std::cout << "checkpoint: " << result.checkpoint << "\n";
    if (f.sample_chars > 0) {
      Generator gen(f.train.seed);
      const std::vector<int64_t> prompt{dataset.tokens(data::Split::Val).front()};
      const auto out = model.generate(prompt, f.sample_chars, 0.8, 0, gen);
      std::cout << "sample:\n" << dataset.tokenizer().decode(out) << "\n";
    }
  } catch (const train::TrainingDiverged& e) {
    if (comm.is_root()) spdlog::error("{}", e.what());  // every rank stopped with the same message
    return 2;
  } catch (const std::exception& e) {
    if (!comm.distributed()) {
      spdlog::error("{}", e.what());
      return 1;
    }
    // Possibly this rank alone: the others may wait for it in a collective, so end the whole job.
    spdlog::error("rank {}: {}", comm.rank(), e.what());
    comm.abort(1);
  }
  return 0;
}
