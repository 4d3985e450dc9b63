// Today's decoder parts in the GPT: RMSNorm, rotary positions, gated and ReLU² MLPs, grouped-query
// attention, QK-norm, logit soft-capping, untied head, the Llama-style preset. Each against the closed forms
// (parameter count, shapes), the composed attention path, the KV cache, and a float64 gradient check.
#include "test_util.h"

#include <minitrain/nn/gpt.h>
#include <minitrain/nn/gradcheck.h>

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

using namespace minitrain;
using namespace minitrain::nn_test;

namespace {

nn::GPTConfig sizes(int64_t block, int64_t vocab, int64_t layers, int64_t heads, int64_t embd) {
  nn::GPTConfig c;
  c.block_size = block;
  c.vocab_size = vocab;
  c.n_layer = layers;
  c.n_head = heads;
  c.n_embd = embd;
  return c;
}

// A Llama-style model with every option on: GQA (2 query heads per kv head), QK-norm, soft-capped logits.
nn::GPTConfig everything(RotaryLayout layout = RotaryLayout::Halves) {
  nn::GPTConfig c = nn::llama_style(sizes(12, 13, 2, 4, 16));
  c.n_kv_head = 2;
  c.qk_norm = true;
  c.logit_softcap = 3.0;
  c.rope_layout = layout;
  return c;
}

// The variants whose closed forms must hold: each part switched on alone, and together.
std::vector<std::pair<std::string, nn::GPTConfig>> variants() {
  std::vector<std::pair<std::string, nn::GPTConfig>> out;
  const nn::GPTConfig base = sizes(8, 11, 2, 4, 16);
  auto with = [&](const std::string& name, auto change) {
    nn::GPTConfig c = base;
    change(c);
    out.emplace_back(name, c);
  };
  with("rms_norm", [](nn::GPTConfig& c) { c.norm = nn::NormType::RMSNorm; });
  with("rms_norm_bias", [](nn::GPTConfig& c) { c.norm = nn::NormType::RMSNorm, c.bias = true; });
  with("rotary", [](nn::GPTConfig& c) { c.positional = nn::PositionalEncoding::Rotary; });
  with("no_positions", [](nn::GPTConfig& c) { c.positional = nn::PositionalEncoding::None; });
  with("swiglu", [](nn::GPTConfig& c) { c.activation = nn::Activation::Silu, c.gated_mlp = true; });
  with("relu_squared_hidden_24", [](nn::GPTConfig& c) { c.activation = nn::Activation::ReluSquared, c.mlp_hidden = 24; });
  with("gqa", [](nn::GPTConfig& c) { c.n_kv_head = 2; });
  with("mqa_no_bias", [](nn::GPTConfig& c) { c.n_kv_head = 1, c.bias = false; });
  with("qk_norm", [](nn::GPTConfig& c) { c.qk_norm = true; });
  with("untied", [](nn::GPTConfig& c) { c.tie_embeddings = false; });
  with("llama", [](nn::GPTConfig& c) { c = nn::llama_style(c); });
  out.emplace_back("everything", everything());
  return out;
}

}  // namespace

TEST(ModernGPT, ParameterCountAndShapesFollowTheConfig) {
  for (const auto& [name, c] : variants()) {
    nn::GPT model(c);
    EXPECT_EQ(model.num_parameters(), nn::GPT::expected_num_parameters(c)) << name;
    std::map<std::string, Shape> actual;
    for (const auto& [key, t] : model.state_dict()) actual[key] = t.shape();
    EXPECT_EQ(nn::GPT::parameter_shapes(c), actual) << name;
  }
}

TEST(ModernGPT, PartsHaveTheirNamesAndSizes) {
  const nn::GPTConfig c = everything();
  nn::GPT model(c);
  std::map<std::string, Tensor> p;
  for (auto& [name, t] : model.named_parameters()) p[name] = t;
  const int64_t C = 16, hs = 4, KV = 2 * hs;
  EXPECT_EQ(p.at("transformer.h.0.attn.c_attn.weight").shape(), (Shape{C + 2 * KV, C}));   // q | k | v
  EXPECT_EQ(p.at("transformer.h.0.attn.q_norm.weight").shape(), (Shape{hs}));
  EXPECT_EQ(p.at("transformer.h.0.mlp.c_fc.weight").shape(), (Shape{2 * 64, C}));  // [gate | up], 8/3·16 -> 64
  EXPECT_EQ(p.count("transformer.h.0.ln_1.bias"), 0u);                             // RMSNorm, no biases
  EXPECT_EQ(p.count("transformer.wpe.weight"), 0u);                                // rotary: no table
  EXPECT_NE(model.lm_head->weight.impl(), model.wte->weight.impl());               // untied head
  EXPECT_EQ(c.mlp_hidden_size(), 64);
  EXPECT_EQ(sizes(8, 11, 1, 1, 96).mlp_hidden_size(), 384);  // 4C ungated
  nn::GPTConfig gated = sizes(8, 11, 1, 1, 96);
  gated.gated_mlp = true;
  EXPECT_EQ(gated.mlp_hidden_size(), 256);  // 8/3 · 96 = 256 exactly
}

// The fused kernels (packed GQA attention) and the composed path agree in logits and every gradient.
TEST(ModernGPT, FusedEqualsComposed) {
  for (RotaryLayout layout : {RotaryLayout::Halves, RotaryLayout::Interleaved}) {
    nn::GPT model(everything(layout));
    model.to(DType::Float64);
    perturb_parameters(model, 3, 0.1);
    const Tensor idx = random_ids({2, 10}, 13, 4);
    std::map<std::string, std::vector<double>> grads[2];
    Tensor logits[2];
    for (int path = 0; path < 2; ++path) {
      model.set_attention_path(path == 0 ? nn::AttentionPath::Fused : nn::AttentionPath::Composed);
      model.zero_grad();
      logits[path] = model.forward(idx);
      Generator g(5);
      sum(mul(logits[path], randn(logits[path].shape(), g, DType::Float64))).backward();
      for (auto& [name, t] : model.named_parameters()) grads[path][name] = t.grad().to_vector<double>();
    }
    EXPECT_LE(max_abs_diff(logits[0], logits[1]), 1e-10);
    for (auto& [name, g] : grads[0]) {
      double worst = 0, scale = 0;
      for (std::size_t i = 0; i < g.size(); ++i) {
        worst = std::max(worst, std::fabs(g[i] - grads[1][name][i]));
        scale = std::max(scale, std::fabs(g[i]));
      }
      EXPECT_LE(worst, 1e-10) << name;
      EXPECT_GT(scale, 0.0) << name << " has no gradient";
    }
  }
}

// Positions continue across cached calls (rotary angles start at the cache length), the cache holds only
// the kv heads, and generation past block_size stays on the model's sliding window.
TEST(ModernGPT, KVCacheMatchesFullForward) {
  for (RotaryLayout layout : {RotaryLayout::Halves, RotaryLayout::Interleaved})
    for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed}) {
      nn::GPTConfig c = everything(layout);
      c.attention_path = path;
      nn::GPT model(c);
      model.to(DType::Float64);
      perturb_parameters(model, 40, 0.2);
      model.eval();
      NoGradGuard no_grad;
      const Tensor idx = random_ids({2, 12}, 13, 41);
      const Tensor full = model.forward(idx);
      std::vector<nn::KVCache> caches;
      std::vector<Tensor> pieces{model.forward_cached(idx.narrow(1, 0, 5), caches)};
      for (int64_t t = 5; t < 12; t += 2) pieces.push_back(model.forward_cached(idx.narrow(1, t, std::min<int64_t>(2, 12 - t)), caches));
      EXPECT_LE(max_abs_diff(cat(pieces, 1), full), 1e-10);
      EXPECT_EQ(caches[0].k.shape(), (Shape{2, 2, 12, 4}));  // (B, n_kv_head, T, hs)
    }
}

// Rotary positions have no table: a sequence longer than block_size runs (documented), where learned
// positions refuse it.
TEST(ModernGPT, RotaryRunsPastBlockSize) {
  nn::GPT model(everything());
  model.eval();
  NoGradGuard no_grad;
  EXPECT_EQ(model.forward(random_ids({1, 20}, 13, 5)).shape(), (Shape{1, 20, 13}));
  nn::GPT learned(sizes(12, 13, 1, 2, 8));
  EXPECT_THROW(learned.forward(random_ids({1, 20}, 13, 5)), std::invalid_argument);
}

TEST(ModernGPT, SoftcapBoundsTheLogits) {
  nn::GPTConfig c = everything();
  nn::GPT capped(c);
  c.logit_softcap = 0.0;
  nn::GPT raw(c);  // same seed: the same weights
  perturb_parameters(capped, 7, 2.0);
  perturb_parameters(raw, 7, 2.0);
  NoGradGuard no_grad;
  const Tensor idx = random_ids({2, 6}, 13, 8);
  const Tensor a = capped.forward(idx), b = raw.forward(idx);
  EXPECT_GT(max_abs_diff(b, zeros_like(b)), 3.0);  // the raw logits go past the cap ...
  const std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  for (std::size_t i = 0; i < av.size(); ++i) {
    EXPECT_LE(std::fabs(av[i]), 3.0);  // ... the capped ones never do (float32 tanh reaches 1 exactly)
    EXPECT_NEAR(av[i], 3.0 * std::tanh(bv[i] / 3.0), 1e-5) << i;     // and follow cap·tanh(x / cap)
  }
}

// Gated MLP: act(x W_gateᵀ) ⊙ (x W_upᵀ), gate rows first; ReLU²: relu(x)².
TEST(ModernGPT, MLPVariantsComputeTheirFormulas) {
  const Tensor x = rnd({3, 8}, 9);
  nn::MLP swiglu(nn::MLPOptions{8, 6, nn::Activation::Silu, /*gated=*/true, /*bias=*/false, 0.0});
  swiglu.to(DType::Float64);
  perturb_parameters(swiglu, 10, 0.3);
  const Tensor w = swiglu.c_fc->weight;  // (12, 8)
  const Tensor gate = matmul(x, w.narrow(0, 0, 6).transpose(0, 1)), up = matmul(x, w.narrow(0, 6, 6).transpose(0, 1));
  const Tensor expected = matmul(mul(mul(gate, sigmoid(gate)), up), swiglu.c_proj->weight.transpose(0, 1));
  EXPECT_LE(max_abs_diff(swiglu.forward(x), expected), 1e-12);

  nn::MLP relu2(nn::MLPOptions{8, 5, nn::Activation::ReluSquared, false, true, 0.0});
  relu2.to(DType::Float64);
  const Tensor h = relu(linear(x, relu2.c_fc->weight, relu2.c_fc->bias));
  EXPECT_LE(max_abs_diff(relu2.forward(x), linear(mul(h, h), relu2.c_proj->weight, relu2.c_proj->bias)), 1e-12);
}

// Every parameter of the whole model (QK-norm gains, GQA projections, SwiGLU, RMSNorm, untied head) against
// central differences in float64, on both attention paths.
TEST(ModernGPT, GradcheckFloat64) {
  for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed}) {
    nn::GPTConfig c = everything();
    c.n_layer = 1;
    c.block_size = 6;
    c.attention_path = path;
    nn::GPT model(c);
    perturb_parameters(model, 11, 0.3);
    const Tensor idx = random_ids({2, 5}, 13, 12);
    nn::ModuleGradcheckOptions o;
    o.max_entries = 24;
    const auto r = nn::gradcheck_module(model, [&](const std::vector<Tensor>& in) { return model.forward(in[0]); }, {idx}, o);
    EXPECT_TRUE(r.passed) << r.summary();
  }
}

TEST(ModernGPT, ConfigRefusesWhatCannotBeBuilt) {
  auto refused = [](auto change, const char* field) {
    nn::GPTConfig c = sizes(8, 11, 1, 4, 16);
    change(c);
    try {
      c.validate();
      ADD_FAILURE() << field << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  refused([](nn::GPTConfig& c) { c.n_kv_head = 3; }, "n_kv_head");
  refused([](nn::GPTConfig& c) { c.positional = nn::PositionalEncoding::Rotary, c.n_embd = 12; }, "even head size");
  refused([](nn::GPTConfig& c) { c.rope_theta = 0; }, "rope_theta");
  refused([](nn::GPTConfig& c) { c.norm_eps = -1; }, "norm_eps");
  refused([](nn::GPTConfig& c) { c.logit_softcap = -2; }, "logit_softcap");
  refused([](nn::GPTConfig& c) { c.mlp_hidden = -1; }, "mlp_hidden");
}

// A tied head allocates nothing of its own, and skips the draws an untied head's construction makes: the
// tied and untied models of one seed hold the same weights everywhere else (the stream a seed gives is
// the one it always gave, whatever the head).
TEST(ModernGPT, TyingKeepsTheSeedsWeights) {
  nn::GPTConfig c = sizes(8, 11, 2, 4, 16);
  nn::GPT tied(c);
  c.tie_embeddings = false;
  nn::GPT untied(c);
  std::map<std::string, Tensor> u;
  for (auto& [name, t] : untied.named_parameters()) u[name] = t;
  int64_t compared = 0;
  for (auto& [name, t] : tied.named_parameters()) {
    ASSERT_TRUE(u.count(name)) << name;
    EXPECT_TRUE(bit_identical(t, u.at(name))) << name;
    ++compared;
  }
  EXPECT_EQ(compared + 1, static_cast<int64_t>(u.size()));  // the untied head is the only extra tensor
  EXPECT_EQ(tied.lm_head->weight.impl(), tied.wte->weight.impl());
  EXPECT_THROW(nn::Linear(zeros({3}), Tensor()), std::invalid_argument);
  EXPECT_THROW(nn::Linear(zeros({3, 2}), zeros({2})), std::invalid_argument);
}

// Masks with grouped kv heads: both paths agree, and a padded key changes nothing (the mask follows the
// split of the query heads into groups).
TEST(ModernGPT, GroupedAttentionWithMasks) {
  nn::AttentionOptions o;
  o.n_embd = 16, o.n_head = 4, o.n_kv_head = 2, o.qk_norm = true, o.rotary = true;
  nn::MultiHeadAttention attn(o);
  attn.to(DType::Float64);
  perturb_parameters(attn, 21, 0.3);
  const Tensor q = rnd({2, 3, 16}, 22), kv = rnd({2, 5, 16}, 23);
  nn::AttentionMasks masks;
  masks.key_padding_mask = from_vector(std::vector<bool>{0, 0, 0, 1, 1, 0, 1, 0, 0, 0}, {2, 5});
  masks.attn_mask = from_vector(std::vector<bool>{1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1}, {1, 1, 3, 5});
  attn.path = nn::AttentionPath::Fused;
  const Tensor fused = attn.forward(q, kv, kv, masks);
  attn.path = nn::AttentionPath::Composed;
  const Tensor composed = attn.forward(q, kv, kv, masks);
  EXPECT_LE(max_abs_diff(fused, composed), 1e-12);
  // Changing the padded key (batch 0, position 3) leaves batch 0's output alone.
  Tensor other = kv.clone();
  for (int64_t c = 0; c < 16; ++c) other.set({0, 3, c}, 5.0);
  attn.path = nn::AttentionPath::Fused;
  EXPECT_LE(max_abs_diff(attn.forward(q, other, other, masks).narrow(0, 0, 1), fused.narrow(0, 0, 1)), 1e-12);
}

// The default MLP width is computed from n_embd: a config whose width overflows is refused, not wrapped.
TEST(ModernGPT, MlpWidthOverflowIsRefused) {
  nn::GPTConfig c = sizes(8, 11, 1, 1, int64_t{1} << 61);
  c.gated_mlp = true;
  EXPECT_THROW(c.mlp_hidden_size(), std::invalid_argument);
  EXPECT_THROW(c.validate(), std::invalid_argument);
}
