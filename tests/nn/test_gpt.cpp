// GPT: nanoGPT names and shapes, tied head, parameter count, GPT-2 init statistics, fused vs composed
// attention, the causal leak test on every path, KV cache against the full forward, generation.
#include "test_util.h"

#include <minitrain/nn/gpt.h>
#include <minitrain/nn/init.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <array>
#include <functional>
#include <map>

using namespace minitrain;
using namespace minitrain::nn_test;

namespace {

nn::GPTConfig config(int64_t block = 8, int64_t vocab = 11, int64_t layers = 2, int64_t heads = 2, int64_t embd = 8,
                     double dropout = 0.0) {
  nn::GPTConfig c;
  c.block_size = block;
  c.vocab_size = vocab;
  c.n_layer = layers;
  c.n_head = heads;
  c.n_embd = embd;
  c.dropout = dropout;
  return c;
}

// Every architecture variant (biases on and off, learned and sinusoidal positions) of each size
// {layers, heads, embd, vocab, block}: the closed forms must hold for all of them.
std::vector<nn::GPTConfig> architecture_variants(const std::vector<std::array<int64_t, 5>>& sizes) {
  std::vector<nn::GPTConfig> out;
  for (bool bias : {true, false})
    for (auto pos : {nn::PositionalEncoding::Learned, nn::PositionalEncoding::Sinusoidal})
      for (auto [layers, heads, embd, vocab, block] : sizes) {
        nn::GPTConfig c = config(block, vocab, layers, heads, embd);
        c.bias = bias;
        c.positional = pos;
        out.push_back(c);
      }
  return out;
}

std::map<std::string, Tensor> params_by_name(const nn::Module& m) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : m.named_parameters()) out[name] = t;
  return out;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}
double std_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// Logits (B, T, V) at positions [0, t] as a contiguous tensor.
Tensor prefix(const Tensor& logits, int64_t t) { return logits.narrow(1, 0, t + 1).contiguous(); }

int64_t argmax_last(const Tensor& logits) {  // (1, T, V) -> argmax over V at T-1
  std::vector<double> row = logits.narrow(1, logits.size(1) - 1, 1).contiguous().to_vector<double>();
  return std::max_element(row.begin(), row.end()) - row.begin();
}

}  // namespace

// ---- names, shapes, tying, counts -------------------------------------------------------------------

TEST(GPT, ParameterNamesAndShapesFollowNanoGPT) {
  const int64_t C = 8, V = 11, B = 8;
  nn::GPT model(config(B, V, 2, 2, C));
  std::vector<std::string> expected = {"transformer.wte.weight", "transformer.wpe.weight"};
  for (int l = 0; l < 2; ++l) {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    for (const char* s : {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                          "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                          "mlp.c_proj.weight", "mlp.c_proj.bias"})
      expected.push_back(p + s);
  }
  expected.push_back("transformer.ln_f.weight");
  expected.push_back("transformer.ln_f.bias");
  std::vector<std::string> names;
  for (auto& [name, t] : model.named_parameters()) names.push_back(name);
  EXPECT_EQ(names, expected);

  auto p = params_by_name(model);
  const std::map<std::string, Shape> shapes = {
      {"transformer.wte.weight", {V, C}},
      {"transformer.wpe.weight", {B, C}},
      {"transformer.h.0.ln_1.weight", {C}},
      {"transformer.h.0.ln_1.bias", {C}},
      {"transformer.h.0.attn.c_attn.weight", {3 * C, C}},
      {"transformer.h.0.attn.c_attn.bias", {3 * C}},
      {"transformer.h.0.attn.c_proj.weight", {C, C}},
      {"transformer.h.0.attn.c_proj.bias", {C}},
      {"transformer.h.0.mlp.c_fc.weight", {4 * C, C}},
      {"transformer.h.0.mlp.c_fc.bias", {4 * C}},
      {"transformer.h.0.mlp.c_proj.weight", {C, 4 * C}},
      {"transformer.h.1.mlp.c_proj.bias", {C}},
      {"transformer.ln_f.weight", {C}},
      {"transformer.ln_f.bias", {C}},
  };
  for (auto& [name, shape] : shapes) {
    ASSERT_TRUE(p.count(name)) << name;
    EXPECT_EQ(p[name].shape(), shape) << name;
  }
  // state_dict has exactly one more key: the tied head.
  nn::StateDict sd = model.state_dict();
  EXPECT_EQ(sd.size(), expected.size() + 1);
  ASSERT_TRUE(sd.count("lm_head.weight"));
  EXPECT_EQ(sd.at("lm_head.weight").shape(), (Shape{V, C}));
  EXPECT_EQ(p.count("lm_head.weight"), 0u);
}

TEST(GPT, NoBiasConfigHasNoBiasParameters) {
  nn::GPTConfig c = config();
  c.bias = false;
  nn::GPT model(c);
  for (auto& [name, t] : model.named_parameters()) EXPECT_EQ(name.find("bias"), std::string::npos) << name;
  EXPECT_TRUE(params_by_name(model).count("transformer.h.1.ln_2.weight"));
}

TEST(GPT, LmHeadSharesStorageWithTokenEmbedding) {
  nn::GPT model(config());
  nn::StateDict sd = model.state_dict();
  EXPECT_EQ(sd.at("lm_head.weight").impl(), sd.at("transformer.wte.weight").impl());
  EXPECT_EQ(model.lm_head->weight.impl(), model.wte->weight.impl());
  // Modifying one changes the other, both ways.
  model.wte->weight.set({2, 3}, 42.0);
  EXPECT_EQ(model.lm_head->weight.at({2, 3}), 42.0);
  model.lm_head->weight.set({0, 1}, -7.0);
  EXPECT_EQ(model.wte->weight.at({0, 1}), -7.0);
  // Listed once.
  int occurrences = 0;
  for (const Tensor& t : model.parameters()) occurrences += t.impl() == model.wte->weight.impl() ? 1 : 0;
  EXPECT_EQ(occurrences, 1);
  // Still tied after a dtype change and after loading a state dict.
  model.to(DType::Float64);
  EXPECT_EQ(model.lm_head->weight.impl(), model.wte->weight.impl());
  nn::GPT other(config());
  model.load_state_dict(other.state_dict());
  EXPECT_EQ(model.lm_head->weight.impl(), model.wte->weight.impl());
  EXPECT_EQ(model.lm_head->weight.at({0, 1}), other.wte->weight.at({0, 1}));
}

TEST(GPT, TiedWeightGetsBothGradients) {
  // d loss / d wte = (embedding path) + (head path). The sum is checked against finite differences in
  // test_layers_gradcheck (WholeGPTLossEveryParameter); here: the head path reaches the shared tensor.
  nn::GPT model(config());
  model.to(DType::Float64);
  const Tensor idx = random_ids({1, 6}, 11, 1), targets = random_ids({1, 6}, 11, 2);
  model.loss(idx, targets).backward();
  Tensor g = model.wte->weight.grad();
  ASSERT_TRUE(g.defined());
  // Row of a token that never appears in idx: only the head contributes, and it is nonzero.
  std::vector<bool> used(11, false);
  for (int64_t v : idx.to_vector<int64_t>()) used[static_cast<std::size_t>(v)] = true;
  int64_t unused = -1;
  for (int64_t v = 0; v < 11; ++v)
    if (!used[static_cast<std::size_t>(v)]) unused = v;
  ASSERT_GE(unused, 0);
  double row_norm = 0;
  for (int64_t c = 0; c < 8; ++c) row_norm += std::fabs(g.at({unused, c}));
  EXPECT_GT(row_norm, 0.0);
}

TEST(GPT, NumParametersMatchesClosedForm) {
  // Written out for block 8, vocab 11, 2 layers, C 8, bias:
  //   wte 11*8 = 88, wpe 8*8 = 64,
  //   per layer: ln_1 8+8, c_attn 24*8+24 = 216, attn.c_proj 64+8 = 72, ln_2 16, c_fc 32*8+32 = 288,
  //              mlp.c_proj 8*32+8 = 264  -> 872, two layers 1744,
  //   ln_f 16, lm_head tied (0).  Total 88 + 64 + 1744 + 16 = 1912.
  nn::GPT model(config());
  EXPECT_EQ(model.num_parameters(), 1912);
  EXPECT_EQ(nn::GPT::expected_num_parameters(config()), 1912);
  int64_t from_state = 0;
  for (auto& [name, t] : model.state_dict()) from_state += t.numel();
  EXPECT_EQ(from_state, 1912 + 88);  // the state dict lists the tied tensor twice

  for (const nn::GPTConfig& c : architecture_variants({{1, 1, 4, 5, 3}, {2, 2, 8, 11, 8}, {3, 4, 16, 7, 12}})) {
    const bool sinusoidal = c.positional == nn::PositionalEncoding::Sinusoidal;
    nn::GPT m(c);
    EXPECT_EQ(m.num_parameters(), nn::GPT::expected_num_parameters(c))
        << "bias " << c.bias << " sinusoidal " << sinusoidal << " L" << c.n_layer << " C" << c.n_embd;
    EXPECT_EQ(m.wpe == nullptr, sinusoidal);
  }
  // No bias, sinusoidal, written out: wte 88, per layer 8 + 192 + 64 + 8 + 256 + 256 = 784, ln_f 8.
  nn::GPTConfig c = config();
  c.bias = false;
  c.positional = nn::PositionalEncoding::Sinusoidal;
  EXPECT_EQ(nn::GPT(c).num_parameters(), 88 + 2 * 784 + 8);
}

// The closed-form shapes are what a checkpoint is checked against before its model is built: they must be
// exactly the model's state_dict (names and shapes) for every variant of the architecture.
TEST(GPT, ParameterShapesAreTheStateDictsShapes) {
  for (const nn::GPTConfig& c : architecture_variants({{1, 1, 4, 5, 3}, {3, 4, 16, 7, 12}, {12, 2, 8, 11, 8}})) {
    std::map<std::string, Shape> actual;
    for (const auto& [name, t] : nn::GPT(c).state_dict()) actual[name] = t.shape();
    EXPECT_EQ(nn::GPT::parameter_shapes(c), actual) << "bias " << c.bias << " L" << c.n_layer << " C" << c.n_embd;
  }
}

// Sizes read from a file can be large enough that the count overflows int64: refused, not wrapped.
TEST(GPT, ParameterCountOverflowIsRefused) {
  nn::GPTConfig c = config();
  c.n_embd = int64_t{1} << 24;
  c.n_head = 1;
  c.n_layer = int64_t{1} << 24;
  try {
    nn::GPT::expected_num_parameters(c);
    ADD_FAILURE() << "an overflowing parameter count was returned";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("overflows int64"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c.n_layer = 1;  // 12 * 2^48 + ... fits
  EXPECT_GT(nn::GPT::expected_num_parameters(c), int64_t{12} << 48);
}

TEST(GPT, InitialisationStatistics) {
  const int64_t L = 4;
  nn::GPT model(config(32, 50, L, 4, 64));
  auto p = params_by_name(model);
  const double residual = 0.02 / std::sqrt(2.0 * L);
  auto check_std = [&](const std::string& name, double want) {
    std::vector<double> v = p.at(name).to_vector<double>();
    EXPECT_NEAR(std_of(v), want, 0.05 * want) << name;
    EXPECT_NEAR(mean_of(v), 0.0, 4 * want / std::sqrt(static_cast<double>(v.size()))) << name;
  };
  check_std("transformer.h.0.attn.c_attn.weight", 0.02);
  check_std("transformer.h.3.attn.c_attn.weight", 0.02);
  check_std("transformer.h.0.mlp.c_fc.weight", 0.02);
  check_std("transformer.wte.weight", 0.02);
  check_std("transformer.wpe.weight", 0.02);
  check_std("transformer.h.0.attn.c_proj.weight", residual);
  check_std("transformer.h.2.mlp.c_proj.weight", residual);
  for (auto& [name, t] : p) {
    const std::vector<double> v = t.to_vector<double>();
    const bool is_ln = name.find("ln_") != std::string::npos;
    if (is_ln && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
      for (double x : v) ASSERT_EQ(x, 1.0) << name;
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      for (double x : v) ASSERT_EQ(x, 0.0) << name;
    }
  }
  // Same seed, same weights; different seed, different weights.
  nn::GPT same(config(32, 50, L, 4, 64));
  EXPECT_TRUE(bit_identical(same.wte->weight, model.wte->weight));
  nn::GPTConfig other = config(32, 50, L, 4, 64);
  other.seed = 7;
  EXPECT_FALSE(bit_identical(nn::GPT(other).wte->weight, model.wte->weight));
}

// GPT-2's scheme goes by module type and role, not by name: a LayerNorm called `norm` keeps unit gain, a
// Linear called `xc_proj` (which ends in "c_proj.weight" as a string) is an ordinary layer, and the layer
// a ResidualBlock names is scaled down whatever it is called.
namespace {
struct CustomBlock : nn::Module, nn::ResidualBlock {
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> xc_proj, out;
  CustomBlock() : Module("CustomBlock") {
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(256));
    xc_proj = register_module("xc_proj", std::make_shared<nn::Linear>(256, 256));
    out = register_module("out", std::make_shared<nn::Linear>(256, 256));
  }
  std::vector<std::shared_ptr<nn::Linear>> residual_projections() const override { return {out}; }
};
}  // namespace

TEST(GPTInit, GoesByModuleTypeAndRoleNotByName) {
  CustomBlock block;
  nn::constant_(block.norm->weight, 0.5);  // away from the values init must restore
  nn::constant_(block.norm->bias, 0.5);
  Generator gen(3);
  const int64_t L = 8;
  nn::init_gpt2_(block, L, gen);
  for (double x : block.norm->weight.to_vector<double>()) ASSERT_EQ(x, 1.0);
  for (double x : block.norm->bias.to_vector<double>()) ASSERT_EQ(x, 0.0);
  for (double x : block.xc_proj->bias.to_vector<double>()) ASSERT_EQ(x, 0.0);
  EXPECT_NEAR(std_of(block.xc_proj->weight.to_vector<double>()), 0.02, 0.001);
  EXPECT_NEAR(std_of(block.out->weight.to_vector<double>()), 0.02 / std::sqrt(2.0 * L), 0.0005);
}

TEST(GPTInit, ResetParametersRedrawsInPlaceAndKeepsTheHeadTied) {
  nn::GPT model(config(16, 20, 2, 2, 32));
  const Tensor wte_before = model.wte->weight.clone();
  Tensor handle = model.transformer->named_parameters().front().second;  // wte.weight
  for (auto& [name, p] : model.named_parameters()) nn::constant_(p, 3.0);
  Generator gen(model.config().seed + 1);
  model.reset_parameters(gen);
  EXPECT_EQ(handle.impl(), model.wte->weight.impl());
  EXPECT_EQ(model.lm_head->weight.impl(), model.wte->weight.impl());
  auto p = params_by_name(model);
  for (double x : p.at("transformer.h.1.ln_2.weight").to_vector<double>()) ASSERT_EQ(x, 1.0);
  for (double x : p.at("transformer.h.1.mlp.c_fc.bias").to_vector<double>()) ASSERT_EQ(x, 0.0);
  EXPECT_NEAR(std_of(p.at("transformer.wte.weight").to_vector<double>()), 0.02, 0.004);
  EXPECT_FALSE(bit_identical(wte_before, model.wte->weight));  // a new draw
}

// ---- fused vs composed --------------------------------------------------------------------------------

namespace {
struct RunResult {
  Tensor logits;
  std::map<std::string, std::vector<double>> grads;
};

RunResult run_path(nn::GPT& model, nn::AttentionPath path, const Tensor& idx, const Generator::State& state) {
  model.set_attention_path(path);
  model.zero_grad();
  model.dropout_generator().set_state(state);
  Tensor logits = model.forward(idx);
  Generator g(5);
  Tensor R = randn(logits.shape(), g, logits.dtype());
  sum(mul(logits, R)).backward();
  RunResult r;
  r.logits = logits.detach();
  for (auto& [name, t] : model.named_parameters()) r.grads[name] = t.grad().to_vector<double>();
  return r;
}

void expect_paths_agree(DType dtype, double dropout, double tol) {
  nn::GPT model(config(12, 13, 2, 4, 16, dropout));
  model.to(dtype);
  model.train();
  perturb_parameters(model, 3, 0.1);
  const Tensor idx = random_ids({2, 10}, 13, 4);
  const Generator::State state = model.dropout_generator().state();
  RunResult fused = run_path(model, nn::AttentionPath::Fused, idx, state);
  RunResult composed = run_path(model, nn::AttentionPath::Composed, idx, state);
  std::vector<double> a = fused.logits.to_vector<double>(), b = composed.logits.to_vector<double>();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol * (1 + std::fabs(b[i]))) << "logit " << i;
  ASSERT_EQ(fused.grads.size(), composed.grads.size());
  for (auto& [name, ga] : fused.grads) {
    const std::vector<double>& gb = composed.grads.at(name);
    ASSERT_EQ(ga.size(), gb.size()) << name;
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < ga.size(); ++i) {
      worst = std::max(worst, std::fabs(ga[i] - gb[i]) / (1 + std::fabs(gb[i])));
      scale = std::max(scale, std::fabs(gb[i]));
    }
    EXPECT_LE(worst, tol) << name;
    EXPECT_GT(scale, 0.0) << name << " has no gradient at all";
  }
  if (dropout > 0) {  // the comparison is not vacuous: another dropout state changes the logits
    Generator::State other = state;
    other[0] ^= 0x9e3779b97f4a7c15ULL;
    RunResult again = run_path(model, nn::AttentionPath::Fused, idx, other);
    EXPECT_GT(max_abs_diff(again.logits, fused.logits), 1e-4);
  }
}
}  // namespace

TEST(GPTAttentionPaths, FusedEqualsComposedFloat64) { expect_paths_agree(DType::Float64, 0.0, 1e-10); }
TEST(GPTAttentionPaths, FusedEqualsComposedFloat64WithDropout) { expect_paths_agree(DType::Float64, 0.2, 1e-10); }
TEST(GPTAttentionPaths, FusedEqualsComposedFloat32) { expect_paths_agree(DType::Float32, 0.0, 1e-5); }
TEST(GPTAttentionPaths, FusedEqualsComposedFloat32WithDropout) { expect_paths_agree(DType::Float32, 0.2, 1e-5); }

// ---- causal leak --------------------------------------------------------------------------------------

namespace {
enum class Entry { Forward, CachedPrefill };

Tensor logits_for(nn::GPT& model, const Tensor& idx, bool dropout_on, const Generator::State& state, Entry entry) {
  if (dropout_on) {
    model.train();
    model.dropout_generator().set_state(state);
  } else {
    model.eval();
  }
  NoGradGuard no_grad;
  if (entry == Entry::Forward) return model.forward(idx);
  std::vector<nn::KVCache> caches;
  return model.forward_cached(idx, caches);
}
}  // namespace

TEST(GPTCausality, FutureTokensNeverChangePastLogitsOnAnyPath) {
  const int64_t T = 12, V = 13;
  nn::GPT model(config(T, V, 2, 2, 8, 0.2));
  perturb_parameters(model, 30, 0.2);  // a model with real mixing between positions
  const Tensor base = random_ids({2, T}, V, 31);
  const Generator::State state = model.dropout_generator().state();
  int cases = 0;
  for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed})
    for (bool dropout_on : {false, true})
      for (Entry entry : {Entry::Forward, Entry::CachedPrefill}) {
        model.set_attention_path(path);
        const Tensor ref = logits_for(model, base, dropout_on, state, entry);
        for (int64_t t : std::vector<int64_t>{0, 3, 6, T - 2}) {
          Tensor changed = base.clone();
          for (int64_t b = 0; b < 2; ++b)
            for (int64_t j = t + 1; j < T; ++j) {
              int64_t& v = changed.data<int64_t>()[b * T + j];
              v = (v + 1 + (j * 7 + b) % (V - 1)) % V;  // always a different token
            }
          const Tensor got = logits_for(model, changed, dropout_on, state, entry);
          const std::string where = std::string(path == nn::AttentionPath::Fused ? "fused" : "composed") +
                                    (dropout_on ? " dropout" : " eval") +
                                    (entry == Entry::Forward ? " forward" : " cached prefill") + " t=" + std::to_string(t);
          EXPECT_TRUE(bit_identical(prefix(got, t), prefix(ref, t))) << where;
          // The change is visible right after t (the edit really happened).
          EXPECT_GT(max_abs_diff(got.narrow(1, t + 1, 1), ref.narrow(1, t + 1, 1)), 0.0) << where;
          ++cases;
        }
        // Information does flow forward: changing only token 0 changes the last position's logits, so
        // a leak (the mirror image) would be visible too.
        Tensor first = base.clone();
        int64_t* f = first.data<int64_t>();
        f[0] = (f[0] + 1) % V;
        f[T] = (f[T] + 1) % V;
        EXPECT_GT(max_abs_diff(logits_for(model, first, dropout_on, state, entry).narrow(1, T - 1, 1),
                               ref.narrow(1, T - 1, 1)),
                  1e-6);
      }
  EXPECT_EQ(cases, 2 * 2 * 2 * 4);
}

// ---- KV cache ----------------------------------------------------------------------------------------

namespace {
void expect_cache_matches(DType dtype, nn::AttentionPath path, double tol, int64_t chunk) {
  const int64_t T = 12, V = 13;
  nn::GPT model(config(T, V, 2, 2, 8));
  model.to(dtype);
  perturb_parameters(model, 40, 0.2);
  model.set_attention_path(path);
  model.eval();
  NoGradGuard no_grad;
  const Tensor idx = random_ids({2, T}, V, 41);
  const Tensor full = model.forward(idx);
  std::vector<nn::KVCache> caches;
  std::vector<Tensor> pieces;
  const int64_t prompt = 5;
  auto take = [&](int64_t start, int64_t len) { return idx.narrow(1, start, len); };
  pieces.push_back(model.forward_cached(take(0, prompt), caches));
  for (int64_t t = prompt; t < T; t += chunk) {
    const int64_t len = std::min(chunk, T - t);
    pieces.push_back(model.forward_cached(take(t, len), caches));
    EXPECT_EQ(caches[0].length(), t + len);
  }
  ASSERT_EQ(caches.size(), 2u);
  const Tensor cached = cat(pieces, 1);
  ASSERT_EQ(cached.shape(), full.shape());
  EXPECT_LE(max_abs_diff(cached, full), tol) << "chunk " << chunk;
  // A cache that went past block_size is refused.
  EXPECT_THROW(model.forward_cached(take(0, 1), caches), std::invalid_argument);
}
}  // namespace

TEST(GPTKVCache, MatchesFullForwardFloat64) {
  for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed})
    for (int64_t chunk : {1, 3}) expect_cache_matches(DType::Float64, path, 1e-10, chunk);
}

TEST(GPTKVCache, SinusoidalPositionsNoBias) {
  // The cached path must offset sinusoidal positions by the cache length too.
  const int64_t T = 10, V = 9;
  nn::GPTConfig c = config(T, V, 2, 2, 8);
  c.positional = nn::PositionalEncoding::Sinusoidal;
  c.bias = false;
  for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed}) {
    c.attention_path = path;
    nn::GPT model(c);
    model.to(DType::Float64);
    perturb_parameters(model, 42, 0.2);
    model.eval();
    NoGradGuard no_grad;
    const Tensor idx = random_ids({1, T}, V, 43);
    const Tensor full = model.forward(idx);
    std::vector<nn::KVCache> caches;
    std::vector<Tensor> pieces;
    pieces.push_back(model.forward_cached(idx.narrow(1, 0, 4), caches));
    for (int64_t t = 4; t < T; ++t) pieces.push_back(model.forward_cached(idx.narrow(1, t, 1), caches));
    EXPECT_LE(max_abs_diff(cat(pieces, 1), full), 1e-10);
  }
}

TEST(GPTKVCache, MatchesFullForwardFloat32) {
  for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed})
    for (int64_t chunk : {1, 3}) expect_cache_matches(DType::Float32, path, 1e-5, chunk);
}

// ---- generation --------------------------------------------------------------------------------------

namespace {
// Greedy decoding without a cache, nanoGPT style: crop the context to block_size, take the argmax.
std::vector<int64_t> greedy_reference(nn::GPT& model, std::vector<int64_t> tokens, int64_t n) {
  model.eval();
  NoGradGuard no_grad;
  const int64_t block = model.config().block_size;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = std::min<int64_t>(static_cast<int64_t>(tokens.size()), block);
    std::vector<int64_t> ctx(tokens.end() - len, tokens.end());
    tokens.push_back(argmax_last(model.forward(from_vector(ctx, {1, len}))));
  }
  return tokens;
}
}  // namespace

TEST(GPTGenerate, TemperatureZeroIsGreedyArgmax) {
  nn::GPT model(config(8, 11, 2, 2, 8));
  model.to(DType::Float64);
  perturb_parameters(model, 50, 0.3);  // clear winners, no near-ties between cached and uncached logits
  const std::vector<int64_t> prompt = {1, 4, 2};
  Generator g1(1), g2(2);
  const auto a = model.generate(prompt, 4, 0.0, 0, g1);
  const auto b = model.generate(prompt, 4, 0.0, 0, g2);
  EXPECT_EQ(a, b);  // no randomness involved
  ASSERT_EQ(a.size(), prompt.size() + 4);
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), a.begin()));
  EXPECT_EQ(a, greedy_reference(model, prompt, 4));
}

TEST(GPTGenerate, LongerThanBlockSizeCropsContext) {
  nn::GPT model(config(8, 11, 2, 2, 8));
  model.to(DType::Float64);
  perturb_parameters(model, 51, 0.3);
  const std::vector<int64_t> prompt = {3, 1, 4, 1, 5};
  Generator g0(0);
  const auto greedy = model.generate(prompt, 20, 0.0, 0, g0);
  EXPECT_EQ(greedy.size(), prompt.size() + 20);
  EXPECT_EQ(greedy, greedy_reference(model, prompt, 20));  // same as recomputing the cropped context
  // A prompt already longer than block_size.
  std::vector<int64_t> long_prompt;
  for (int i = 0; i < 13; ++i) long_prompt.push_back(i % 11);
  const auto from_long = model.generate(long_prompt, 5, 0.0, 0, g0);
  EXPECT_EQ(from_long, greedy_reference(model, long_prompt, 5));
  // Sampling past block_size gives valid ids.
  Generator g(3);
  const auto sampled = model.generate(prompt, 25, 1.0, 0, g);
  ASSERT_EQ(sampled.size(), prompt.size() + 25);
  for (int64_t t : sampled) {
    EXPECT_GE(t, 0);
    EXPECT_LT(t, 11);
  }
}

TEST(GPTGenerate, TopKLargerThanVocabIsClamped) {
  nn::GPT model(config(8, 11, 2, 2, 8));
  perturb_parameters(model, 52, 0.1);
  const std::vector<int64_t> prompt = {0, 5};
  Generator g1(9), g2(9), g3(9);
  const auto big = model.generate(prompt, 12, 1.0, 1000, g1);
  const auto vocab = model.generate(prompt, 12, 1.0, 11, g2);
  const auto all = model.generate(prompt, 12, 1.0, 0, g3);
  EXPECT_EQ(big, vocab);
  EXPECT_EQ(big, all);
  // Sampling at temperature 1 is random: another seed gives another sequence.
  Generator g4(10);
  EXPECT_NE(model.generate(prompt, 12, 1.0, 1000, g4), big);
  // top_k = 1 keeps only the best token: greedy.
  Generator g5(11);
  EXPECT_EQ(model.generate(prompt, 6, 1.0, 1, g5), model.generate(prompt, 6, 0.0, 0, g5));
}

TEST(GPTGenerate, RestoresTrainingModeAndIgnoresDropout) {
  nn::GPT model(config(8, 11, 2, 2, 8, 0.5));
  perturb_parameters(model, 53, 0.2);
  model.train();
  Generator g(1);
  const auto a = model.generate({1, 2}, 6, 0.0, 0, g);
  EXPECT_TRUE(model.is_training());
  EXPECT_TRUE(model.h->operator[](1)->attn->is_training());  // grandchildren too
  const auto b = model.generate({1, 2}, 6, 0.0, 0, g);
  EXPECT_EQ(a, b);  // dropout 0.5 configured, but generation runs in eval mode
  model.eval();
  model.generate({1, 2}, 3, 0.0, 0, g);
  EXPECT_FALSE(model.is_training());
  EXPECT_FALSE(model.h->operator[](0)->mlp->drop->is_training());
  EXPECT_THROW(model.generate({}, 3, 0.0, 0, g), std::invalid_argument);
}

TEST(GPTGenerate, RestoresTrainingModeEvenWhenItThrows) {
  // generate() documents "Restores the previous train/eval mode". A prompt id outside the vocabulary
  // makes the prefill throw; the model must not be left in eval mode (a trainer that catches the error
  // would otherwise keep training with dropout silently off).
  nn::GPT model(config(8, 11, 1, 1, 4, 0.1));
  model.train();
  Generator g(1);
  EXPECT_THROW(model.generate({1, 99}, 3, 1.0, 0, g), std::invalid_argument);
  EXPECT_TRUE(model.is_training()) << "generate() threw and left the model in eval mode";
  EXPECT_TRUE(model.drop->is_training());
}

// Looked at while generation runs, from inside its loop (the sampler): after generate returns, its KV
// caches and logits are gone and any graph they held with them, so counting nodes then proves nothing.
// 10 tokens with block_size 4 go through the prefill, the cached steps and the sliding window.
// Mutation killed: generate without its NoGradGuard (the old check after the call still passed).
TEST(GPTGenerate, RecordsNoGraph) {
  nn::GPT model(config(4, 11, 1, 1, 4));
  model.train();  // as a training loop that samples between steps would call it
  const int64_t nodes = live_autograd_nodes();
  int64_t steps = 0, most_nodes = 0;
  bool grad_mode_seen = false, graph_on_logits = false;
  const auto out = model.generate({1}, 10, [&](const Tensor& logits) {
    ++steps;
    grad_mode_seen = grad_mode_seen || grad_mode_enabled();
    graph_on_logits = graph_on_logits || logits.requires_grad();
    most_nodes = std::max(most_nodes, live_autograd_nodes() - nodes);
    return steps % 11;  // any valid id
  });
  EXPECT_EQ(out.size(), 11u);
  EXPECT_EQ(steps, 10);
  EXPECT_FALSE(grad_mode_seen) << "generation ran with grad mode on";
  EXPECT_FALSE(graph_on_logits) << "the logits carried a graph";
  EXPECT_EQ(most_nodes, 0) << "nodes were alive during generation";
  EXPECT_EQ(live_autograd_nodes(), nodes);
  for (const Tensor& p : model.parameters()) EXPECT_FALSE(p.grad().defined());
  EXPECT_TRUE(grad_mode_enabled());
  EXPECT_TRUE(model.is_training());
}

TEST(GPTGenerate, RejectsATokenOutsideTheVocabularyFromTheSampler) {
  nn::GPT model(config(4, 11, 1, 1, 4));
  model.train();
  try {
    model.generate({1}, 3, [](const Tensor& logits) { return logits.numel(); });  // one past the last id
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("sampler returned token 11, outside [0, 11)"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(model.is_training());
}

// ---- config validation --------------------------------------------------------------------------------

TEST(GPTConfig, ValidateNamesTheBadField) {
  auto message = [](nn::GPTConfig c) -> std::string {
    try {
      c.validate();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(message(config()), "");
  nn::GPTConfig c = config(8, 11, 2, 4, 10);  // 10 % 4 != 0
  std::string m = message(c);
  EXPECT_NE(m.find("n_embd"), std::string::npos) << m;
  EXPECT_NE(m.find("n_head"), std::string::npos) << m;
  EXPECT_THROW(nn::GPT{c}, std::invalid_argument);
  const std::vector<std::pair<std::string, std::function<void(nn::GPTConfig&)>>> bad = {
      {"block_size", [](auto& b) { b.block_size = -1; }}, {"vocab_size", [](auto& b) { b.vocab_size = -3; }},
      {"n_layer", [](auto& b) { b.n_layer = -2; }},       {"n_head", [](auto& b) { b.n_head = -2; }},
      {"n_embd", [](auto& b) { b.n_embd = -8; }},         {"block_size", [](auto& b) { b.block_size = 0; }},
      {"dropout", [](auto& b) { b.dropout = -0.1; }},     {"dropout", [](auto& b) { b.dropout = 1.0; }},
  };
  for (auto& [field, edit] : bad) {
    nn::GPTConfig b = config();
    edit(b);
    const std::string msg = message(b);
    EXPECT_NE(msg.find(field), std::string::npos) << field << ": '" << msg << "'";
    EXPECT_THROW(nn::GPT{b}, std::invalid_argument) << field;
  }
}

TEST(GPT, SequenceLongerThanBlockSizeIsRejected) {
  nn::GPT model(config(8, 11, 1, 1, 4));
  EXPECT_THROW(model.forward(random_ids({1, 9}, 11, 1)), std::invalid_argument);
  EXPECT_NO_THROW(model.forward(random_ids({1, 8}, 11, 1)));
}
