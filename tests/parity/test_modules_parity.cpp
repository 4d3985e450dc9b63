// The nn modules against PyTorch (nanoGPT's classes, tests/reference/fixtures_modules.py): the weights are
// loaded by name with load_state_dict, so the parameter names are checked too. Attention and the Block run
// both attention paths (fused kernel and composed ops); each must match torch on its own.
#include "parity.h"

#include <minitrain/core/factory.h>
#include <minitrain/nn/gpt.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>

using namespace minitrain;
using parity::Fixture;

namespace {

struct Built {
  std::shared_ptr<nn::Module> module;
  std::function<Tensor(const Tensor& x, const Tensor& ids)> forward;
};

// The minitrain module for fixture entry `name` with the constructor arguments torch used.
Built build(const std::string& name, const nlohmann::json& c, nn::AttentionPath path) {
  auto is = [&](const char* kind) { return name.rfind(kind, 0) == 0; };
  if (is("linear")) {
    auto m = std::make_shared<nn::Linear>(c["in_features"].get<int64_t>(), c["out_features"].get<int64_t>(), c["bias"].get<bool>());
    return {m, [m](const Tensor& x, const Tensor&) { return m->forward(x); }};
  }
  if (is("layer_norm")) {
    auto m = std::make_shared<nn::LayerNorm>(c["dim"].get<int64_t>(), 1e-5, c["bias"].get<bool>());
    return {m, [m](const Tensor& x, const Tensor&) { return m->forward(x); }};
  }
  if (is("embedding")) {
    auto m = std::make_shared<nn::Embedding>(c["num_embeddings"].get<int64_t>(), c["embedding_dim"].get<int64_t>());
    return {m, [m](const Tensor&, const Tensor& ids) { return m->forward(ids); }};
  }
  if (is("attention")) {
    nn::AttentionOptions o;
    o.n_embd = c["n_embd"].get<int64_t>();
    o.n_head = c["n_head"].get<int64_t>();
    o.bias = c["bias"].get<bool>();
    o.causal = true;  // nanoGPT's CausalSelfAttention
    auto m = std::make_shared<nn::MultiHeadAttention>(o);
    m->path = path;
    return {m, [m](const Tensor& x, const Tensor&) { return m->forward(x); }};
  }
  if (is("mlp")) {
    auto m = std::make_shared<nn::MLP>(c["n_embd"].get<int64_t>(), c["bias"].get<bool>(), 0.0, nn::Activation::Gelu);
    return {m, [m](const Tensor& x, const Tensor&) { return m->forward(x); }};
  }
  if (is("block")) {
    nn::GPTConfig g;
    g.n_embd = c["n_embd"].get<int64_t>();
    g.n_head = c["n_head"].get<int64_t>();
    g.bias = c["bias"].get<bool>();
    g.dropout = 0.0;
    g.attention_path = path;
    auto m = std::make_shared<nn::Block>(g, std::make_shared<Generator>(0), nullptr);
    return {m, [m](const Tensor& x, const Tensor&) { return m->forward(x); }};
  }
  throw std::runtime_error("no minitrain module for fixture entry '" + name + "'");
}

void check_module(const Fixture& f, const std::string& name, nn::AttentionPath path, parity::Report& report) {
  const bool has_attention = name.rfind("attention", 0) == 0 || name.rfind("block", 0) == 0;
  const std::string item = has_attention ? name + (path == nn::AttentionPath::Fused ? "[fused]" : "[composed]") : name;
  Built b = build(name, nlohmann::json::parse(f.meta(name + ".config")), path);
  b.module->to(f.dtype());
  nn::StateDict state;
  for (const std::string& p : f.names(name + ".param.")) state[p] = f.at(name + ".param." + p);
  b.module->load_state_dict(state);  // strict: the names must be nanoGPT's

  const bool takes_ids = f.has(name + ".ids");
  Tensor x = takes_ids ? Tensor() : f.at(name + ".x").clone().set_requires_grad(true);
  Tensor out = b.forward(x, takes_ids ? f.ids(name + ".ids") : Tensor());
  out.backward(f.at(name + ".grad_out"));
  report.check(item, "out", out, f.at(name + ".out"));
  if (!takes_ids) report.check(item, "grad.x", x.grad(), f.at(name + ".grad.x"));
  for (const auto& [pname, p] : b.module->named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << item << ": no gradient reached " << pname;
    report.check(item, "grad." + pname, p.grad(), f.at(name + ".grad.param." + pname));
  }
}

void check_all(const std::string& file) {
  const Fixture f(file);
  parity::Report report(f.name(), parity::limit_for(f.dtype()));
  int modules = 0;
  for (const auto& [key, value] : f.contents().metadata) {
    const std::string suffix = ".config";
    if (key.size() <= suffix.size() || key.compare(key.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string name = key.substr(0, key.size() - suffix.size());
    SCOPED_TRACE(name);
    ++modules;
    check_module(f, name, nn::AttentionPath::Fused, report);
    if (name.rfind("attention", 0) == 0 || name.rfind("block", 0) == 0)
      check_module(f, name, nn::AttentionPath::Composed, report);
  }
  EXPECT_GE(modules, 10) << "every module kind: Linear, LayerNorm, Embedding, attention, MLP, Block";
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

}  // namespace

TEST(ModulesParity, Float64MatchesTorch) { check_all("modules_f64.safetensors"); }
TEST(ModulesParity, Float32MatchesTorch) { check_all("modules_f32.safetensors"); }
