// A GPT-2 style decoder: token + position embeddings, pre-LN blocks, final LayerNorm, tied LM head.
// Parameter names and shapes follow nanoGPT, so state dicts move between the two.
#pragma once

#include <minitrain/nn/attention.h>
#include <minitrain/nn/containers.h>
#include <minitrain/nn/layers.h>
#include <minitrain/nn/rotary.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace minitrain::nn {

enum class Activation { Gelu, GeluTanh, Relu, ReluSquared, Silu };
enum class PositionalEncoding { Learned, Sinusoidal, Rotary, None };
enum class NormType { LayerNorm, RMSNorm };

struct MLPOptions {
  int64_t n_embd = 0;
  int64_t hidden = 0;  // 0: 4 · n_embd
  Activation activation = Activation::Gelu;
  // Gated (GLU): c_fc projects to [gate | up] (2 · hidden) and the block computes act(gate) ⊙ up, so
  // Activation::Silu with gated is SwiGLU (Llama), Gelu with gated GEGLU.
  bool gated = false;
  bool bias = true;
  double dropout = 0.0;
};

// Two linear maps with an activation between: C -> hidden -> C, then dropout. Gated, c_fc holds the gate
// and up projections side by side (one GEMM): hidden = act(x W_gateᵀ) ⊙ (x W_upᵀ).
class MLP : public Module {
 public:
  MLP(const MLPOptions& options, std::shared_ptr<Generator> dropout_gen = nullptr, Generator* init_gen = nullptr);
  MLP(int64_t n_embd, bool bias, double dropout, Activation activation = Activation::Gelu,
      std::shared_ptr<Generator> dropout_gen = nullptr, Generator* init_gen = nullptr);
  Tensor forward(const Tensor& x);  // (..., C) -> (..., C)
  Tensor operator()(const Tensor& x) { return forward(x); }
  std::shared_ptr<Linear> c_fc, c_proj;
  std::shared_ptr<Dropout> drop;
  Activation activation;
  const MLPOptions& options() const { return options_; }

 private:
  MLPOptions options_;
};

// The activation by itself (elementwise): gelu, gelu tanh, relu, relu², silu.
Tensor activate(const Tensor& x, Activation activation);

struct GPTConfig {
  int64_t block_size = 64;
  int64_t vocab_size = 65;
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_embd = 128;
  double dropout = 0.0;
  bool bias = true;  // in every Linear and LayerNorm (RMSNorm has none)
  Activation activation = Activation::Gelu;
  PositionalEncoding positional = PositionalEncoding::Learned;
  double attention_scale = std::numeric_limits<double>::quiet_NaN();  // NaN: 1/sqrt(head size)
  AttentionPath attention_path = AttentionPath::Fused;
  uint64_t seed = 1337;  // initial weights and dropout masks
  // Today's decoders (defaults: nanoGPT's architecture, parameter names unchanged).
  NormType norm = NormType::LayerNorm;
  double norm_eps = 1e-5;
  bool gated_mlp = false;     // with activation Silu: SwiGLU
  int64_t mlp_hidden = 0;     // 0: mlp_hidden_size()'s default
  int64_t n_kv_head = 0;      // grouped-query attention; 0 means n_head
  bool qk_norm = false;       // RMSNorm on each head of q and k (then attention_scale is a free choice)
  double rope_theta = 10000.0;                       // with PositionalEncoding::Rotary
  RotaryLayout rope_layout = RotaryLayout::Halves;   // HF's rotate_half; Interleaved as Meta's checkpoints
  bool tie_embeddings = true;  // lm_head.weight is transformer.wte.weight
  double logit_softcap = 0.0;  // > 0: logits = cap · tanh(logits / cap) (Gemma 2, modded-nanogpt); 0: off

  // 4 · n_embd; gated, 8/3 · n_embd rounded up to a multiple of 64 (the same parameter count as 4 · n_embd
  // ungated, Llama's rule with a smaller multiple for small models); mlp_hidden when set.
  int64_t mlp_hidden_size() const;
  int64_t kv_heads() const { return n_kv_head == 0 ? n_head : n_kv_head; }
  void validate() const;  // throws std::invalid_argument naming the bad field
};

// A Llama-style decoder of the given sizes (block_size, vocab_size, n_layer, n_head, n_embd, n_kv_head, seed
// and dropout are kept): RMSNorm (eps 1e-5), rotary positions (θ 10000, halves layout), SwiGLU MLP, no
// biases, untied LM head. QK-norm, logit soft-capping and n_kv_head stay the caller's choice.
GPTConfig llama_style(GPTConfig sizes);

// A module that adds the output of some of its Linear layers to the residual stream says which: GPT-2's
// initialisation scales those layers down with depth (init_gpt2_). The role is declared by the module
// that builds the residual connection, not guessed from the layer's name.
class ResidualBlock {
 public:
  virtual ~ResidualBlock() = default;
  virtual std::vector<std::shared_ptr<Linear>> residual_projections() const = 0;
};

// GPT-2's initialisation (as nanoGPT's _init_weights), applied by module type and role over
// model.apply(): every Linear and Embedding weight N(0, 0.02); the Linear layers a ResidualBlock names
// N(0, 0.02 / sqrt(2 n_layer)), so the residual stream's variance does not grow with depth; Linear biases
// 0; LayerNorms reset to weight 1, bias 0, RMSNorm gains to 1, whatever they are called. A tensor held by two modules (tied
// weights) is drawn once, by the first. Draws follow named_parameters() order. Other modules' own
// parameters keep their values.
void init_gpt2_(Module& model, int64_t n_layer, Generator& gen);

// Pre-norm residual block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); ln_* are LayerNorm or RMSNorm.
class Block : public Module, public ResidualBlock {
 public:
  Block(const GPTConfig& config, std::shared_ptr<Generator> dropout_gen, Generator* init_gen);
  Tensor forward(const Tensor& x, KVCache* cache = nullptr);  // (B, T, C) -> (B, T, C)
  Tensor operator()(const Tensor& x, KVCache* cache = nullptr) { return forward(x, cache); }
  // attn.c_proj and mlp.c_proj: the two layers whose outputs forward() adds to x.
  std::vector<std::shared_ptr<Linear>> residual_projections() const override;
  std::shared_ptr<Normalization> ln_1, ln_2;
  std::shared_ptr<MultiHeadAttention> attn;
  std::shared_ptr<MLP> mlp;
};

class GPT : public Module {
 public:
  explicit GPT(const GPTConfig& config);  // initialised by init_gpt2_ from config.seed
  using Module::reset_parameters;
  void reset_parameters(Generator& gen) override;  // init_gpt2_(*this, n_layer, gen)

  // idx: (B, T) token ids, T <= block_size -> logits (B, T, vocab_size). With rotary, sinusoidal or no
  // position embedding there is no table to run out of: positions past block_size (a longer prompt, or
  // forward_cached beyond it) are computed the same way, but the model never saw them in training.
  Tensor forward(const Tensor& idx);
  Tensor operator()(const Tensor& idx) { return forward(idx); }
  // Mean next-token cross-entropy of forward(idx) against targets (B, T).
  Tensor loss(const Tensor& idx, const Tensor& targets);
  // Incremental forward: idx holds positions caches[0].length() ... onwards; fills the caches.
  Tensor forward_cached(const Tensor& idx, std::vector<KVCache>& caches);

  // Samples max_new_tokens after `prompt` with the KV cache, in eval mode and without a graph.
  // temperature 0 is greedy; top_k <= 0 means the whole vocabulary (larger values are clamped);
  // the context is cropped to block_size. Restores the previous train/eval mode.
  std::vector<int64_t> generate(const std::vector<int64_t>& prompt, int64_t max_new_tokens, double temperature,
                                int64_t top_k, Generator& gen);
  // The same loop with the caller's choice of each next token: `sample` gets the last position's
  // logits (vocab_size) and returns a token id in [0, vocab_size). It runs inside generation (eval
  // mode, no graph), so it also sees what generation does.
  using Sampler = std::function<int64_t(const Tensor& logits)>;
  std::vector<int64_t> generate(const std::vector<int64_t>& prompt, int64_t max_new_tokens, const Sampler& sample);

  void set_attention_path(AttentionPath path);
  std::vector<std::shared_ptr<MultiHeadAttention>> attention_layers() const;  // h.0.attn, h.1.attn, ...
  const GPTConfig& config() const { return config_; }
  Generator& dropout_generator() { return *dropout_gen_; }
  // The closed-form parameter count (tied LM head counted once); throws std::invalid_argument when it
  // overflows int64.
  static int64_t expected_num_parameters(const GPTConfig& config);
  // Every tensor of state_dict() by name with its shape (lm_head.weight included), in closed form: what a
  // file must hold for this config, known before anything is allocated. Call it after
  // expected_num_parameters has accepted the config (it lists 12 * n_layer + 5 entries or so).
  static std::map<std::string, Shape> parameter_shapes(const GPTConfig& config);

  std::shared_ptr<Module> transformer;
  std::shared_ptr<Embedding> wte, wpe;  // wpe is null with sinusoidal positions
  std::shared_ptr<Dropout> drop;
  std::shared_ptr<ModuleList<Block>> h;
  std::shared_ptr<Normalization> ln_f;
  std::shared_ptr<Linear> lm_head;  // weight is wte's weight (one storage) unless tie_embeddings is off

 private:
  Tensor embed(const Tensor& idx, int64_t start_position);  // (B, T) -> (B, T, C)
  Tensor head(const Tensor& x);                              // (B, T, C) -> logits
  GPTConfig config_;
  std::shared_ptr<Generator> dropout_gen_;
};

// Sinusoidal position table (T, C): sin at even, cos at odd channels, 10000^(-2i/C) frequencies.
Tensor sinusoidal_positions(int64_t positions, int64_t channels, int64_t start, DType dtype);

}  // namespace minitrain::nn
