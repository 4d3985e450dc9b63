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
  if (options.n_kv_head < 0 || options.n_head % options.kv_heads() != 0)
    throw std::invalid_argument("MultiHeadAttention: n_kv_head " + std::to_string(options.n_kv_head) +
                                " must divide n_head " + std::to_string(options.n_head) + " (0 means n_head)");
  if (options.rotary && (head_size() % 2 != 0 || !(options.rotary_theta > 0) || !std::isfinite(options.rotary_theta)))
    throw std::invalid_argument("MultiHeadAttention: rotary positions need an even head size (got " +
                                std::to_string(head_size()) + ") and a finite rotary_theta > 0 (got " +
                                std::to_string(options.rotary_theta) + ")");
  // Like Dropout: each standalone layer gets its own stream from the default generator, not one shared seed.
  if (!dropout_gen_) dropout_gen_ = std::make_shared<Generator>(default_generator().next_u64());
  scale_ = std::isnan(options.scale) ? 1.0 / std::sqrt(static_cast<double>(head_size())) : options.scale;
  const int64_t qkv_width = options.n_embd + 2 * options.kv_heads() * head_size();
  c_attn = register_module("c_attn", std::make_shared<Linear>(options.n_embd, qkv_width, options.bias, init_gen));
  c_proj = register_module("c_proj", std::make_shared<Linear>(options.n_embd, options.n_embd, options.bias, init_gen));
  resid_dropout = register_module("resid_dropout", std::make_shared<Dropout>(options.dropout, dropout_gen_));
  if (options.qk_norm) {
    q_norm = register_module("q_norm", std::make_shared<RMSNorm>(head_size(), options.qk_norm_eps));
    k_norm = register_module("k_norm", std::make_shared<RMSNorm>(head_size(), options.qk_norm_eps));
  }
  if (options.rotary)
    rotary = register_module("rotary",
                             std::make_shared<RotaryEmbedding>(head_size(), options.rotary_theta, options.rotary_layout));
}

Tensor MultiHeadAttention::split_heads(const Tensor& x) const {
  return x.reshape({x.size(0), x.size(1), x.size(2) / head_size(), head_size()}).transpose(1, 2);
}

Tensor MultiHeadAttention::prepare(const Tensor& x, int64_t heads, const std::shared_ptr<RMSNorm>& norm,
                                   int64_t start) {
  if (!norm && !rotary) return x;
  const int64_t B = x.size(0), T = x.size(1);
  Tensor h = x.reshape({B, T, heads, head_size()});     // (B, T, heads, hs)
  if (norm) h = norm->forward(h);                       // each head's vector to unit RMS, times the gain
  if (rotary) h = rotary->forward(h, start, /*seq_dim=*/-3);  // position start + t rotates row t
  return h.reshape({B, T, heads * head_size()});
}

Tensor MultiHeadAttention::prepare_packed(const Tensor& qkv, int64_t start) {
  if (!q_norm && !rotary) return qkv;
  const int64_t C = options_.n_embd, KV = options_.kv_heads() * head_size();
  return cat({prepare(qkv.narrow(2, 0, C), options_.n_head, q_norm, start),
              prepare(qkv.narrow(2, C, KV), options_.kv_heads(), k_norm, start), qkv.narrow(2, C + KV, KV)},
             2);
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

Tensor MultiHeadAttention::attend_and_project(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                              const Tensor& mask_in) {
  const double p = options_.dropout;
  Generator* gen = dropout_gen_.get();
  const int64_t B = q_in.size(0), nh = options_.n_head, T = q_in.size(2), hs = head_size();
  Tensor q = q_in, k = k_in, v = v_in, mask = mask_in;
  const int64_t nkv = k_in.size(1), group = nh / nkv, S = k_in.size(2);
  if (group > 1) {
    // Grouped query heads: view q as (B, nkv, group, T, hs) and let each kv head serve its group through
    // a stride-0 expand (no copy of the keys and values); the mask follows the same split of the heads.
    q = q.reshape({B, nkv, group, T, hs});
    k = k.unsqueeze(2).expand({B, nkv, group, S, hs});
    v = v.unsqueeze(2).expand({B, nkv, group, S, hs});
    if (mask.defined()) mask = mask.expand({B, nh, T, S}).reshape({B, nkv, group, T, S});
  }
  Tensor y = path == AttentionPath::Fused
                 ? scaled_dot_product_attention(q, k, v, mask, scale_, options_.causal, p, is_training(), gen, observer())
                 : composed_attention(q, k, v, mask, scale_, options_.causal, p, is_training(), gen, observer());
  y = y.reshape({B, nh, T, hs}).transpose(1, 2).reshape({B, T, options_.n_embd});  // re-assemble the heads
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
  const int64_t C = options_.n_embd, KV = options_.kv_heads() * head_size();
  const int64_t start = cache ? cache->length() : 0;
  Tensor qkv = prepare_packed(c_attn->forward(x), start);  // (B, T, C + 2 KV)
  if (path == AttentionPath::Fused && !cache) {  // the training path: one kernel from qkv to (B, T, C)
    Tensor y = grouped_query_attention(qkv, options_.n_head, options_.kv_heads(), scale_, options_.causal,
                                       options_.dropout, is_training(), dropout_gen_.get(), observer());
    return resid_dropout->forward(c_proj->forward(y));
  }
  Tensor q = split_heads(qkv.narrow(2, 0, C)), k = split_heads(qkv.narrow(2, C, KV)),
         v = split_heads(qkv.narrow(2, C + KV, KV));
  if (cache) {  // only the kv heads are kept: n_head / n_kv_head times less memory than the query heads
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
  // c_attn's weight rows [0, C) project queries, [C, C + KV) keys, [C + KV, C + 2 KV) values (nanoGPT's
  // layout; KV = C without grouped kv heads).
  const int64_t KV = options_.kv_heads() * head_size();
  auto project = [&](const Tensor& x, int64_t first_row, int64_t rows) {
    const Tensor& b = c_attn->bias;
    return linear(x, c_attn->weight.narrow(0, first_row, rows), b.defined() ? b.narrow(0, first_row, rows) : Tensor());
  };
  Tensor q, k, v;
  if (self) {
    const Tensor qkv = c_attn->forward(query);
    q = qkv.narrow(2, 0, C), k = qkv.narrow(2, C, KV), v = qkv.narrow(2, C + KV, KV);
  } else if (key.impl() == value.impl()) {  // cross-attention to one memory: keys and values in one product
    const Tensor kv = project(key, C, 2 * KV);
    q = project(query, 0, C), k = kv.narrow(2, 0, KV), v = kv.narrow(2, KV, KV);
  } else {
    q = project(query, 0, C), k = project(key, C, KV), v = project(value, C + KV, KV);
  }
  // Queries and keys both count positions from 0 (one sequence each).
  q = prepare(q, options_.n_head, q_norm, 0);
  k = prepare(k, options_.kv_heads(), k_norm, 0);
  return run_forward_hooks({query, key, value}, attend_and_project(split_heads(q), split_heads(k), split_heads(v), mask));
}

std::string MultiHeadAttention::extra_repr() const {
  return "(n_embd=" + std::to_string(options_.n_embd) + ", n_head=" + std::to_string(options_.n_head) +
         (options_.kv_heads() != options_.n_head ? ", n_kv_head=" + std::to_string(options_.kv_heads()) : "") +
         ", scale=" + std::to_string(scale_) + (options_.causal ? ", causal" : "") +
         (path == AttentionPath::Fused ? ", fused" : ", composed") + ")";
}

}  // namespace minitrain::nn
