// Tampered checkpoints: every field of a checkpoint is checked before it is used. Each row of the table
// takes a valid checkpoint, changes one thing, and expects loading it the way `sample` and `train_gpt
// --resume` do to fail with one message naming what is wrong. Before this table, every row but the
// non-JSON ones was accepted: "n_layer": 1e30 converted with undefined behaviour, 1.7 loaded as 1, a
// config claiming n_embd 8192 allocated that model before the shapes were compared, "iter": "-100" resumed
// with a negative learning rate, an all-zero generator state returned 0 forever, "activation": "bogus"
// became ReLU, format "2", a missing or negative optimizer.steps, an lm_head differing from wte and NaN
// weights all loaded.
#include <minitrain/core/factory.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/gpt_config_io.h>

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <regex>
#include <string>
#include <unistd.h>
#include <vector>

using namespace minitrain;
using namespace minitrain::train;
namespace fs = std::filesystem;

namespace {

nn::GPTConfig tiny_config() {
  nn::GPTConfig c;
  c.block_size = 8, c.vocab_size = 5, c.n_layer = 2, c.n_head = 2, c.n_embd = 8;
  return c;
}

// The bytes of a valid checkpoint after one AdamW step, as parsed safetensors (to be tampered with).
SafeTensors valid_checkpoint(const fs::path& dir) {
  nn::GPT model(tiny_config());
  AdamW opt(model.named_parameters());
  model.loss(from_vector(std::vector<int64_t>{1, 2, 3, 4}, {1, 4}), from_vector(std::vector<int64_t>{2, 3, 4, 0}, {1, 4})).backward();
  opt.step();
  Generator gen(42);
  const std::string path = (dir / "valid.safetensors").string();
  save_checkpoint(path, 17, model, &opt, {{"data", &gen}},
                  {{"gpt_config", gpt_config_to_json(model.config())}, {"tokenizer", "abcde"}});
  return load_safetensors(path);
}

// What `sample` and `train_gpt --resume` do with a checkpoint, in their order: read and validate the
// file, parse the config, check it against the tensors, and only then build and restore the model.
void load_like_the_programs(const std::string& path) {
  const CheckpointContents c = load_checkpoint(path);
  const nn::GPTConfig config = gpt_config_from_json(c.metadata_value("gpt_config"));
  c.metadata_value("tokenizer");
  check_config_matches_tensors(config, c.model, c.path);
  nn::GPT model(config);
  AdamW opt(model.named_parameters());
  Generator data(0);
  restore_checkpoint(c, model, &opt, {{"data", &data}});
}

// `json` with the value of "key" replaced by `value` (JSON text).
std::string with_field(const std::string& json, const std::string& key, const std::string& value) {
  const std::regex field("\"" + key + "\":(\"[^\"]*\"|[^,}]*)");
  const std::string out = std::regex_replace(json, field, "\"" + key + "\":" + value);
  EXPECT_NE(out, json) << "no field " << key;
  return out;
}

using Tamper = std::function<void(SafeTensors&)>;

Tamper config_field(const std::string& key, const std::string& value) {
  return [=](SafeTensors& f) { f.metadata["gpt_config"] = with_field(f.metadata["gpt_config"], key, value); };
}
Tamper metadata(const std::string& key, const std::string& value) {
  return [=](SafeTensors& f) { f.metadata[key] = value; };
}
Tamper without(const std::string& key) {
  return [=](SafeTensors& f) { f.metadata.erase(key); };
}

struct Case {
  const char* name;
  Tamper tamper;
  const char* message;  // a piece of the expected message
};

const std::vector<Case>& cases() {
  static const std::vector<Case> table = {
      {"config n_embd larger than the tensors", config_field("n_embd", "8192"),
       "the config makes 'lm_head.weight' (5, 8192) but the file holds (5, 8)"},
      {"config n_layer larger than the tensors", config_field("n_layer", "4096"),
       "the config says n_layer 4096 but the tensors hold 2 layers"},
      {"config vocab_size 1e7 as an integer", config_field("vocab_size", "10000000"),
       "the config makes 'lm_head.weight' (10000000, 8) but the file holds (5, 8)"},
      {"config n_embd 2^40", config_field("n_embd", "1099511627776"), "'n_embd' must be in [1, 16777216]"},
      {"config n_layer 1e30", config_field("n_layer", "1e30"), "'n_layer' must be an integer, got 1e+30"},
      {"config n_layer 1.7", config_field("n_layer", "1.7"), "'n_layer' must be an integer, got 1.7"},
      {"config n_head as a string", config_field("n_head", "\"2\""), "'n_head' must be an integer, got \"2\""},
      {"config n_layer negative", config_field("n_layer", "-2"), "'n_layer' must be in [1, 16777216], got -2"},
      {"config dropout 1.5", config_field("dropout", "1.5"), "'dropout' must be in [0"},
      {"config bias as a number", config_field("bias", "1"), "'bias' must be true or false"},
      {"config seed negative", config_field("seed", "-1"), "'seed' must be a non-negative integer"},
      {"config activation unknown", config_field("activation", "\"bogus\""),
       "'activation' is 'bogus'; accepted: gelu, gelu_tanh, relu"},
      {"config positional unknown", config_field("positional", "\"spiral\""),
       "'positional' is 'spiral'; accepted: learned, sinusoidal, rotary, none"},
      {"config attention_scale a string", config_field("attention_scale", "\"big\""), "'attention_scale' must be a number"},
      {"config not JSON", metadata("gpt_config", "{n_layer: 2"), "GPT config: invalid JSON"},
      {"config missing", without("gpt_config"), "the checkpoint has no 'gpt_config' in its metadata"},
      {"tokenizer missing", without("tokenizer"), "the checkpoint has no 'tokenizer' in its metadata"},
      {"format 2", metadata("minitrain.format", "2"), "'minitrain.format' is '2'; this version reads format 1 only"},
      {"format missing", without("minitrain.format"), "not a minitrain checkpoint"},
      {"iter negative", metadata("iter", "-100"), "'iter' must be a non-negative integer, got '-100'"},
      {"iter with an exponent", metadata("iter", "1e3"), "'iter' must be a non-negative integer, got '1e3'"},
      {"iter beyond int64", metadata("iter", "99999999999999999999"), "'iter' must be a non-negative integer"},
      {"optimizer.steps missing", without("optimizer.steps"), "lacks 'optimizer.steps'"},
      {"optimizer.steps negative", metadata("optimizer.steps", "-3"), "'optimizer.steps' must be a non-negative integer"},
      {"generator state all zeros", metadata("rng.data", std::string(64, '0')),
       "generator state 'data' is all zeros"},
      {"generator state not hex", metadata("rng.data", std::string(64, 'g')), "is not 64 hex digits"},
      {"lm_head differs from wte",
       [](SafeTensors& f) {
         Tensor head = f.tensors.at("model.lm_head.weight").clone();
         head.set({0, 0}, 123.0);
         f.tensors["model.lm_head.weight"] = head;
       },
       "'lm_head.weight' and 'transformer.wte.weight' are one tied tensor in the model but differ"},
      {"NaN weight",
       [](SafeTensors& f) {
         Tensor w = f.tensors.at("model.transformer.h.1.mlp.c_fc.weight").clone();
         w.set({3, 2}, NAN);
         f.tensors["model.transformer.h.1.mlp.c_fc.weight"] = w;
       },
       "tensor 'model.transformer.h.1.mlp.c_fc.weight' holds a non-finite value (nan) at element 26"},
      {"infinite optimizer moment",
       [](SafeTensors& f) {
         for (auto& [name, t] : f.tensors)
           if (name.rfind("optim.", 0) == 0) {
             Tensor m = t.clone();
             m.set(std::vector<int64_t>(static_cast<std::size_t>(m.dim()), 0), INFINITY);
             t = m;
             return;
           }
       },
       "holds a non-finite value (inf) at element 0"},
      {"a tensor missing",
       [](SafeTensors& f) { f.tensors.erase("model.transformer.h.0.ln_2.weight"); },
       "missing tensor 'transformer.h.0.ln_2.weight'"},
      {"a layer renumbered",
       [](SafeTensors& f) {
         f.tensors["model.transformer.h.x.ln_2.weight"] = f.tensors.at("model.transformer.h.0.ln_2.weight");
       },
       "unexpected tensor 'transformer.h.x.ln_2.weight'"},
  };
  return table;
}

// One scratch directory and one valid checkpoint for the whole table.
fs::path scratch_dir() {
  const fs::path dir = fs::temp_directory_path() / ("minitrain_tamper_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}
const SafeTensors& valid() {
  static const SafeTensors file = valid_checkpoint(scratch_dir());
  return file;
}

class CheckpointTamper : public ::testing::TestWithParam<std::size_t> {
 protected:
  static void TearDownTestSuite() { fs::remove_all(scratch_dir()); }
};


TEST_P(CheckpointTamper, IsRefusedNamingWhatIsWrong) {
  const Case& c = cases()[GetParam()];
  SafeTensors file = valid();
  c.tamper(file);
  const std::string path = (scratch_dir() / ("case" + std::to_string(GetParam()) + ".safetensors")).string();
  save_safetensors(path, file.tensors, file.metadata);
  try {
    load_like_the_programs(path);
    ADD_FAILURE() << c.name << ": accepted";
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(c.message), std::string::npos) << c.name << "\n  got: " << what << "\n  expected: " << c.message;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, CheckpointTamper, ::testing::Range<std::size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           std::string name = cases()[info.param].name;
                           for (char& ch : name)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

// The untampered file loads: the table's failures come from the tampering, not from the harness.
TEST(CheckpointTamperHarness, UntamperedCheckpointLoads) {
  const std::string path = (scratch_dir() / "untampered.safetensors").string();
  save_safetensors(path, valid().tensors, valid().metadata);
  EXPECT_NO_THROW(load_like_the_programs(path));
  fs::remove_all(scratch_dir());
}

}  // namespace
