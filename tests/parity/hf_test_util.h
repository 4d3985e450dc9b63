// Helpers of the Hugging Face directory tests (test_hf_gpt2.cpp, test_hf_llama.cpp): scratch copies of
// fixture directories, edits of their config.json and model.safetensors, bitwise comparison, and the
// one-line-error expectation.
#pragma once

#include "parity.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/safetensors.h>
#include <minitrain/nn/gpt.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace minitrain::parity::hf {

namespace fs = std::filesystem;
using nlohmann::json;

inline std::string fixture_dir(const std::string& name) { return parity::fixture_path(name); }

// A fresh directory for one test, removed afterwards.
struct ScratchDir {
  fs::path dir;
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "minitrain_hf_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  // A copy of a fixture directory under `name`.
  std::string copy_of(const std::string& fixture, const std::string& name) const {
    const fs::path to = dir / name;
    fs::copy(fixture_dir(fixture), to, fs::copy_options::recursive);
    return to.string();
  }
};

inline json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

inline void edit_config(const std::string& model_dir, const std::function<void(json&)>& edit) {
  const std::string path = (fs::path(model_dir) / "config.json").string();
  json j = read_json(path);
  edit(j);
  std::ofstream(path) << j.dump(2);
}

inline void edit_weights(const std::string& model_dir, const std::function<void(std::map<std::string, Tensor>&)>& edit) {
  const std::string path = (fs::path(model_dir) / "model.safetensors").string();
  SafeTensors file = load_safetensors(path);
  edit(file.tensors);
  save_safetensors(path, file.tensors, file.metadata);
}

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const std::vector<float> x = a.to_vector<float>(), y = b.to_vector<float>();
  return std::equal(x.begin(), x.end(), y.begin(), [](float p, float q) { return std::memcmp(&p, &q, 4) == 0; });
}

// `fn` must throw std::invalid_argument: one line, starting with `file`, holding every piece of `parts`.
template <class F>
void expect_refused(F fn, const std::string& file, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "accepted, expected an error mentioning " << parts.front();
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(file, 0), 0u) << "does not start with " << file << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg;
  }
}

// The model's logits and HF's loss (labels = idx: next-token cross-entropy over positions 0..T-2).
inline std::pair<Tensor, Tensor> logits_and_loss(nn::GPT& model, const Tensor& idx) {
  model.eval();
  NoGradGuard no_grad;
  const int64_t T = idx.size(1);
  Tensor logits = model.forward(idx);
  Tensor loss = model.loss(idx.narrow(1, 0, T - 1).contiguous(), idx.narrow(1, 1, T - 1).contiguous());
  return {logits, loss};
}

}  // namespace minitrain::parity::hf
