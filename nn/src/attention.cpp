#include <minitrain/nn/attention.h>

#include <minitrain/nn/init.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace minitrain::nn {

Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                          double dropout_p, bool training, Generator* gen) {
  // scores: (..., Tq, Tk) = q kᵀ · scale
  Tensor scores = mul(matmul(q, k.transpose(-2, -1)), scale);
  if (causal)  // future keys get −inf, so softmax gives them exactly 0
    scores = masked_fill(scores, causal_mask(q.size(-2), k.size(-2), q.dtype()),
                         -std::numeric_limits<double>::infinity());
  Tensor weights = softmax(scores, -1);
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

Tensor MultiHeadAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v) {
  const double p = options_.dropout;
  if (path == AttentionPath::Fused)
    return scaled_dot_product_attention(q, k, v, scale_, options_.causal, p, is_training(), dropout_gen_.get());
  return composed_attention(q, k, v, scale_, options_.causal, p, is_training(), dropout_gen_.get());
}

Tensor MultiHeadAttention::forward(const Tensor& x, KVCache* cache) {
  // x: (B, T, C)
  if (x.dim() != 3 || x.size(2) != options_.n_embd)
    throw std::invalid_argument("MultiHeadAttention: input " + shape_str(x.shape()) + " is not (B, T, " +
                                std::to_string(options_.n_embd) + ")");
  const int64_t B = x.size(0), T = x.size(1), C = options_.n_embd, nh = options_.n_head, hs = head_size();
  Tensor qkv = c_attn->forward(x);  // (B, T, 3C)
  auto heads = [&](int64_t part) {   // (B, T, C) slice -> (B, nh, T, hs)
    return qkv.narrow(2, part * C, C).reshape({B, T, nh, hs}).transpose(1, 2);
  };
  if (path == AttentionPath::Fused && !cache) {  // the training path: one kernel from qkv to (B, T, C)
    if (record_statistics) statistics.push_back(attention_statistics(heads(0), heads(1), scale_, options_.causal));
    Tensor y = multi_head_attention(qkv, nh, scale_, options_.causal, options_.dropout, is_training(),
                                    dropout_gen_.get());
    return resid_dropout->forward(c_proj->forward(y));
  }
  Tensor q = heads(0), k = heads(1), v = heads(2);
  if (cache) {
    if (cache->k.defined()) {
      k = cat({cache->k, k}, 2);
      v = cat({cache->v, v}, 2);
    }
    cache->k = k.detach();
    cache->v = v.detach();
  }
  if (record_statistics) statistics.push_back(attention_statistics(q, k, scale_, options_.causal));
  Tensor y = attend(q, k, v);                      // (B, nh, T, hs)
  y = y.transpose(1, 2).reshape({B, T, C});        // re-assemble the heads
  return resid_dropout->forward(c_proj->forward(y));
}

std::string MultiHeadAttention::extra_repr() const {
  return "(n_embd=" + std::to_string(options_.n_embd) + ", n_head=" + std::to_string(options_.n_head) +
         ", scale=" + std::to_string(scale_) + (options_.causal ? ", causal" : "") +
         (path == AttentionPath::Fused ? ", fused" : ", composed") + ")";
}

}  // namespace minitrain::nn
