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

// Today's decoder options travel in the checkpoint's config; a config written before they existed reads
// as nanoGPT's architecture; a bad value is refused naming its field.
TEST(GPTConfigJson, RoundTripsTheArchitectureOptions) {
  nn::GPTConfig c = nn::llama_style(tiny_config());
  c.n_kv_head = 1;
  c.qk_norm = true;
  c.rope_theta = 500000.0;
  c.rope_layout = RotaryLayout::Interleaved;
  c.logit_softcap = 15.0;
  c.mlp_hidden = 24;
  c.norm_eps = 1e-6;
  c.activation = nn::Activation::ReluSquared;
  const nn::GPTConfig r = gpt_config_from_json(gpt_config_to_json(c));
  EXPECT_EQ(r.norm, nn::NormType::RMSNorm);
  EXPECT_EQ(r.positional, nn::PositionalEncoding::Rotary);
  EXPECT_EQ(r.activation, nn::Activation::ReluSquared);
  EXPECT_TRUE(r.gated_mlp);
  EXPECT_EQ(r.mlp_hidden, 24);
  EXPECT_EQ(r.n_kv_head, 1);
  EXPECT_TRUE(r.qk_norm);
  EXPECT_EQ(r.rope_theta, 500000.0);
  EXPECT_EQ(r.rope_layout, RotaryLayout::Interleaved);
  EXPECT_FALSE(r.tie_embeddings);
  EXPECT_EQ(r.logit_softcap, 15.0);
  EXPECT_EQ(r.norm_eps, 1e-6);
  EXPECT_FALSE(r.bias);
  EXPECT_EQ(nn::GPT::parameter_shapes(r), nn::GPT::parameter_shapes(c));
}

TEST(GPTConfigJson, OldConfigsAreNanoGPTAndBadFieldsAreNamed) {
  const std::string old_json = R"({"block_size": 8, "vocab_size": 7, "n_layer": 1, "n_head": 2, "n_embd": 8,
      "dropout": 0.0, "bias": true, "activation": "gelu", "positional": "learned", "attention_scale": null, "seed": 1})";
  const nn::GPTConfig old = gpt_config_from_json(old_json);
  EXPECT_EQ(old.norm, nn::NormType::LayerNorm);
  EXPECT_TRUE(old.tie_embeddings);
  EXPECT_EQ(old.kv_heads(), 2);
  EXPECT_FALSE(old.qk_norm);
  EXPECT_EQ(old.logit_softcap, 0.0);
  auto refused = [&](const std::string& extra, const char* field) {
    const std::string text = old_json.substr(0, old_json.size() - 1) + ", " + extra + "}";
    try {
      gpt_config_from_json(text);
      ADD_FAILURE() << extra << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  refused(R"("norm": "batch_norm")", "norm");
  refused(R"("n_kv_head": 3)", "n_kv_head");  // does not divide n_head 2
  refused(R"("rope_layout": "spiral")", "rope_layout");
  refused(R"("qk_norm": 1)", "qk_norm");
  refused(R"("logit_softcap": -1)", "logit_softcap");
  refused(R"("mlp_hidden": 1.5)", "mlp_hidden");
}
