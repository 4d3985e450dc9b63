#include <minitrain/nn/gpt.h>

#include <minitrain/core/factory.h>
#include <minitrain/nn/init.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <unordered_set>

namespace minitrain::nn {

MLP::MLP(int64_t n_embd, bool bias, double dropout_p, Activation activation_, std::shared_ptr<Generator> dropout_gen,
         Generator* init_gen)
    : Module("MLP"), activation(activation_) {
  c_fc = register_module("c_fc", std::make_shared<Linear>(n_embd, 4 * n_embd, bias, init_gen));
  c_proj = register_module("c_proj", std::make_shared<Linear>(4 * n_embd, n_embd, bias, init_gen));
  drop = register_module("dropout", std::make_shared<Dropout>(dropout_p, std::move(dropout_gen)));
}

Tensor MLP::forward(const Tensor& x) {
  Tensor hidden = c_fc->forward(x);  // (..., 4C)
  switch (activation) {
    case Activation::Gelu: hidden = gelu(hidden); break;
    case Activation::GeluTanh: hidden = gelu(hidden, GeluApproximation::Tanh); break;
    case Activation::Relu: hidden = relu(hidden); break;
  }
  return run_forward_hooks({x}, drop->forward(c_proj->forward(hidden)));  // (..., C)
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
  GPT::expected_num_parameters(*this);  // throws when the sizes' products overflow
}

Block::Block(const GPTConfig& c, std::shared_ptr<Generator> dropout_gen, Generator* init_gen) : Module("Block") {
  ln_1 = register_module("ln_1", std::make_shared<LayerNorm>(c.n_embd, 1e-5, c.bias));
  AttentionOptions options;
  options.n_embd = c.n_embd;
  options.n_head = c.n_head;
  options.causal = true;  // a decoder-only language model: position t sees positions <= t
  options.dropout = c.dropout;
  options.scale = c.attention_scale;
  options.bias = c.bias;
  attn = register_module("attn", std::make_shared<MultiHeadAttention>(options, dropout_gen, init_gen));
  attn->path = c.attention_path;
  ln_2 = register_module("ln_2", std::make_shared<LayerNorm>(c.n_embd, 1e-5, c.bias));
  mlp = register_module("mlp", std::make_shared<MLP>(c.n_embd, c.bias, c.dropout, c.activation, dropout_gen, init_gen));
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
  ln_f = transformer->register_module("ln_f", std::make_shared<LayerNorm>(c.n_embd, 1e-5, c.bias));
  lm_head = register_module("lm_head", std::make_shared<Linear>(c.n_embd, c.vocab_size, false, &init_gen));
  // Weight tying: the LM head reads the token embedding's storage (one tensor, two names).
  lm_head->weight = lm_head->register_parameter("weight", wte->weight);

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
    }
  });
}

Tensor GPT::embed(const Tensor& idx, int64_t start) {
  if (!idx.defined() || idx.dtype() != DType::Int64 || idx.dim() != 2)
    throw std::invalid_argument("GPT: token ids must be an int64 tensor (B, T), got " +
                                (idx.defined() ? std::string(dtype_name(idx.dtype())) + " " + shape_str(idx.shape())
                                               : std::string("an undefined tensor")));
  const int64_t T = idx.size(1);
  if (start + T > config_.block_size)
    throw std::invalid_argument("GPT: sequence of length " + std::to_string(start + T) + " exceeds block_size " +
                                std::to_string(config_.block_size));
  Tensor tok = wte->forward(idx);  // (B, T, C)
  Tensor pos;                      // (T, C), broadcast over the batch
  if (wpe) {
    pos = wpe->forward(arange(static_cast<double>(start), static_cast<double>(start + T), 1.0, DType::Int64));
  } else {
    pos = sinusoidal_positions(T, config_.n_embd, start, tok.dtype());
  }
  return drop->forward(add(tok, pos));
}

Tensor GPT::head(const Tensor& x) { return lm_head->forward(ln_f->forward(x)); }

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
  const int64_t C = c.n_embd, b = c.bias ? 1 : 0, CC = mul(C, C);
  const int64_t layer_norm = add(C, mul(b, C));
  const int64_t attn = add(mul(4, CC), mul(b, mul(4, C)));  // c_attn (C, 3C) and c_proj (C, C)
  const int64_t mlp = add(mul(8, CC), mul(b, mul(5, C)));   // c_fc (C, 4C) and c_proj (4C, C)
  const int64_t positions = c.positional == PositionalEncoding::Learned ? mul(c.block_size, C) : 0;
  const int64_t per_layer = add(add(mul(2, layer_norm), attn), mlp);
  const int64_t total = add(add(add(mul(c.vocab_size, C), positions), mul(c.n_layer, per_layer)), layer_norm);
  if (overflow)
    throw std::invalid_argument("GPTConfig: the parameter count of n_layer " + std::to_string(c.n_layer) + ", n_embd " +
                                std::to_string(c.n_embd) + ", vocab_size " + std::to_string(c.vocab_size) +
                                ", block_size " + std::to_string(c.block_size) + " overflows int64");
  return total;
}

std::map<std::string, Shape> GPT::parameter_shapes(const GPTConfig& c) {
  const int64_t C = c.n_embd;
  std::map<std::string, Shape> shapes;
  auto linear = [&](const std::string& name, int64_t in, int64_t out, bool bias) {
    shapes[name + ".weight"] = {out, in};
    if (bias) shapes[name + ".bias"] = {out};
  };
  auto layer_norm = [&](const std::string& name) {
    shapes[name + ".weight"] = {C};
    if (c.bias) shapes[name + ".bias"] = {C};
  };
  shapes["transformer.wte.weight"] = {c.vocab_size, C};
  if (c.positional == PositionalEncoding::Learned) shapes["transformer.wpe.weight"] = {c.block_size, C};
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string block = "transformer.h." + std::to_string(i) + ".";
    layer_norm(block + "ln_1");
    linear(block + "attn.c_attn", C, 3 * C, c.bias);
    linear(block + "attn.c_proj", C, C, c.bias);
    layer_norm(block + "ln_2");
    linear(block + "mlp.c_fc", C, 4 * C, c.bias);
    linear(block + "mlp.c_proj", 4 * C, C, c.bias);
  }
  layer_norm("transformer.ln_f");
  shapes["lm_head.weight"] = {c.vocab_size, C};  // tied: the same tensor as transformer.wte.weight
  return shapes;
}

}  // namespace minitrain::nn
