// Hugging Face GPT-2 directories in and out, through the fixtures of tests/reference/fixtures_hf.py:
// hf_gpt2_tiny/ (save_pretrained's own output) and hf_gpt2_hub_layout/ (the hub's `gpt2` naming, mask
// buffers, lm_head present) give transformers' logits and loss; an export is save_pretrained's file again
// and loads back bit for bit; every kind of bad directory is refused with one line naming the file and
// the field or tensor.
#include "hf_test_util.h"
#include "parity.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/safetensors.h>
#include <minitrain/train/hf_checkpoint.h>
#include <minitrain/train/hf_gpt2.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

using namespace minitrain;
using nlohmann::json;
using parity::Fixture;
using namespace minitrain::parity::hf;
namespace fs = std::filesystem;

namespace {

const char* kReference = "hf_gpt2_reference.safetensors";

}  // namespace

TEST(HfGpt2Import, FixturesGiveTransformersLogitsAndLoss) {
  const Fixture ref(kReference);
  parity::Report report("hf gpt2 import (float32)", parity::kFloat32Limit);
  for (const auto& [model_name, dir] : {std::make_pair(std::string("tiny"), std::string("hf_gpt2_tiny")),
                                        std::make_pair(std::string("hub_layout"), std::string("hf_gpt2_hub_layout"))}) {
    train::ImportedGPT imported = train::load_hf_gpt2(fixture_dir(dir));
    ASSERT_EQ(imported.model->dtype(), DType::Float32);
    const auto [logits, loss] = logits_and_loss(*imported.model, ref.at(model_name + ".idx"));
    report.check(model_name, "logits", logits, ref.at(model_name + ".logits"));
    report.check(model_name, "loss", loss, ref.at(model_name + ".loss"));
    // For scale: how far torch's own float32 logits are from its float64 ones (rounded to float32), and
    // minitrain's.
    const Tensor exact = ref.at(model_name + ".logits_f64").to(DType::Float32);
    report.record(model_name, "(torch f32 vs f64 logits)", parity::relative_error(ref.at(model_name + ".logits"), exact));
    report.record(model_name, "(minitrain f32 vs torch f64 logits)", parity::relative_error(logits, exact));
  }
  std::cout << "[parity] hf gpt2 fixtures written by torch " << ref.meta("torch") << ", transformers "
            << ref.meta("transformers") << "\n";
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

TEST(HfGpt2Import, ConfigFieldsBecomeTheGPTConfig) {
  const nn::GPTConfig tiny = train::load_hf_gpt2(fixture_dir("hf_gpt2_tiny")).model->config();
  EXPECT_EQ(tiny.n_layer, 2);
  EXPECT_EQ(tiny.n_head, 2);
  EXPECT_EQ(tiny.n_embd, 32);
  EXPECT_EQ(tiny.vocab_size, 101);
  EXPECT_EQ(tiny.block_size, 24);
  EXPECT_TRUE(tiny.bias);
  EXPECT_EQ(tiny.activation, nn::Activation::GeluTanh);  // gelu_new
  EXPECT_DOUBLE_EQ(tiny.dropout, 0.1);
  EXPECT_TRUE(std::isnan(tiny.attention_scale));
  const nn::GPTConfig hub = train::load_hf_gpt2(fixture_dir("hf_gpt2_hub_layout")).model->config();
  EXPECT_EQ(hub.activation, nn::Activation::Gelu);
  EXPECT_EQ(hub.attention_scale, 1.0);  // scale_attn_weights false
  EXPECT_EQ(hub.dropout, 0.0);
  // The dispatcher reads model_type and gives the same model.
  train::ImportedGPT via_dispatch = train::load_hf_checkpoint(fixture_dir("hf_gpt2_tiny"));
  EXPECT_EQ(via_dispatch.model->config().activation, nn::Activation::GeluTanh);
  EXPECT_EQ(train::hf_model_types(), (std::vector<std::string>{"gpt2", "llama"}));
  // Training settings replace the file's; the weights stay the file's.
  train::ImportSettings settings;
  settings.dropout = 0.0;
  settings.seed = 42;
  train::ImportedGPT tuned = train::load_hf_checkpoint(fixture_dir("hf_gpt2_tiny"), settings);
  EXPECT_EQ(tuned.model->config().dropout, 0.0);
  EXPECT_EQ(tuned.model->config().seed, 42u);
  const nn::StateDict a = tuned.model->state_dict(), b = via_dispatch.model->state_dict();
  for (const auto& [name, t] : a) EXPECT_TRUE(bitwise_equal(t, b.at(name))) << name;
  settings.dropout = 1.0;
  expect_refused([&] { train::load_hf_gpt2(fixture_dir("hf_gpt2_tiny"), settings); }, "import: ", {"dropout"});
}

TEST(HfGpt2Export, IsSavePretrainedsFileAgainAndLoadsBackBitForBit) {
  ScratchDir scratch;
  train::ImportedGPT imported = train::load_hf_gpt2(fixture_dir("hf_gpt2_tiny"));
  const std::string out = (scratch.dir / "export").string();  // created by the export
  train::export_hf_gpt2(*imported.model, out);

  // The same tensors as save_pretrained wrote: names, dtypes, shapes, bytes.
  const SafeTensors theirs = load_safetensors(fixture_dir("hf_gpt2_tiny") + "/model.safetensors");
  const SafeTensors ours = load_safetensors(out + "/model.safetensors");
  ASSERT_EQ(ours.tensors.size(), theirs.tensors.size());
  for (const auto& [name, t] : theirs.tensors) {
    ASSERT_TRUE(ours.tensors.count(name)) << name;
    EXPECT_TRUE(bitwise_equal(ours.tensors.at(name), t)) << name;
  }
  EXPECT_EQ(ours.metadata.at("format"), "pt");
  // config.json agrees with transformers' on every field that describes the model.
  const json their_config = read_json(fixture_dir("hf_gpt2_tiny") + "/config.json");
  const json our_config = read_json(out + "/config.json");
  for (const char* key : {"model_type", "architectures", "vocab_size", "n_positions", "n_embd", "n_layer", "n_head",
                          "n_inner", "activation_function", "layer_norm_epsilon", "resid_pdrop", "embd_pdrop",
                          "attn_pdrop", "scale_attn_weights", "scale_attn_by_inverse_layer_idx",
                          "reorder_and_upcast_attn", "add_cross_attention", "tie_word_embeddings"})
    EXPECT_EQ(our_config.at(key), their_config.at(key)) << key;

  // Loading the export gives the same model.
  train::ImportedGPT again = train::load_hf_gpt2(out);
  const nn::StateDict a = imported.model->state_dict(), b = again.model->state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(bitwise_equal(t, b.at(name))) << name;
  EXPECT_EQ(train::gpt2_config_to_hf(again.model->config()), train::gpt2_config_to_hf(imported.model->config()));
}

TEST(HfGpt2Export, MinitrainModelsRoundTripBitForBit) {
  ScratchDir scratch;
  struct Case {
    nn::Activation activation;
    double scale;
  };
  for (const Case& c : {Case{nn::Activation::Gelu, std::nan("")}, Case{nn::Activation::GeluTanh, 1.0},
                        Case{nn::Activation::Relu, std::nan("")}}) {
    nn::GPTConfig config;
    config.n_layer = 3;
    config.n_head = 2;
    config.n_embd = 16;
    config.vocab_size = 37;
    config.block_size = 12;
    config.bias = true;
    config.dropout = 0.25;
    config.activation = c.activation;
    config.attention_scale = c.scale;
    config.seed = 99;
    nn::GPT model(config);
    // Biases and LayerNorms start at 0 and 1: give them values, so a misplaced one shows.
    Generator gen(5);
    {
      NoGradGuard no_grad;
      for (auto& [name, p] : model.named_parameters()) p.copy_(randn(p.shape(), gen));
    }
    const std::string dir = (scratch.dir / ("model_" + std::to_string(static_cast<int>(c.activation)))).string();
    train::export_hf_gpt2(model, dir, {{"tokenizer", "abc"}});
    train::ImportedGPT back = train::load_hf_gpt2(dir);
    EXPECT_EQ(back.metadata.at("tokenizer"), "abc");
    const nn::GPTConfig& got = back.model->config();
    EXPECT_EQ(got.activation, c.activation);
    EXPECT_EQ(std::isnan(got.attention_scale), std::isnan(c.scale));
    EXPECT_EQ(got.dropout, 0.25);
    EXPECT_EQ(got.n_layer, 3);
    const nn::StateDict a = model.state_dict(), b = back.model->state_dict();
    for (const auto& [name, t] : a) EXPECT_TRUE(bitwise_equal(t, b.at(name))) << name;
    Tensor idx = randint(0, 37, {2, 12}, gen);
    model.eval();
    back.model->eval();
    NoGradGuard no_grad;
    EXPECT_TRUE(bitwise_equal(model.forward(idx), back.model->forward(idx)));
  }
}

TEST(HfGpt2Export, RefusesWhatGpt2CannotExpress) {
  ScratchDir scratch;
  auto refused = [&](const std::function<void(nn::GPTConfig&)>& edit, const std::string& part) {
    nn::GPTConfig config;
    config.n_layer = 1;
    config.n_head = 2;
    config.n_embd = 8;
    config.vocab_size = 11;
    config.block_size = 4;
    config.bias = true;
    edit(config);
    nn::GPT model(config);
    expect_refused([&] { train::export_hf_gpt2(model, (scratch.dir / "x").string()); }, "GPT-2 export: ", {part});
  };
  refused([](nn::GPTConfig& c) { c.bias = false; }, "biases");
  refused([](nn::GPTConfig& c) { c.positional = nn::PositionalEncoding::Sinusoidal; }, "sinusoidal");
  refused([](nn::GPTConfig& c) { c.attention_scale = 0.3; }, "1/sqrt(head size)");
  EXPECT_FALSE(fs::exists(scratch.dir / "x")) << "a refused export wrote something";
}

TEST(HfGpt2Import, BadConfigsAreRefusedNamingConfigJsonAndTheField) {
  ScratchDir scratch;
  int n = 0;
  auto refused = [&](const std::function<void(json&)>& edit, const std::vector<std::string>& parts) {
    const std::string dir = scratch.copy_of("hf_gpt2_tiny", "c" + std::to_string(n++));
    edit_config(dir, edit);
    expect_refused([&] { train::load_hf_gpt2(dir); }, dir + "/config.json: ", parts);
  };
  refused([](json& j) { j.erase("n_embd"); }, {"missing 'n_embd'"});
  refused([](json& j) { j.erase("model_type"); }, {"missing 'model_type'"});
  refused([](json& j) { j["model_type"] = "llama"; }, {"'model_type' is 'llama'"});
  refused([](json& j) { j["activation_function"] = "swish"; },
          {"'activation_function' is 'swish'; accepted: gelu_new, gelu_pytorch_tanh, gelu, relu"});
  refused([](json& j) { j["n_embd"] = 32.5; }, {"'n_embd' must be an integer"});
  refused([](json& j) { j["n_head"] = 3; }, {"n_embd 32 is not divisible by n_head 3"});
  refused([](json& j) { j["n_inner"] = 64; }, {"'n_inner' is 64", "4 * n_embd = 128"});
  refused([](json& j) { j["layer_norm_epsilon"] = 0; }, {"'layer_norm_epsilon' must be in"});
  refused([](json& j) { j["scale_attn_by_inverse_layer_idx"] = true; }, {"'scale_attn_by_inverse_layer_idx' is true"});
  refused([](json& j) { j["add_cross_attention"] = true; }, {"'add_cross_attention' is true"});
  refused([](json& j) { j["attn_pdrop"] = 0.2; }, {"'attn_pdrop' is 0.2", "one dropout rate"});
  refused([](json& j) { j["resid_pdrop"] = 1.0; }, {"'resid_pdrop' must be in"});
}

TEST(HfGpt2Import, BadWeightsAreRefusedNamingModelSafetensorsAndTheTensor) {
  ScratchDir scratch;
  int n = 0;
  auto refused = [&](const std::function<void(std::map<std::string, Tensor>&)>& edit,
                     const std::vector<std::string>& parts, const char* fixture = "hf_gpt2_tiny") {
    const std::string dir = scratch.copy_of(fixture, "w" + std::to_string(n++));
    edit_weights(dir, edit);
    expect_refused([&] { train::load_hf_gpt2(dir); }, dir + "/model.safetensors: ", parts);
  };
  const std::string fc = "transformer.h.1.mlp.c_fc.weight";
  // Stored the Linear way round instead of Conv1D's (in, out).
  refused([&](auto& t) { t[fc] = t[fc].transpose(0, 1).contiguous(); },
          {"tensor '" + fc + "' is (128, 32) but config.json makes it (32, 128)"});
  refused([](auto& t) { t.erase("transformer.ln_f.bias"); }, {"missing tensor 'transformer.ln_f.bias'"});
  refused([](auto& t) { t["transformer.h.0.attn.q_proj.weight"] = zeros({32, 32}); },
          {"unexpected tensor 'transformer.h.0.attn.q_proj.weight'"});
  refused([](auto& t) { t["transformer.h.x.ln_1.weight"] = zeros({32}); }, {"unexpected tensor 'transformer.h.x.ln_1.weight'"});
  refused([](auto& t) { t["transformer.wpe.weight"] = zeros({24, 32}, DType::Int64); },
          {"tensor 'transformer.wpe.weight' is I64; a weight must be F32, F64, F16 or BF16"});
  refused([](auto& t) {
    Tensor w = t["transformer.h.0.attn.c_proj.weight"].clone();
    w.set({3, 5}, std::numeric_limits<double>::quiet_NaN());
    t["transformer.h.0.attn.c_proj.weight"] = w;
  }, {"tensor 'transformer.h.0.attn.c_proj.weight' holds a non-finite value (nan)"});
  // An extra layer beyond config.json's n_layer.
  refused([](auto& t) {
    std::map<std::string, Tensor> extra;
    for (const auto& [name, v] : t)
      if (name.rfind("transformer.h.1.", 0) == 0) extra["transformer.h.2." + name.substr(16)] = v;
    t.insert(extra.begin(), extra.end());
  }, {"holds 3 layers but config.json says n_layer 2"});
  // lm_head present but not the tied embedding.
  refused([](auto& t) {
    Tensor head = t["lm_head.weight"].clone();
    head.set({100, 31}, 7.0);
    t["lm_head.weight"] = head;
  }, {"'lm_head.weight' differs from 'wte.weight' (element 3231", "ties its head"}, "hf_gpt2_hub_layout");
  // Both naming styles at once.
  refused([](auto& t) { t["wte.weight"] = t["transformer.wte.weight"]; }, {"unexpected tensor 'wte.weight'"});
}

TEST(HfGpt2Import, AConfigClaimingAHugeModelIsRefusedByTheShapesBeforeAnyAllocation) {
  ScratchDir scratch;
  const std::string dir = scratch.copy_of("hf_gpt2_tiny", "huge");
  // 2^24 wide: about 8 PB of weights. The shapes disagree with the file, so nothing is allocated.
  edit_config(dir, [](json& j) { j["n_embd"] = 1 << 24; j["n_head"] = 1; });
  const int64_t before = live_storage_bytes();
  expect_refused([&] { train::load_hf_gpt2(dir); }, dir + "/model.safetensors: ",
                 {"tensor 'transformer.h.0.attn.c_attn.bias' is (96) but config.json makes it (50331648)"});
  EXPECT_EQ(live_storage_bytes(), before);
}

TEST(HfGpt2Import, DirectoriesWithoutTheFilesSaySoInOneLine) {
  ScratchDir scratch;
  expect_refused([&] { train::load_hf_gpt2((scratch.dir / "nowhere").string()); }, (scratch.dir / "nowhere").string(),
                 {"not a directory"});
  const std::string no_config = scratch.copy_of("hf_gpt2_tiny", "no_config");
  fs::remove(fs::path(no_config) / "config.json");
  expect_refused([&] { train::load_hf_gpt2(no_config); }, no_config + "/config.json: ", {"no such file"});
  const std::string sharded = scratch.copy_of("hf_gpt2_tiny", "sharded");
  fs::rename(fs::path(sharded) / "model.safetensors", fs::path(sharded) / "model-00001-of-00002.safetensors");
  std::ofstream(fs::path(sharded) / "model.safetensors.index.json") << "{}";
  expect_refused([&] { train::load_hf_gpt2(sharded); }, sharded + ": ", {"no model.safetensors", "sharded"});
  const std::string bad_json = scratch.copy_of("hf_gpt2_tiny", "bad_json");
  std::ofstream(fs::path(bad_json) / "config.json") << "{\"n_embd\": ";
  expect_refused([&] { train::load_hf_gpt2(bad_json); }, bad_json + "/config.json: ", {"invalid JSON"});
  // A hostile safetensors header gets the reader's own message.
  const std::string truncated = scratch.copy_of("hf_gpt2_tiny", "truncated");
  const fs::path weights = fs::path(truncated) / "model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) - 100);
  expect_refused([&] { train::load_hf_gpt2(truncated); }, truncated + "/model.safetensors: ", {"past the end"});
  // The dispatcher names the model types it reads.
  const std::string other = scratch.copy_of("hf_gpt2_tiny", "mistral");
  edit_config(other, [](json& j) { j["model_type"] = "mistral"; });
  expect_refused([&] { train::load_hf_checkpoint(other); }, other + "/config.json: ",
                 {"'model_type' is 'mistral'; minitrain reads 'gpt2', 'llama'"});
}

TEST(HfGpt2Import, LayerNormEpsAndAnUntiedHeadAreRead) {
  ScratchDir scratch;
  // layer_norm_epsilon is GPTConfig::norm_eps.
  const std::string eps_dir = scratch.copy_of("hf_gpt2_tiny", "eps");
  edit_config(eps_dir, [](json& j) { j["layer_norm_epsilon"] = 1e-6; });
  train::ImportedGPT eps = train::load_hf_gpt2(eps_dir);
  EXPECT_EQ(eps.model->config().norm_eps, 1e-6);
  EXPECT_EQ(std::dynamic_pointer_cast<nn::LayerNorm>((*eps.model->h)[0]->ln_1)->eps, 1e-6);
  // Untied: lm_head.weight is read into its own tensor (here a value the embedding does not hold).
  const std::string untied = scratch.copy_of("hf_gpt2_hub_layout", "untied");
  edit_config(untied, [](json& j) { j["tie_word_embeddings"] = false; });
  edit_weights(untied, [](auto& t) {
    Tensor head = t["lm_head.weight"].clone();
    head.set({100, 31}, 7.0);
    t["lm_head.weight"] = head;
  });
  train::ImportedGPT model = train::load_hf_gpt2(untied);
  EXPECT_FALSE(model.model->config().tie_embeddings);
  EXPECT_EQ(model.model->lm_head->weight.at({100, 31}), 7.0);
  EXPECT_NE(model.model->wte->weight.at({100, 31}), 7.0);
  // Untied, the head must be in the file.
  const std::string headless = scratch.copy_of("hf_gpt2_tiny", "headless");
  edit_config(headless, [](json& j) { j["tie_word_embeddings"] = false; });
  expect_refused([&] { train::load_hf_gpt2(headless); }, headless + "/model.safetensors: ",
                 {"missing tensor 'lm_head.weight'"});
  // Both export and load back bit for bit, the untied head and the eps included.
  const std::string out = (scratch.dir / "export").string();
  train::export_hf_gpt2(*model.model, out);
  EXPECT_EQ(read_json(out + "/config.json").at("tie_word_embeddings"), false);
  train::ImportedGPT back = train::load_hf_gpt2(out);
  const nn::StateDict a = model.model->state_dict(), b = back.model->state_dict();
  for (const auto& [name, t] : a) EXPECT_TRUE(bitwise_equal(t, b.at(name))) << name;
  const std::string eps_out = (scratch.dir / "eps_export").string();
  train::export_hf_gpt2(*eps.model, eps_out);
  EXPECT_EQ(read_json(eps_out + "/config.json").at("layer_norm_epsilon"), 1e-6);
  EXPECT_EQ(train::load_hf_gpt2(eps_out).model->config().norm_eps, 1e-6);
}
