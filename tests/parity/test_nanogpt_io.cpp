// Import and export in nanoGPT's layout, through the fixture files: tests/reference/fixtures/
// nanogpt_state_dict.safetensors is a state dict as a PyTorch user writes it (make_fixtures.py), holding the
// same weights as gpt_f32, whose logits torch computed. Import it, compare logits with torch's, export,
// and check that the exported file is the PyTorch file again (names, shapes, values, config) and that
// importing it gives the same model. Then the variants PyTorch files come in, and the refusals.
#include "parity.h"

#include <minitrain/core/safetensors.h>
#include <minitrain/train/nanogpt_io.h>

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <unistd.h>

using namespace minitrain;
using parity::Fixture;
namespace fs = std::filesystem;

namespace {

const std::string kStateDict = "nanogpt_state_dict.safetensors";

// A fresh directory for one test, removed afterwards.
struct ScratchDir {
  fs::path dir = fs::temp_directory_path() / ("minitrain_nanogpt_io_" + std::to_string(::getpid()));
  ScratchDir() { fs::create_directories(dir); }
  ~ScratchDir() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

bool same_values(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.to_vector<double>() == b.to_vector<double>();
}

// Expects `fn` to throw std::invalid_argument whose message contains every piece of `parts`.
template <class F>
void expect_rejected(F fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "accepted, expected an error mentioning " << parts.front();
  } catch (const std::invalid_argument& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(NanoGPTImport, PyTorchStateDictGivesTorchsLogits) {
  const Fixture torch_logits("gpt_f32.safetensors");
  train::ImportedGPT imported = train::import_nanogpt(parity::fixture_path(kStateDict));
  ASSERT_EQ(imported.model->dtype(), DType::Float32);
  EXPECT_EQ(imported.metadata.at("tokenizer").size(), 48u);
  parity::Report report("nanogpt import", parity::kFloat32Limit);
  NoGradGuard no_grad;
  report.check("nanogpt_state_dict", "logits", imported.model->forward(torch_logits.ids("idx")), torch_logits.at("logits"));
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

TEST(NanoGPTExport, RoundTripGivesThePyTorchFileBack) {
  const Fixture original("nanogpt_state_dict.safetensors");
  train::ImportedGPT imported = train::import_nanogpt(parity::fixture_path(kStateDict));
  const ScratchDir scratch;
  const std::string path = scratch.file("roundtrip.safetensors");
  train::export_nanogpt(path, *imported.model, {{"tokenizer", imported.metadata.at("tokenizer")}});

  const SafeTensors exported = load_safetensors(path);
  ASSERT_EQ(exported.tensors.size(), original.contents().tensors.size());
  for (const auto& [name, t] : original.contents().tensors) {
    auto it = exported.tensors.find(name);
    ASSERT_NE(it, exported.tensors.end()) << "export lacks '" << name << "'";
    EXPECT_TRUE(same_values(it->second, t)) << name;
  }
  EXPECT_EQ(nlohmann::json::parse(exported.metadata.at("config")), nlohmann::json::parse(original.meta("config")));
  EXPECT_EQ(exported.metadata.at("tokenizer"), original.meta("tokenizer"));
  EXPECT_EQ(exported.metadata.at("format"), "pt");

  // Importing the export gives the same logits, bit for bit.
  train::ImportedGPT again = train::import_nanogpt(path);
  const Fixture batch("gpt_f32.safetensors");
  NoGradGuard no_grad;
  EXPECT_TRUE(same_values(again.model->forward(batch.ids("idx")), imported.model->forward(batch.ids("idx"))));
  // The imported model samples.
  Generator gen(1);
  const std::vector<int64_t> out = again.model->generate({1, 2, 3}, 20, 0.8, 0, gen);
  EXPECT_EQ(out.size(), 23u);
}

TEST(NanoGPTImport, AcceptsTheVariantsPyTorchWrites) {
  const Fixture f("nanogpt_state_dict.safetensors");
  const nn::StateDict full = f.contents().tensors;
  const Fixture batch("gpt_f32.safetensors");
  NoGradGuard no_grad;
  const Tensor reference = train::gpt_from_nanogpt(full, f.meta("config"), 0, "full")->forward(batch.ids("idx"));

  nn::StateDict without_head = full;  // safetensors' save_model keeps one name of a shared tensor
  without_head.erase("lm_head.weight");
  EXPECT_TRUE(same_values(train::gpt_from_nanogpt(without_head, f.meta("config"), 0, "x")->forward(batch.ids("idx")), reference));
  nn::StateDict without_wte = full;
  without_wte.erase("transformer.wte.weight");
  EXPECT_TRUE(same_values(train::gpt_from_nanogpt(without_wte, f.meta("config"), 0, "x")->forward(batch.ids("idx")), reference));

  nn::StateDict with_masks = full;  // nanoGPT without flash attention saves its causal masks as "attn.bias"
  for (int layer = 0; layer < 2; ++layer)
    with_masks["transformer.h." + std::to_string(layer) + ".attn.bias"] = Tensor(full.at("transformer.wpe.weight")).reshape({1, 1, 16, 32});
  EXPECT_TRUE(same_values(train::gpt_from_nanogpt(with_masks, f.meta("config"), 0, "x")->forward(batch.ids("idx")), reference));

  // Without "config": the shapes give everything but n_head.
  EXPECT_TRUE(same_values(train::gpt_from_nanogpt(full, "", 4, "x")->forward(batch.ids("idx")), reference));
}

TEST(NanoGPTImport, RejectsWhatItCannotLoadNamingFileAndTensor) {
  const Fixture f("nanogpt_state_dict.safetensors");
  const nn::StateDict full = f.contents().tensors;
  const std::string config = f.meta("config");
  expect_rejected([&] { train::gpt_from_nanogpt(full, "", 0, "m.safetensors"); }, {"m.safetensors", "n_head"});

  nn::StateDict missing = full;
  missing.erase("transformer.h.1.mlp.c_fc.bias");
  expect_rejected([&] { train::gpt_from_nanogpt(missing, config, 0, "m.safetensors"); },
                  {"m.safetensors", "transformer.h.1.mlp.c_fc.bias"});

  nn::StateDict untied = full;
  untied["lm_head.weight"] = full.at("lm_head.weight").clone();
  untied["lm_head.weight"].set({0, 0}, 123.0);
  expect_rejected([&] { train::gpt_from_nanogpt(untied, config, 0, "m.safetensors"); }, {"m.safetensors", "lm_head.weight", "ties"});

  nn::StateDict reshaped = full;
  reshaped["transformer.ln_f.weight"] = full.at("transformer.ln_f.weight").narrow(0, 0, 16);
  expect_rejected([&] { train::gpt_from_nanogpt(reshaped, config, 0, "m.safetensors"); },
                  {"m.safetensors", "transformer.ln_f.weight"});

  expect_rejected([&] { train::gpt_from_nanogpt(full, R"({"block_size": 16})", 0, "m.safetensors"); },
                  {"m.safetensors", "vocab_size"});
}

TEST(NanoGPTExport, RefusesArchitecturesNanoGPTDoesNotHave) {
  const ScratchDir scratch;
  nn::GPTConfig c;
  c.block_size = 8, c.vocab_size = 5, c.n_layer = 1, c.n_head = 2, c.n_embd = 8;
  c.activation = nn::Activation::GeluTanh;
  nn::GPT tanh_gelu(c);
  expect_rejected([&] { train::export_nanogpt(scratch.file("no.safetensors"), tanh_gelu); }, {"GELU"});
  c.activation = nn::Activation::Gelu;
  c.positional = nn::PositionalEncoding::Sinusoidal;
  nn::GPT sinusoidal(c);
  expect_rejected([&] { train::export_nanogpt(scratch.file("no.safetensors"), sinusoidal); }, {"position embeddings"});
  c.positional = nn::PositionalEncoding::Learned;
  c.attention_scale = 0.25;
  nn::GPT scaled(c);
  expect_rejected([&] { train::export_nanogpt(scratch.file("no.safetensors"), scaled); }, {"scales attention"});
  c.attention_scale = std::nan("");
  // Today's decoder parts, one at a time: each has no place in nanoGPT's layout.
  const std::vector<std::pair<std::function<void(nn::GPTConfig&)>, const char*>> modern{
      {[](nn::GPTConfig& m) { m.norm = nn::NormType::RMSNorm; }, "LayerNorm"},
      {[](nn::GPTConfig& m) { m.gated_mlp = true; }, "ungated"},
      {[](nn::GPTConfig& m) { m.n_kv_head = 1; }, "grouped-query"},
      {[](nn::GPTConfig& m) { m.qk_norm = true; }, "QK-norm"},
      {[](nn::GPTConfig& m) { m.tie_embeddings = false; }, "ties"},
      {[](nn::GPTConfig& m) { m.logit_softcap = 30; }, "soft-cap"},
      {[](nn::GPTConfig& m) { m.positional = nn::PositionalEncoding::Rotary; }, "position embeddings"}};
  for (const auto& [change, word] : modern) {
    nn::GPTConfig m = c;
    change(m);
    nn::GPT model(m);
    expect_rejected([&] { train::export_nanogpt(scratch.file("no.safetensors"), model); }, {word});
  }
  EXPECT_FALSE(fs::exists(scratch.file("no.safetensors")));
}
