#include <minitrain/nn/gpt.h>

#include <minitrain/core/factory.h>
#include <minitrain/nn/init.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <unordered_set>

namespace minitrain::nn {

MLP::MLP(const MLPOptions& o, std::shared_ptr<Generator> dropout_gen, Generator* init_gen)
    : Module("MLP"), activation(o.activation), options_(o) {
  if (o.n_embd <= 0 || o.hidden < 0)
    throw std::invalid_argument("MLP: n_embd must be positive and hidden >= 0, got n_embd " + std::to_string(o.n_embd) +
                                ", hidden " + std::to_string(o.hidden));
  if (options_.hidden == 0) options_.hidden = 4 * o.n_embd;
  const int64_t H = options_.hidden;
  c_fc = register_module("c_fc", std::make_shared<Linear>(o.n_embd, o.gated ? 2 * H : H, o.bias, init_gen));
  c_proj = register_module("c_proj", std::make_shared<Linear>(H, o.n_embd, o.bias, init_gen));
  drop = register_module("dropout", std::make_shared<Dropout>(o.dropout, std::move(dropout_gen)));
}

MLP::MLP(int64_t n_embd, bool bias, double dropout_p, Activation activation_, std::shared_ptr<Generator> dropout_gen,
         Generator* init_gen)
    : MLP(MLPOptions{n_embd, 0, activation_, false, bias, dropout_p}, std::move(dropout_gen), init_gen) {}

Tensor activate(const Tensor& x, Activation activation) {
  switch (activation) {
    case Activation::Gelu: return gelu(x);
    case Activation::GeluTanh: return gelu(x, GeluApproximation::Tanh);
    case Activation::Relu: return relu(x);
    case Activation::ReluSquared: {
      const Tensor r = relu(x);
      return mul(r, r);
    }
    case Activation::Silu: return silu(x);
  }
  throw std::invalid_argument("activate: unknown activation");
}

Tensor MLP::forward(const Tensor& x) {
  Tensor hidden = c_fc->forward(x);  // (..., H), or (..., 2H) = [gate | up] when gated
  if (options_.gated) {
    const int64_t H = options_.hidden;
    hidden = mul(activate(hidden.narrow(-1, 0, H), activation), hidden.narrow(-1, H, H));
  } else {
    hidden = activate(hidden, activation);
  }
  return run_forward_hooks({x}, drop->forward(c_proj->forward(hidden)));  // (..., C)
}

int64_t GPTConfig::mlp_hidden_size() const {
  if (mlp_hidden > 0) return mlp_hidden;
  if (n_embd > std::numeric_limits<int64_t>::max() / 16)  // 8C + 65 below must not overflow
    throw std::invalid_argument("GPTConfig: the MLP width of n_embd " + std::to_string(n_embd) + " overflows int64");
  if (!gated_mlp) return 4 * n_embd;
  const int64_t two_thirds = (8 * n_embd + 2) / 3;  // ceil(8C / 3)
  return (two_thirds + 63) / 64 * 64;
}

GPTConfig llama_style(GPTConfig c) {
  c.norm = NormType::RMSNorm;
  c.norm_eps = 1e-5;
  c.positional = PositionalEncoding::Rotary;
  c.rope_theta = 10000.0;
  c.rope_layout = RotaryLayout::Halves;
  c.activation = Activation::Silu;
  c.gated_mlp = true;
  c.bias = false;
  c.tie_embeddings = false;
  return c;
}

void GPTConfig::validate() const {
  auto positive = [](int64_t v, const char* name) {
    if (v <= 0) throw std::invalid_argument(std::string("GPTConfig: ") + name + " must be positive, got " + std::to_string(v));
  };
  positive(block_size, "block_size");
  positive(vocab_size, "vocab_size");
  positive(n_layer, "n_layer");
  positive(n_head, "n_head");
  positive(n_embd, "n_embd");
  if (n_embd % n_head != 0)
    throw std::invalid_argument("GPTConfig: n_embd " + std::to_string(n_embd) + " is not divisible by n_head " +
                                std::to_string(n_head));
  if (!(dropout >= 0 && dropout < 1)) throw std::invalid_argument("GPTConfig: dropout must be in [0, 1), got " + std::to_string(dropout));
  if (!std::isnan(attention_scale) && !std::isfinite(attention_scale))
    throw std::invalid_argument("GPTConfig: attention_scale must be finite");
  if (n_kv_head < 0 || n_head % kv_heads() != 0)
    throw std::invalid_argument("GPTConfig: n_kv_head " + std::to_string(n_kv_head) + " must divide n_head " +
                                std::to_string(n_head) + " (0 means n_head)");
  if (positional == PositionalEncoding::Rotary && (n_embd / n_head) % 2 != 0)
    throw std::invalid_argument("GPTConfig: rotary positions need an even head size, n_embd / n_head is " +
                                std::to_string(n_embd / n_head));
  if (!(rope_theta > 0) || !std::isfinite(rope_theta))
    throw std::invalid_argument("GPTConfig: rope_theta must be finite and > 0, got " + std::to_string(rope_theta));
  if (!(norm_eps > 0) || !std::isfinite(norm_eps))
    throw std::invalid_argument("GPTConfig: norm_eps must be finite and > 0, got " + std::to_string(norm_eps));
  if (!(logit_softcap >= 0) || !std::isfinite(logit_softcap))
    throw std::invalid_argument("GPTConfig: logit_softcap must be finite and >= 0 (0 is off), got " +
                                std::to_string(logit_softcap));
  if (mlp_hidden < 0) throw std::invalid_argument("GPTConfig: mlp_hidden must be >= 0 (0 is the default), got " + std::to_string(mlp_hidden));
  GPT::expected_num_parameters(*this);  // throws when the sizes' products overflow
}

namespace {

std::shared_ptr<Normalization> make_norm(const GPTConfig& c) {
  if (c.norm == NormType::RMSNorm) return std::make_shared<RMSNorm>(c.n_embd, c.norm_eps);
  return std::make_shared<LayerNorm>(c.n_embd, c.norm_eps, c.bias);
}

}  // namespace

Block::Block(const GPTConfig& c, std::shared_ptr<Generator> dropout_gen, Generator* init_gen) : Module("Block") {
  ln_1 = register_module("ln_1", make_norm(c));
  AttentionOptions options;
  options.n_embd = c.n_embd;
  options.n_head = c.n_head;
  options.n_kv_head = c.n_kv_head;
  options.causal = true;  // a decoder-only language model: position t sees positions <= t
  options.dropout = c.dropout;
  options.scale = c.attention_scale;
  options.bias = c.bias;
  options.qk_norm = c.qk_norm;
  options.qk_norm_eps = c.norm_eps;
  options.rotary = c.positional == PositionalEncoding::Rotary;
  options.rotary_theta = c.rope_theta;
  options.rotary_layout = c.rope_layout;
  attn = register_module("attn", std::make_shared<MultiHeadAttention>(options, dropout_gen, init_gen));
  attn->path = c.attention_path;
  ln_2 = register_module("ln_2", make_norm(c));
  const MLPOptions mlp_options{c.n_embd, c.mlp_hidden_size(), c.activation, c.gated_mlp, c.bias, c.dropout};
  mlp = register_module("mlp", std::make_shared<MLP>(mlp_options, dropout_gen, init_gen));
}

std::vector<std::shared_ptr<Linear>> Block::residual_projections() const { return {attn->c_proj, mlp->c_proj}; }

Tensor Block::forward(const Tensor& x, KVCache* cache) {
  Tensor y = add(x, attn->forward(ln_1->forward(x), cache));
  return run_forward_hooks({x}, add(y, mlp->forward(ln_2->forward(y))));
}

Tensor sinusoidal_positions(int64_t positions, int64_t channels, int64_t start, DType dtype) {
  std::vector<double> table(static_cast<std::size_t>(positions * channels));
  for (int64_t t = 0; t < positions; ++t)
    for (int64_t c = 0; c < channels; ++c) {
      const double freq = std::pow(10000.0, -static_cast<double>(c - c % 2) / static_cast<double>(channels));
      const double angle = static_cast<double>(start + t) * freq;
      table[t * channels + c] = c % 2 == 0 ? std::sin(angle) : std::cos(angle);
    }
  return from_vector(table, {positions, channels}).to(dtype);
}

GPT::GPT(const GPTConfig& c) : Module("GPT"), config_(c) {
  c.validate();
  Generator init_gen(c.seed);
  dropout_gen_ = std::make_shared<Generator>(c.seed ^ 0x5eedd20b0u);
  transformer = register_module("transformer", std::make_shared<Module>("Transformer"));
  wte = transformer->register_module("wte", std::make_shared<Embedding>(c.vocab_size, c.n_embd, &init_gen));
  if (c.positional == PositionalEncoding::Learned)
    wpe = transformer->register_module("wpe", std::make_shared<Embedding>(c.block_size, c.n_embd, &init_gen));
  drop = transformer->register_module("drop", std::make_shared<Dropout>(c.dropout, dropout_gen_));
  h = transformer->register_module("h", std::make_shared<ModuleList<Block>>());
  for (int64_t i = 0; i < c.n_layer; ++i) h->push_back(std::make_shared<Block>(c, dropout_gen_, &init_gen));
  ln_f = transformer->register_module("ln_f", make_norm(c));
  if (c.tie_embeddings) {
    // Weight tying: the LM head reads the token embedding's storage (one tensor, two names) and has no
    // buffer of its own (147 MiB at GPT-2's size). The draws an untied head's default initialisation
    // makes (one per weight) are skipped, so a seed gives the weights it always gave.
    lm_head = register_module("lm_head", std::make_shared<Linear>(wte->weight));
    for (int64_t i = 0; i < c.vocab_size * c.n_embd; ++i) init_gen.next_u64();
  } else {
    lm_head = register_module("lm_head", std::make_shared<Linear>(c.n_embd, c.vocab_size, false, &init_gen));
  }

  // The layers above drew their own default initialisation from init_gen; GPT-2's scheme replaces it,
  // continuing the same stream (so a seed gives the weights it always gave).
  reset_parameters(init_gen);
}

void GPT::reset_parameters(Generator& gen) { init_gpt2_(*this, config_.n_layer, gen); }

void init_gpt2_(Module& model, int64_t n_layer, Generator& gen) {
  if (n_layer <= 0) throw std::invalid_argument("init_gpt2_: n_layer must be positive, got " + std::to_string(n_layer));
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(n_layer));
  std::unordered_set<const Module*> residual;
  model.apply([&](Module& m) {
    if (auto* block = dynamic_cast<ResidualBlock*>(&m))
      for (const auto& linear : block->residual_projections()) residual.insert(linear.get());
  });
  NoGradGuard no_grad;
  std::unordered_set<const void*> drawn;  // tied tensors: the first module holding one draws it
  auto first = [&](const Tensor& t) { return t.defined() && drawn.insert(t.impl()).second; };
  model.apply([&](Module& m) {
    if (auto* linear = dynamic_cast<Linear*>(&m)) {
      if (first(linear->weight)) normal_(linear->weight, 0.0, residual.count(linear) ? residual_std : 0.02, gen);
      if (first(linear->bias)) constant_(linear->bias, 0.0);
    } else if (auto* embedding = dynamic_cast<Embedding*>(&m)) {
      if (first(embedding->weight)) normal_(embedding->weight, 0.0, 0.02, gen);
    } else if (auto* norm = dynamic_cast<LayerNorm*>(&m)) {
      if (first(norm->weight)) norm->reset_parameters(gen);  // draws nothing
      first(norm->bias);
    } else if (auto* rms = dynamic_cast<RMSNorm*>(&m)) {
      if (first(rms->weight)) rms->reset_parameters(gen);  // gain 1, draws nothing
    }
  });
}

Tensor GPT::embed(const Tensor& idx, int64_t start) {
  if (!idx.defined() || idx.dtype() != DType::Int64 || idx.dim() != 2)
    throw std::invalid_argument("GPT: token ids must be an int64 tensor (B, T), got " +
                                (idx.defined() ? std::string(dtype_name(idx.dtype())) + " " + shape_str(idx.shape())
                                               : std::string("an undefined tensor")));
  const int64_t T = idx.size(1);
  if (wpe && start + T > config_.block_size)  // the learned table has block_size rows; the others have no end
    throw std::invalid_argument("GPT: sequence of length " + std::to_string(start + T) + " exceeds block_size " +
                                std::to_string(config_.block_size));
  Tensor tok = wte->forward(idx);  // (B, T, C)
  Tensor pos;                      // (T, C), broadcast over the batch
  switch (config_.positional) {
    case PositionalEncoding::Learned:
      pos = wpe->forward(arange(static_cast<double>(start), static_cast<double>(start + T), 1.0, DType::Int64));
      break;
    case PositionalEncoding::Sinusoidal: pos = sinusoidal_positions(T, config_.n_embd, start, tok.dtype()); break;
    case PositionalEncoding::Rotary:  // positions enter in attention, rotating q and k
    case PositionalEncoding::None: return drop->forward(tok);
  }
  return drop->forward(add(tok, pos));
}

Tensor GPT::head(const Tensor& x) {
  Tensor logits = lm_head->forward(ln_f->forward(x));
  const double cap = config_.logit_softcap;
  if (cap > 0) logits = mul(tanh(mul(logits, 1.0 / cap)), cap);  // smoothly bounded to (−cap, cap)
  return logits;
}

Tensor GPT::forward(const Tensor& idx) {
  Tensor x = embed(idx, 0);
  for (const auto& block : *h) x = block->forward(x);
  return run_forward_hooks({idx}, head(x));
}

Tensor GPT::loss(const Tensor& idx, const Tensor& targets) { return cross_entropy(forward(idx), targets); }

Tensor GPT::forward_cached(const Tensor& idx, std::vector<KVCache>& caches) {
  if (caches.size() != h->size()) caches.resize(h->size());
  Tensor x = embed(idx, caches[0].length());
  for (std::size_t i = 0; i < h->size(); ++i) x = (*h)[i]->forward(x, &caches[i]);
  return run_forward_hooks({idx}, head(x));
}

std::vector<std::shared_ptr<MultiHeadAttention>> GPT::attention_layers() const {
  std::vector<std::shared_ptr<MultiHeadAttention>> out;
  for (const auto& block : *h) out.push_back(block->attn);
  return out;
}

void GPT::set_attention_path(AttentionPath path) {
  config_.attention_path = path;
  for (const auto& block : *h) block->attn->path = path;
}

namespace {
int64_t sample_token(const Tensor& logits_row, double temperature, int64_t top_k, Generator& gen) {
  std::vector<double> logits = logits_row.to_vector<double>();
  const int64_t vocab = static_cast<int64_t>(logits.size());
  if (temperature <= 0) return std::max_element(logits.begin(), logits.end()) - logits.begin();
  const int64_t k = top_k <= 0 ? vocab : std::min(top_k, vocab);
  std::vector<double> sorted = logits;
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<double>());
  const double threshold = sorted[k - 1];
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> probs(logits.size());
  double total = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    probs[i] = logits[i] < threshold ? 0.0 : std::exp((logits[i] - mx) / temperature);
    total += probs[i];
  }
  double u = gen.uniform() * total;
  for (int64_t i = 0; i < vocab; ++i) {
    u -= probs[i];
    if (u < 0 && probs[i] > 0) return i;
  }
  for (int64_t i = vocab - 1; i >= 0; --i)  // rounding left u >= 0: take the last candidate
    if (probs[i] > 0) return i;
  return 0;
}
}  // namespace

std::vector<int64_t> GPT::generate(const std::vector<int64_t>& prompt, int64_t max_new_tokens, double temperature,
                                   int64_t top_k, Generator& gen) {
  return generate(prompt, max_new_tokens,
                  [&](const Tensor& logits) { return sample_token(logits, temperature, top_k, gen); });
}

std::vector<int64_t> GPT::generate(const std::vector<int64_t>& prompt, int64_t max_new_tokens, const Sampler& sample) {
  if (prompt.empty()) throw std::invalid_argument("GPT::generate: the prompt needs at least one token");
  // Restores the caller's train/eval mode on every exit, including an exception (a trainer that
  // catches it must not go on training with dropout silently off).
  struct ModeRestorer {
    Module& module;
    bool was_training;
    ~ModeRestorer() { module.train(was_training); }
  } restore_mode{*this, is_training()};
  eval();
  NoGradGuard no_grad;
  std::vector<int64_t> tokens = prompt;
  std::vector<KVCache> caches;
  auto prefill = [&]() {  // (re)builds the caches from the last block_size tokens
    for (auto& c : caches) c.clear();
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(tokens.size()), config_.block_size);
    std::vector<int64_t> context(tokens.end() - n, tokens.end());
    return forward_cached(from_vector(context, {1, n}), caches);
  };
  Tensor logits = prefill();
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    const int64_t T = logits.size(1);
    const int64_t next = sample(logits.narrow(1, T - 1, 1).reshape({config_.vocab_size}));
    if (next < 0 || next >= config_.vocab_size)
      throw std::invalid_argument("GPT::generate: the sampler returned token " + std::to_string(next) +
                                  ", outside [0, " + std::to_string(config_.vocab_size) + ")");
    tokens.push_back(next);
    if (step + 1 == max_new_tokens) break;
    if (caches[0].length() >= config_.block_size)
      logits = prefill();  // the window slides: positions restart, so the cache is rebuilt
    else
      logits = forward_cached(full({1, 1}, static_cast<double>(next), DType::Int64), caches);
  }
  return tokens;
}

int64_t GPT::expected_num_parameters(const GPTConfig& c) {
  // Checked arithmetic: a config read from a file may hold sizes whose products overflow int64.
  bool overflow = false;
  auto mul = [&](int64_t a, int64_t b) {
    int64_t r = 0;
    overflow |= __builtin_mul_overflow(a, b, &r);
    return r;
  };
  auto add = [&](int64_t a, int64_t b) {
    int64_t r = 0;
    overflow |= __builtin_add_overflow(a, b, &r);
    return r;
  };
  auto linear = [&](int64_t in, int64_t out) { return add(mul(in, out), c.bias ? out : 0); };
  const int64_t C = c.n_embd, hs = C / c.n_head, KV = mul(c.kv_heads(), hs), H = c.mlp_hidden_size();
  const int64_t norm = c.norm == NormType::LayerNorm && c.bias ? mul(2, C) : C;
  const int64_t attn = add(add(linear(C, add(C, mul(2, KV))), linear(C, C)), c.qk_norm ? mul(2, hs) : 0);
  const int64_t mlp = add(linear(C, c.gated_mlp ? mul(2, H) : H), linear(H, C));
  const int64_t positions = c.positional == PositionalEncoding::Learned ? mul(c.block_size, C) : 0;
  const int64_t per_layer = add(add(mul(2, norm), attn), mlp);
  const int64_t embeddings = mul(c.vocab_size, C), head = c.tie_embeddings ? 0 : embeddings;
  const int64_t total = add(add(add(add(embeddings, positions), mul(c.n_layer, per_layer)), norm), head);
  if (overflow)
    throw std::invalid_argument("GPTConfig: the parameter count of n_layer " + std::to_string(c.n_layer) + ", n_embd " +
                                std::to_string(c.n_embd) + ", vocab_size " + std::to_string(c.vocab_size) +
                                ", block_size " + std::to_string(c.block_size) + ", mlp_hidden " +
                                std::to_string(c.mlp_hidden) + " overflows int64");
  return total;
}

std::map<std::string, Shape> GPT::parameter_shapes(const GPTConfig& c) {
  const int64_t C = c.n_embd, hs = C / c.n_head, KV = c.kv_heads() * hs, H = c.mlp_hidden_size();
  std::map<std::string, Shape> shapes;
  auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    shapes[name + ".weight"] = {out, in};
    if (c.bias) shapes[name + ".bias"] = {out};
  };
  auto norm = [&](const std::string& name) {
    shapes[name + ".weight"] = {C};
    if (c.norm == NormType::LayerNorm && c.bias) shapes[name + ".bias"] = {C};
  };
  shapes["transformer.wte.weight"] = {c.vocab_size, C};
  if (c.positional == PositionalEncoding::Learned) shapes["transformer.wpe.weight"] = {c.block_size, C};
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string block = "transformer.h." + std::to_string(i) + ".";
    norm(block + "ln_1");
    linear(block + "attn.c_attn", C, C + 2 * KV);
    linear(block + "attn.c_proj", C, C);
    if (c.qk_norm) {
      shapes[block + "attn.q_norm.weight"] = {hs};
      shapes[block + "attn.k_norm.weight"] = {hs};
    }
    norm(block + "ln_2");
    linear(block + "mlp.c_fc", C, c.gated_mlp ? 2 * H : H);
    linear(block + "mlp.c_proj", H, C);
  }
  norm("transformer.ln_f");
  shapes["lm_head.weight"] = {c.vocab_size, C};  // tied: the same tensor as transformer.wte.weight
  return shapes;
}

}  // namespace minitrain::nn
