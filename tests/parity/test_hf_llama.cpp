// Hugging Face Llama directories in and out, through the fixtures of tests/reference/fixtures_hf_llama.py:
// hf_llama_gqa/ (grouped-query attention, untied head) and hf_llama_mqa_tied/ (one key/value head, tied
// head, biases, rope_theta 500000), save_pretrained's own output, give transformers' logits and loss, in
// one pass and through the KV cache in pieces; an export is save_pretrained's file again and loads back
// bit for bit; every kind of bad directory is refused with one line naming the file and the field or tensor.
#include "hf_test_util.h"
#include "parity.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/safetensors.h>
#include <minitrain/train/hf_checkpoint.h>
#include <minitrain/train/hf_llama.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <functional>

using namespace minitrain;
using namespace minitrain::parity::hf;
using nlohmann::json;
using parity::Fixture;

namespace {

const char* kReference = "hf_llama_reference.safetensors";
const std::pair<const char*, const char*> kModels[] = {{"gqa", "hf_llama_gqa"}, {"mqa_tied", "hf_llama_mqa_tied"}};

void expect_same_parameters(nn::GPT& a, nn::GPT& b) {
  const nn::StateDict x = a.state_dict(), y = b.state_dict();
  ASSERT_EQ(x.size(), y.size());
  for (const auto& [name, t] : x) {
    ASSERT_TRUE(y.count(name)) << name;
    EXPECT_TRUE(bitwise_equal(t, y.at(name))) << name;
  }
}

}  // namespace

TEST(HfLlamaImport, FixturesGiveTransformersLogitsAndLoss) {
  const Fixture ref(kReference);
  parity::Report report("hf llama import (float32)", parity::kFloat32Limit);
  for (const auto& [model_name, dir] : kModels) {
    const std::string m = model_name;
    train::ImportedGPT imported = train::load_hf_llama(fixture_dir(dir));
    ASSERT_EQ(imported.model->dtype(), DType::Float32);
    const auto [logits, loss] = logits_and_loss(*imported.model, ref.at(m + ".idx"));
    report.check(m, "logits", logits, ref.at(m + ".logits"));
    report.check(m, "loss", loss, ref.at(m + ".loss"));
    const Tensor exact = ref.at(m + ".logits_f64").to(DType::Float32);
    report.record(m, "(torch f32 vs f64 logits)", parity::relative_error(ref.at(m + ".logits"), exact));
    report.record(m, "(minitrain f32 vs torch f64 logits)", parity::relative_error(logits, exact));
  }
  std::cout << "[parity] hf llama fixtures written by torch " << ref.meta("torch") << ", transformers "
            << ref.meta("transformers") << "\n";
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

TEST(HfLlamaImport, TheKVCacheInPiecesGivesTheSameLogits) {
  const Fixture ref(kReference);
  parity::Report report("hf llama import, KV cache (float32)", parity::kFloat32Limit);
  for (const auto& [model_name, dir] : kModels) {
    const std::string m = model_name;
    train::ImportedGPT imported = train::load_hf_llama(fixture_dir(dir));
    nn::GPT& model = *imported.model;
    model.eval();
    NoGradGuard no_grad;
    const Tensor idx = ref.at(m + ".idx");
    std::vector<nn::KVCache> caches(model.config().n_layer);
    std::vector<Tensor> pieces;
    int64_t start = 0;
    for (int64_t length : {5, 1, 10, 16}) {  // a prefill, one token, then longer pieces: 32 in all
      pieces.push_back(model.forward_cached(idx.narrow(1, start, length).contiguous(), caches));
      start += length;
    }
    ASSERT_EQ(start, idx.size(1));
    report.check(m, "cached logits", cat(pieces, 1), ref.at(m + ".logits"));
  }
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

TEST(HfLlamaImport, ConfigFieldsBecomeTheGPTConfig) {
  const nn::GPTConfig gqa = train::load_hf_llama(fixture_dir("hf_llama_gqa")).model->config();
  EXPECT_EQ(gqa.n_layer, 2);
  EXPECT_EQ(gqa.n_head, 4);
  EXPECT_EQ(gqa.kv_heads(), 2);
  EXPECT_EQ(gqa.n_embd, 32);
  EXPECT_EQ(gqa.mlp_hidden_size(), 48);
  EXPECT_EQ(gqa.vocab_size, 67);
  EXPECT_EQ(gqa.block_size, 32);
  EXPECT_EQ(gqa.norm, nn::NormType::RMSNorm);
  EXPECT_EQ(gqa.norm_eps, 1e-6);
  EXPECT_EQ(gqa.positional, nn::PositionalEncoding::Rotary);
  EXPECT_EQ(gqa.rope_layout, RotaryLayout::Halves);
  EXPECT_EQ(gqa.rope_theta, 10000.0);
  EXPECT_TRUE(gqa.gated_mlp);
  EXPECT_EQ(gqa.activation, nn::Activation::Silu);
  EXPECT_FALSE(gqa.bias);
  EXPECT_FALSE(gqa.tie_embeddings);
  EXPECT_EQ(gqa.dropout, 0.0);
  train::ImportedGPT mqa = train::load_hf_checkpoint(fixture_dir("hf_llama_mqa_tied"));  // through the dispatcher
  const nn::GPTConfig& c = mqa.model->config();
  EXPECT_EQ(c.kv_heads(), 1);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_TRUE(c.bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(mqa.model->lm_head->weight.data<float>(), mqa.model->wte->weight.data<float>());  // one storage
  EXPECT_EQ(train::hf_model_types(), (std::vector<std::string>{"gpt2", "llama"}));
  train::ImportSettings settings;
  settings.dropout = 0.1;
  settings.seed = 42;
  const nn::GPTConfig tuned = train::load_hf_checkpoint(fixture_dir("hf_llama_gqa"), settings).model->config();
  EXPECT_EQ(tuned.dropout, 0.1);
  EXPECT_EQ(tuned.seed, 42u);
}

TEST(HfLlamaImport, OlderConfigSpellingsAreRead) {
  ScratchDir scratch;
  int n = 0;
  auto loaded = [&](const std::function<void(json&)>& edit) {
    const std::string dir = scratch.copy_of("hf_llama_mqa_tied", "o" + std::to_string(n++));
    edit_config(dir, edit);
    return train::load_hf_llama(dir).model->config();
  };
  // transformers 4.x: a top-level rope_theta and rope_scaling null.
  EXPECT_EQ(loaded([](json& j) { j.erase("rope_parameters"); j["rope_theta"] = 500000.0; j["rope_scaling"] = nullptr; })
                .rope_theta,
            500000.0);
  EXPECT_EQ(loaded([](json& j) { j.erase("rope_parameters"); }).rope_theta, 10000.0);  // LlamaConfig's default
  EXPECT_EQ(loaded([](json& j) { j["rope_parameters"] = {{"type", "default"}, {"rope_theta", 20000.0}}; }).rope_theta,
            20000.0);
  // Absent or null fields take LlamaConfig's defaults.
  json j = read_json(fixture_dir("hf_llama_mqa_tied") + "/config.json");
  for (const char* key : {"rms_norm_eps", "head_dim", "hidden_act", "attention_dropout", "pretraining_tp",
                          "tie_word_embeddings", "attention_bias", "mlp_bias"})
    j.erase(key);
  j["num_key_value_heads"] = nullptr;
  const nn::GPTConfig defaults = train::llama_config_from_hf(j.dump());
  EXPECT_EQ(defaults.norm_eps, 1e-6);
  EXPECT_EQ(defaults.kv_heads(), 4);  // num_attention_heads
  EXPECT_FALSE(defaults.tie_embeddings);
  EXPECT_FALSE(defaults.bias);
  EXPECT_EQ(defaults.activation, nn::Activation::Silu);
  EXPECT_EQ(defaults.dropout, 0.0);
}

TEST(HfLlamaExport, IsSavePretrainedsFileAgainAndLoadsBackBitForBit) {
  ScratchDir scratch;
  for (const auto& [model_name, dir] : kModels) {
    train::ImportedGPT imported = train::load_hf_llama(fixture_dir(dir));
    const std::string out = (scratch.dir / model_name).string();
    train::export_hf_llama(*imported.model, out);
    const SafeTensors theirs = load_safetensors(fixture_dir(dir) + "/model.safetensors");
    const SafeTensors ours = load_safetensors(out + "/model.safetensors");
    ASSERT_EQ(ours.tensors.size(), theirs.tensors.size()) << model_name;
    for (const auto& [name, t] : theirs.tensors) {
      ASSERT_TRUE(ours.tensors.count(name)) << name;
      EXPECT_TRUE(bitwise_equal(ours.tensors.at(name), t)) << model_name << " " << name;
    }
    EXPECT_EQ(ours.metadata.at("format"), "pt");
    const json their_config = read_json(fixture_dir(dir) + "/config.json");
    const json our_config = read_json(out + "/config.json");
    for (const char* key : {"model_type", "architectures", "vocab_size", "hidden_size", "intermediate_size",
                            "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                            "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_parameters",
                            "attention_bias", "mlp_bias", "attention_dropout", "tie_word_embeddings"})
      EXPECT_EQ(our_config.at(key), their_config.at(key)) << model_name << " " << key;
    train::ImportedGPT again = train::load_hf_llama(out);
    expect_same_parameters(*imported.model, *again.model);
    EXPECT_EQ(train::llama_config_to_hf(again.model->config()), train::llama_config_to_hf(imported.model->config()));
  }
}

TEST(HfLlamaExport, MinitrainModelsRoundTripBitForBit) {
  ScratchDir scratch;
  struct Case {
    int64_t n_kv_head;
    bool bias, tied;
  };
  int n = 0;
  for (const Case& c : {Case{2, false, false}, Case{1, true, true}, Case{6, false, true}}) {
    nn::GPTConfig sizes;
    sizes.n_layer = 3;
    sizes.n_head = 6;
    sizes.n_kv_head = c.n_kv_head;
    sizes.n_embd = 24;
    sizes.vocab_size = 37;
    sizes.block_size = 12;
    sizes.seed = 99;
    nn::GPTConfig config = nn::llama_style(sizes);
    config.bias = c.bias;
    config.tie_embeddings = c.tied;
    config.mlp_hidden = 40;
    config.rope_theta = 123456.0;
    config.norm_eps = 3e-6;
    nn::GPT model(config);
    // Norm gains start at 1 and biases at 0: give every parameter its own values, so a misplaced one shows.
    Generator gen(5);
    {
      NoGradGuard no_grad;
      for (auto& [name, p] : model.named_parameters()) p.copy_(randn(p.shape(), gen));
    }
    const std::string dir = (scratch.dir / ("m" + std::to_string(n++))).string();
    train::export_hf_llama(model, dir, {{"tokenizer", "abc"}});
    train::ImportedGPT back = train::load_hf_llama(dir);
    EXPECT_EQ(back.metadata.at("tokenizer"), "abc");
    const nn::GPTConfig& got = back.model->config();
    EXPECT_EQ(got.kv_heads(), c.n_kv_head);
    EXPECT_EQ(got.bias, c.bias);
    EXPECT_EQ(got.tie_embeddings, c.tied);
    EXPECT_EQ(got.mlp_hidden_size(), 40);
    EXPECT_EQ(got.rope_theta, 123456.0);
    EXPECT_EQ(got.norm_eps, 3e-6);
    expect_same_parameters(model, *back.model);
    Tensor idx = randint(0, 37, {2, 12}, gen);
    model.eval();
    back.model->eval();
    NoGradGuard no_grad;
    EXPECT_TRUE(bitwise_equal(model.forward(idx), back.model->forward(idx)));
  }
}

TEST(HfLlamaExport, RefusesWhatLlamaCannotExpress) {
  ScratchDir scratch;
  auto refused = [&](const std::function<void(nn::GPTConfig&)>& edit, const std::string& part) {
    nn::GPTConfig sizes;
    sizes.n_layer = 1;
    sizes.n_head = 2;
    sizes.n_embd = 8;
    sizes.vocab_size = 11;
    sizes.block_size = 4;
    nn::GPTConfig config = nn::llama_style(sizes);
    edit(config);
    nn::GPT model(config);
    expect_refused([&] { train::export_hf_llama(model, (scratch.dir / "x").string()); }, "Llama export: ", {part});
  };
  refused([](nn::GPTConfig& c) { c.norm = nn::NormType::LayerNorm; }, "(norm)");
  refused([](nn::GPTConfig& c) { c.positional = nn::PositionalEncoding::Learned; }, "(positional)");
  refused([](nn::GPTConfig& c) { c.rope_layout = RotaryLayout::Interleaved; }, "(rope_layout)");
  refused([](nn::GPTConfig& c) { c.gated_mlp = false; }, "(gated_mlp, activation)");
  refused([](nn::GPTConfig& c) { c.activation = nn::Activation::Gelu; }, "(gated_mlp, activation)");
  refused([](nn::GPTConfig& c) { c.qk_norm = true; }, "(qk_norm)");
  refused([](nn::GPTConfig& c) { c.logit_softcap = 30; }, "(logit_softcap)");
  refused([](nn::GPTConfig& c) { c.attention_scale = 0.3; }, "(attention_scale)");
  EXPECT_FALSE(fs::exists(scratch.dir / "x")) << "a refused export wrote something";
}

TEST(HfLlamaImport, BadConfigsAreRefusedNamingConfigJsonAndTheField) {
  ScratchDir scratch;
  int n = 0;
  auto refused = [&](const std::function<void(json&)>& edit, const std::vector<std::string>& parts,
                     const char* fixture = "hf_llama_gqa") {
    const std::string dir = scratch.copy_of(fixture, "c" + std::to_string(n++));
    edit_config(dir, edit);
    expect_refused([&] { train::load_hf_llama(dir); }, dir + "/config.json: ", parts);
  };
  refused([](json& j) { j.erase("hidden_size"); }, {"missing 'hidden_size'"});
  refused([](json& j) { j.erase("intermediate_size"); }, {"missing 'intermediate_size'"});
  refused([](json& j) { j["model_type"] = "mistral"; }, {"'model_type' is 'mistral'"});
  refused([](json& j) { j["head_dim"] = 16; }, {"'head_dim' is 16", "hidden_size / num_attention_heads = 8"});
  refused([](json& j) { j["num_attention_heads"] = 5; }, {"'hidden_size' is 32, not divisible by num_attention_heads 5"});
  refused([](json& j) { j["num_key_value_heads"] = 3; }, {"n_kv_head 3 must divide n_head 4"});
  refused([](json& j) { j["hidden_act"] = "gelu"; }, {"'hidden_act' is 'gelu'", "silu"});
  refused([](json& j) { j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0}}; },
          {"'rope_parameters.rope_type' is \"llama3\"", "no scaling"});
  refused([](json& j) { j.erase("rope_parameters"); j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; },
          {"'rope_scaling.type' is \"linear\""});
  refused([](json& j) { j["rope_parameters"]["factor"] = 2.0; }, {"'rope_parameters' holds 'factor'"});
  refused([](json& j) { j["partial_rotary_factor"] = 0.5; }, {"'partial_rotary_factor' is 0.5"});
  refused([](json& j) { j["attention_bias"] = true; }, {"'attention_bias' is true but mlp_bias is false"});
  refused([](json& j) { j["rms_norm_eps"] = "small"; }, {"'rms_norm_eps' must be a number"});
  refused([](json& j) { j["attention_dropout"] = 1.0; }, {"'attention_dropout' must be in"});
  refused([](json& j) { j["vocab_size"] = 67.5; }, {"'vocab_size' must be an integer"});
}

TEST(HfLlamaImport, BadWeightsAreRefusedNamingModelSafetensorsAndTheTensor) {
  ScratchDir scratch;
  int n = 0;
  auto refused = [&](const std::function<void(std::map<std::string, Tensor>&)>& edit,
                     const std::vector<std::string>& parts, const char* fixture = "hf_llama_gqa") {
    const std::string dir = scratch.copy_of(fixture, "w" + std::to_string(n++));
    edit_weights(dir, edit);
    expect_refused([&] { train::load_hf_llama(dir); }, dir + "/model.safetensors: ", parts);
  };
  const std::string k = "model.layers.1.self_attn.k_proj.weight";
  // k_proj with a row per query head: the file is not the GQA model config.json describes.
  refused([&](auto& t) { t[k] = zeros({32, 32}); }, {"tensor '" + k + "' is (32, 32) but config.json makes it (16, 32)"});
  refused([](auto& t) { t.erase("lm_head.weight"); }, {"missing tensor 'lm_head.weight'"});
  refused([](auto& t) { t.erase("model.layers.0.mlp.up_proj.weight"); }, {"missing tensor 'model.layers.0.mlp.up_proj.weight'"});
  refused([](auto& t) { t["model.layers.0.self_attn.q_proj.bias"] = zeros({32}); },
          {"unexpected tensor 'model.layers.0.self_attn.q_proj.bias'"});
  refused([](auto& t) { t["model.layers.x.input_layernorm.weight"] = zeros({32}); },
          {"unexpected tensor 'model.layers.x.input_layernorm.weight'"});
  refused([](auto& t) {
    Tensor w = t["model.layers.0.mlp.gate_proj.weight"].clone();
    w.set({3, 5}, std::numeric_limits<double>::infinity());
    t["model.layers.0.mlp.gate_proj.weight"] = w;
  }, {"tensor 'model.layers.0.mlp.gate_proj.weight' holds a non-finite value (inf)"});
  refused([](auto& t) {
    std::map<std::string, Tensor> extra;
    for (const auto& [name, v] : t)
      if (name.rfind("model.layers.1.", 0) == 0) extra["model.layers.2." + name.substr(15)] = v;
    t.insert(extra.begin(), extra.end());
  }, {"holds 3 layers but config.json says num_hidden_layers 2"});
  // Tied, a head that is present must be the embedding.
  refused([](auto& t) {
    Tensor head = t["model.embed_tokens.weight"].clone();
    head.set({66, 31}, 7.0);
    t["lm_head.weight"] = head;
  }, {"'lm_head.weight' differs from 'model.embed_tokens.weight' (element 2143", "tie_word_embeddings is true"},
          "hf_llama_mqa_tied");
}

TEST(HfLlamaImport, OlderFilesRotaryBuffersAndATiedHeadAreAccepted) {
  ScratchDir scratch;
  const std::string dir = scratch.copy_of("hf_llama_mqa_tied", "old");
  edit_weights(dir, [](auto& t) {
    t["model.layers.0.self_attn.rotary_emb.inv_freq"] = ones({4});
    t["lm_head.weight"] = t["model.embed_tokens.weight"].clone();
  });
  train::ImportedGPT old = train::load_hf_llama(dir);
  train::ImportedGPT fresh = train::load_hf_llama(fixture_dir("hf_llama_mqa_tied"));
  expect_same_parameters(*old.model, *fresh.model);
}
