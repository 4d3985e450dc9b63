// Multi-head self-attention with a packed q/k/v projection (c_attn), as in GPT-2 / nanoGPT.
#pragma once

#include <minitrain/nn/attention_probes.h>
#include <minitrain/nn/layers.h>

#include <limits>
#include <vector>

namespace minitrain::nn {

// Keys and values of the positions seen so far, per layer, for incremental decoding.
struct KVCache {
  Tensor k, v;  // (B, n_head, T_seen, head_size), undefined before the first call
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
  void clear() { k = Tensor(), v = Tensor(); }
};

enum class AttentionPath {
  Fused,     // scaled_dot_product_attention: one kernel with its own backward
  Composed,  // matmul, scale, masked_fill(-inf), softmax, dropout, matmul: the textbook steps
};

struct AttentionOptions {
  int64_t n_embd = 0, n_head = 1;
  bool causal = true;
  double dropout = 0.0;  // on the attention weights and on the output (residual dropout)
  // Multiplies q·k. NaN (the default) means 1/sqrt(d_k) with d_k = n_embd / n_head, the head size.
  double scale = std::numeric_limits<double>::quiet_NaN();
  bool bias = true;
};

class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(const AttentionOptions& options, std::shared_ptr<Generator> dropout_gen = nullptr,
                     Generator* init_gen = nullptr);
  // x: (B, T, C) -> (B, T, C). With a cache, x holds only the new positions; their keys and values are
  // appended to the cache and the queries attend to everything cached (causally).
  Tensor forward(const Tensor& x, KVCache* cache = nullptr);
  Tensor operator()(const Tensor& x, KVCache* cache = nullptr) { return forward(x, cache); }

  double scale() const { return scale_; }
  int64_t head_size() const { return options_.n_embd / options_.n_head; }
  AttentionPath path = AttentionPath::Fused;
  // Opt-in probe (off by default, and then forward does no extra work): while true, every forward
  // appends attention_statistics of its q and k (all heads and rows pooled) to `statistics`. It costs
  // one more q·kᵀ and softmax without a graph. Clear `statistics` yourself; it grows by one per call.
  bool record_statistics = false;
  std::vector<AttentionStatistics> statistics;
  std::shared_ptr<Linear> c_attn, c_proj;
  std::shared_ptr<Dropout> resid_dropout;

 protected:
  std::string extra_repr() const override;

 private:
  Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v);  // (B, nh, Tq|Tk, hs) -> (B, nh, Tq, hs)
  AttentionOptions options_;
  double scale_;
  std::shared_ptr<Generator> dropout_gen_;
};

// The composed attention steps, shared with the scale study and the worked example in tests/nn:
// softmax(q·kᵀ·scale with the causal mask) (dropout) · v. q (..., Tq, D), k/v (..., Tk, D).
Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                          double dropout_p = 0.0, bool training = false, Generator* gen = nullptr);

}  // namespace minitrain::nn
