// Checkpoints: round trip of model, optimizer, generators and metadata; bad files; atomic writes.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/gpt_config_io.h>

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <sys/resource.h>
#include <unistd.h>
#include <fstream>

using namespace minitrain;
using namespace minitrain::train;
namespace fs = std::filesystem;

namespace {
nn::GPTConfig tiny_config() {
  nn::GPTConfig c;
  c.block_size = 8;
  c.vocab_size = 7;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_embd = 8;
  return c;
}
fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("minitrain_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}
}  // namespace

TEST(Checkpoint, RoundTripsModelOptimizerGeneratorsAndMetadata) {
  const fs::path dir = scratch("roundtrip");
  nn::GPT model(tiny_config());
  AdamW opt(model.named_parameters());
  model.loss(from_vector(std::vector<int64_t>{1, 2, 3, 4}, {1, 4}), from_vector(std::vector<int64_t>{2, 3, 4, 5}, {1, 4})).backward();
  opt.step();
  Generator gen(42);
  gen.next_u64();
  const std::string path = (dir / "ckpt.safetensors").string();
  save_checkpoint(path, 17, model, &opt, {{"data", &gen}}, {{"gpt_config", gpt_config_to_json(model.config())}});

  CheckpointContents c = load_checkpoint(path);
  EXPECT_EQ(c.iter, 17);
  EXPECT_EQ(c.optimizer_steps, 1);
  EXPECT_TRUE(c.model.count("lm_head.weight"));  // nanoGPT's layout keeps the tied name too
  nn::GPTConfig cfg = gpt_config_from_json(c.metadata.at("gpt_config"));
  EXPECT_EQ(cfg.n_embd, 8);
  nn::GPT restored(cfg);
  AdamW opt2(restored.named_parameters());
  Generator gen2(0);
  restore_checkpoint(c, restored, &opt2, {{"data", &gen2}});
  EXPECT_EQ(gen2.next_u64(), gen.next_u64());
  EXPECT_EQ(opt2.steps(), 1);
  for (auto& [name, t] : model.state_dict())
    EXPECT_EQ(restored.state_dict().at(name).to_vector<float>(), t.to_vector<float>()) << name;
  for (auto& [name, t] : opt.state_dict())
    EXPECT_EQ(opt2.state_dict().at(name).to_vector<float>(), t.to_vector<float>()) << name;
  fs::remove_all(dir);
}

// An optimizer with parameter groups (nanoGPT's decay / no-decay split, each its own options) saves and
// restores its per-parameter state the same way: it is keyed by parameter name.
TEST(Checkpoint, RoundTripsAnOptimizerWithParamGroups) {
  const fs::path dir = scratch("groups");
  auto make_optimizer = [](nn::GPT& m) {
    auto [decay, no_decay] = split_by_decay(m.named_parameters());
    return AdamW({ParamGroup(decay, AdamWOptions(1e-2).weight_decay(0.1)),
                  ParamGroup(no_decay, AdamWOptions(2e-2).weight_decay(0.0))});
  };
  nn::GPT model(tiny_config());
  AdamW opt = make_optimizer(model);
  model.loss(from_vector(std::vector<int64_t>{1, 2, 3, 4}, {1, 4}), from_vector(std::vector<int64_t>{2, 3, 4, 5}, {1, 4})).backward();
  opt.step();
  const std::string path = (dir / "ckpt.safetensors").string();
  save_checkpoint(path, 3, model, &opt, {}, {});
  nn::GPT restored(tiny_config());
  AdamW opt2 = make_optimizer(restored);
  restore_checkpoint(load_checkpoint(path), restored, &opt2, {});
  EXPECT_EQ(opt2.steps(), 1);
  const auto saved = opt.state_dict(), loaded = opt2.state_dict();
  ASSERT_EQ(saved.size(), loaded.size());
  for (auto& [name, t] : saved) EXPECT_EQ(loaded.at(name).to_vector<float>(), t.to_vector<float>()) << name;
  fs::remove_all(dir);
}

TEST(Checkpoint, RejectsFilesThatAreNotCheckpoints) {
  const fs::path dir = scratch("bad");
  const std::string path = (dir / "x.safetensors").string();
  EXPECT_THROW(load_checkpoint(path), std::runtime_error);  // missing
  { std::ofstream(path) << "garbage"; }
  EXPECT_THROW(load_checkpoint(path), std::runtime_error);
  nn::GPT model(tiny_config());
  save_checkpoint(path, 1, model, nullptr, {}, {});
  CheckpointContents c = load_checkpoint(path);
  nn::GPTConfig other = tiny_config();
  other.n_embd = 16;
  nn::GPT wrong(other);
  try {
    restore_checkpoint(c, wrong, nullptr, {});
    ADD_FAILURE() << "mis-shaped checkpoint was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("transformer.wte.weight"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Checkpoint, AFailedWriteKeepsThePreviousFile) {
  const fs::path dir = scratch("atomic");
  const std::string path = (dir / "ckpt.safetensors").string();
  nn::GPT model(tiny_config());
  save_checkpoint(path, 1, model, nullptr, {}, {});
  const auto before = fs::file_size(path);
  // A file-size limit makes the next write fail midway (as a full disk would), even for root.
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old_limit{};
  getrlimit(RLIMIT_FSIZE, &old_limit);
  rlimit small = old_limit;
  small.rlim_cur = 256;
  setrlimit(RLIMIT_FSIZE, &small);
  bool threw = false;
  try {
    save_checkpoint(path, 2, model, nullptr, {}, {});
  } catch (const std::exception&) {
    threw = true;
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  EXPECT_TRUE(threw);
  EXPECT_EQ(load_checkpoint(path).iter, 1);
  EXPECT_EQ(fs::file_size(path), before);
  for (auto& entry : fs::directory_iterator(dir)) EXPECT_EQ(entry.path().filename(), "ckpt.safetensors");
  fs::remove_all(dir);
}
