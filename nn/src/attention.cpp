#include <minitrain/nn/attention.h>

#include <minitrain/core/factory.h>
#include <minitrain/nn/init.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace minitrain::nn {

namespace {

// Whether `shape` broadcasts to `full` (aligned right, each dim 1 or equal) without changing `full`.
bool broadcasts_to(const Shape& shape, const Shape& full) {
  if (shape.size() > full.size()) return false;
  for (std::size_t i = 1; i <= shape.size(); ++i)
    if (shape[shape.size() - i] != 1 && shape[shape.size() - i] != full[full.size() - i]) return false;
  return true;
}

}  // namespace


Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                          double dropout_p, bool training, Generator* gen, AttentionStatistics* observed) {
  return composed_attention(q, k, v, Tensor(), scale, causal, dropout_p, training, gen, observed);
}

Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& attn_mask, double scale,
                          bool causal, double dropout_p, bool training, Generator* gen, AttentionStatistics* observed) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  // scores: (..., Tq, Tk) = q kᵀ · scale
  Tensor scores = mul(matmul(q, k.transpose(-2, -1)), scale);
  if (attn_mask.defined()) {  // bool: false keys get −inf; float: added (and differentiable)
    const Shape full = scores.shape();
    if (!broadcasts_to(attn_mask.shape(), full))
      throw std::invalid_argument("composed_attention: attn_mask of shape " + shape_str(attn_mask.shape()) +
                                  " does not broadcast to the scores " + shape_str(full));
    scores = attn_mask.dtype() == DType::Bool ? masked_fill(scores, logical_not(attn_mask), -kInf)
                                              : add(scores, attn_mask);
  }
  if (causal)  // future keys get −inf, so softmax gives them exactly 0
    scores = masked_fill(scores, causal_mask(q.size(-2), k.size(-2), q.dtype()), -kInf);
  // A row of −inf (every key masked) gives zeros and a zero gradient: softmax's rule, not NaN.
  Tensor weights = softmax(scores, -1);
  if (observed) *observed = attention_statistics_of(scores, weights);  // before dropout, as the kernel
  if (training && dropout_p > 0) {
    if (!gen) throw std::invalid_argument("composed_attention: dropout at training time needs a generator");
    weights = dropout(weights, dropout_p, true, *gen);
  }
  return matmul(weights, v);
}

MultiHeadAttention::MultiHeadAttention(const AttentionOptions& options, std::shared_ptr<Generator> dropout_gen,
                                       Generator* init_gen)
    : Module("MultiHeadAttention"), options_(options), dropout_gen_(std::move(dropout_gen)) {
  if (options.n_embd <= 0 || options.n_head <= 0 || options.n_embd % options.n_head != 0)
    throw std::invalid_argument("MultiHeadAttention: n_embd " + std::to_string(options.n_embd) +
                                " must be a positive multiple of n_head " + std::to_string(options.n_head));
  // Like Dropout: each standalone layer gets its own stream from the default generator, not one shared seed.
  if (!dropout_gen_) dropout_gen_ = std::make_shared<Generator>(default_generator().next_u64());
  scale_ = std::isnan(options.scale) ? 1.0 / std::sqrt(static_cast<double>(head_size())) : options.scale;
  c_attn = register_module("c_attn", std::make_shared<Linear>(options.n_embd, 3 * options.n_embd, options.bias, init_gen));
  c_proj = register_module("c_proj", std::make_shared<Linear>(options.n_embd, options.n_embd, options.bias, init_gen));
  resid_dropout = register_module("resid_dropout", std::make_shared<Dropout>(options.dropout, dropout_gen_));
}

Tensor MultiHeadAttention::split_heads(const Tensor& x) const {
  return x.reshape({x.size(0), x.size(1), options_.n_head, head_size()}).transpose(1, 2);
}

// The masks as one additive tensor (0 = take part, −inf = masked) broadcastable to (B, nh, T, S), or
// undefined when there is none. Bool masks become constants; float masks stay differentiable.
Tensor MultiHeadAttention::additive_mask(const AttentionMasks& masks, int64_t B, int64_t T, int64_t S,
                                         DType dtype) const {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  auto check_dtype = [&](const Tensor& m, const char* name) {
    if (m.dtype() != DType::Bool && m.dtype() != dtype)
      throw std::invalid_argument(std::string("MultiHeadAttention: ") + name + " must be bool or " + dtype_name(dtype) +
                                  " (the input's dtype), got " + dtype_name(m.dtype()));
  };
  Tensor total;
  if (masks.attn_mask.defined()) {
    const Tensor& m = masks.attn_mask;
    check_dtype(m, "attn_mask");
    const Shape full{B, options_.n_head, T, S};
    if (!broadcasts_to(m.shape(), full))
      throw std::invalid_argument("MultiHeadAttention: attn_mask of shape " + shape_str(m.shape()) +
                                  " does not broadcast to (B, n_head, T, S) = " + shape_str(full));
    total = m.dtype() == DType::Bool ? masked_fill(zeros(m.shape(), dtype), logical_not(m), -kInf) : m;
  }
  if (masks.key_padding_mask.defined()) {
    const Tensor& m = masks.key_padding_mask;
    check_dtype(m, "key_padding_mask");
    if (m.shape() != Shape{B, S})
      throw std::invalid_argument("MultiHeadAttention: key_padding_mask of shape " + shape_str(m.shape()) +
                                  " is not (B, S) = " + shape_str({B, S}));
    // (B, S) -> (B, 1, 1, S): the same keys are padding for every head and every query.
    Tensor padding = m.dtype() == DType::Bool ? masked_fill(zeros(m.shape(), dtype), m, -kInf) : m;
    padding = padding.reshape({B, 1, 1, S});
    total = total.defined() ? add(total, padding) : padding;
  }
  return total;
}

AttentionStatistics* MultiHeadAttention::observer() {
  if (!has_forward_hooks()) return nullptr;
  observed_ = AttentionStatisticsSum().mean();  // no rows yet
  return &observed_;
}

Tensor MultiHeadAttention::attend_and_project(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask) {
  const double p = options_.dropout;
  Generator* gen = dropout_gen_.get();
  Tensor y = path == AttentionPath::Fused
                 ? scaled_dot_product_attention(q, k, v, mask, scale_, options_.causal, p, is_training(), gen, observer())
                 : composed_attention(q, k, v, mask, scale_, options_.causal, p, is_training(), gen, observer());
  const int64_t B = q.size(0), T = q.size(2);
  y = y.transpose(1, 2).reshape({B, T, options_.n_embd});  // (B, nh, T, hs) -> (B, T, C): re-assemble the heads
  return resid_dropout->forward(c_proj->forward(y));
}

Tensor MultiHeadAttention::forward(const Tensor& x, KVCache* cache) {
  return run_forward_hooks({x}, self_attention(x, cache));
}

Tensor MultiHeadAttention::self_attention(const Tensor& x, KVCache* cache) {
  // x: (B, T, C)
  if (x.dim() != 3 || x.size(2) != options_.n_embd)
    throw std::invalid_argument("MultiHeadAttention: input " + shape_str(x.shape()) + " is not (B, T, " +
                                std::to_string(options_.n_embd) + ")");
  const int64_t C = options_.n_embd;
  Tensor qkv = c_attn->forward(x);  // (B, T, 3C)
  if (path == AttentionPath::Fused && !cache) {  // the training path: one kernel from qkv to (B, T, C)
    Tensor y = multi_head_attention(qkv, options_.n_head, scale_, options_.causal, options_.dropout, is_training(),
                                    dropout_gen_.get(), observer());
    return resid_dropout->forward(c_proj->forward(y));
  }
  Tensor q = split_heads(qkv.narrow(2, 0, C)), k = split_heads(qkv.narrow(2, C, C)), v = split_heads(qkv.narrow(2, 2 * C, C));
  if (cache) {
    if (cache->k.defined()) {
      k = cat({cache->k, k}, 2);
      v = cat({cache->v, v}, 2);
    }
    cache->k = k.detach();
    cache->v = v.detach();
  }
  return attend_and_project(q, k, v, Tensor());
}

Tensor MultiHeadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                   const AttentionMasks& masks) {
  // query: (B, T, C), key and value: (B, S, C)
  const int64_t C = options_.n_embd;
  const bool fits = query.dim() == 3 && key.dim() == 3 && value.dim() == 3 && query.size(2) == C &&
                    key.size(2) == C && value.size(2) == C && key.size(0) == query.size(0) &&
                    value.size(0) == query.size(0) && key.size(1) == value.size(1);
  if (!fits)
    throw std::invalid_argument("MultiHeadAttention: query " + shape_str(query.shape()) + ", key " +
                                shape_str(key.shape()) + ", value " + shape_str(value.shape()) +
                                " are not (B, T, C), (B, S, C), (B, S, C) with C = " + std::to_string(C));
  const int64_t B = query.size(0), T = query.size(1), S = key.size(1);
  const Tensor mask = additive_mask(masks, B, T, S, query.dtype());
  const bool self = query.impl() == key.impl() && key.impl() == value.impl();
  if (self && !mask.defined()) return run_forward_hooks({query, key, value}, self_attention(query, nullptr));
  // c_attn's weight rows [0, C) project queries, [C, 2C) keys, [2C, 3C) values (nanoGPT's layout).
  auto project = [&](const Tensor& x, int64_t part, int64_t parts) {
    const Tensor& b = c_attn->bias;
    return linear(x, c_attn->weight.narrow(0, part * C, parts * C), b.defined() ? b.narrow(0, part * C, parts * C) : Tensor());
  };
  Tensor q, k, v;
  if (self) {
    const Tensor qkv = c_attn->forward(query);
    q = qkv.narrow(2, 0, C), k = qkv.narrow(2, C, C), v = qkv.narrow(2, 2 * C, C);
  } else if (key.impl() == value.impl()) {  // cross-attention to one memory: keys and values in one product
    const Tensor kv = project(key, 1, 2);
    q = project(query, 0, 1), k = kv.narrow(2, 0, C), v = kv.narrow(2, C, C);
  } else {
    q = project(query, 0, 1), k = project(key, 1, 1), v = project(value, 2, 1);
  }
  return run_forward_hooks({query, key, value}, attend_and_project(split_heads(q), split_heads(k), split_heads(v), mask));
}

std::string MultiHeadAttention::extra_repr() const {
  return "(n_embd=" + std::to_string(options_.n_embd) + ", n_head=" + std::to_string(options_.n_head) +
         ", scale=" + std::to_string(scale_) + (options_.causal ? ", causal" : "") +
         (path == AttentionPath::Fused ? ", fused" : ", composed") + ")";
}

}  // namespace minitrain::nn
