// Multi-head attention with a packed q/k/v projection (c_attn), as in GPT-2 / nanoGPT: self-attention
// (one input, optionally causal, optionally with a KV cache) and the general form with separate query and
// key/value inputs (cross-attention) and masks. Today's decoders' options: grouped-query attention
// (n_kv_head key/value heads, each shared by n_head / n_kv_head query heads; c_attn then projects to
// (n_head + 2 n_kv_head) · head_size), QK-norm (RMSNorm over each head of q and k, learned gains q_norm and
// k_norm) and rotary positions on q and k (after QK-norm, as Qwen3 and modded-nanogpt order them).
//
// Mask conventions (the same as PyTorch's, name by name):
//   attn_mask         broadcasts to (B, n_head, T, S). Bool: true = the key TAKES PART (as in
//                     F.scaled_dot_product_attention; note torch.nn.MultiheadAttention reads a bool
//                     attn_mask the other way round). Float (the input's dtype): added to the scores.
//   key_padding_mask  (B, S). Bool: true = the key is PADDING and is IGNORED (as in
//                     torch.nn.MultiheadAttention's key_padding_mask). Float: added to the scores.
//   causal            an option of the layer, false by default (as torch: no mask unless asked for).
// A query whose keys are all masked outputs zeros (after c_proj: c_proj's bias), never NaN, and passes
// zero gradient to the scores.
#pragma once

#include <minitrain/core/attention_statistics.h>
#include <minitrain/nn/layers.h>
#include <minitrain/nn/rotary.h>

#include <limits>
#include <vector>

namespace minitrain::nn {

// Keys and values of the positions seen so far, per layer, for incremental decoding.
struct KVCache {
  Tensor k, v;  // (B, n_kv_head, T_seen, head_size), undefined before the first call; k already rotated
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
  void clear() { k = Tensor(), v = Tensor(); }
};

// Optional masks of MultiHeadAttention::forward(query, key, value, masks); undefined = none.
struct AttentionMasks {
  Tensor attn_mask;         // bool (true = take part) or additive float, broadcast to (B, n_head, T, S)
  Tensor key_padding_mask;  // (B, S): bool (true = padding, ignored) or additive float
};

enum class AttentionPath {
  Fused,     // scaled_dot_product_attention: one kernel with its own backward
  Composed,  // matmul, scale, masked_fill(-inf), softmax, dropout, matmul: the textbook steps
};

struct AttentionOptions {
  int64_t n_embd = 0, n_head = 1;
  bool causal = false;  // query i sees keys j <= i + (S - T); a decoder (the GPT) sets it explicitly
  double dropout = 0.0;  // on the attention weights and on the output (residual dropout)
  // Multiplies q·k. NaN (the default) means 1/sqrt(d_k) with d_k = n_embd / n_head, the head size.
  // With qk_norm the norms fix |q| and |k|, so the scale is a free choice (see the scale study).
  double scale = std::numeric_limits<double>::quiet_NaN();
  bool bias = true;
  int64_t n_kv_head = 0;  // key/value heads, dividing n_head; 0 means n_head, 1 is multi-query attention
  bool qk_norm = false;   // RMSNorm with a learned gain over each head of q and of k, before the scores
  double qk_norm_eps = 1e-6;
  bool rotary = false;    // rotary position embedding on q and k (positions continue across a KV cache)
  double rotary_theta = 10000.0;
  RotaryLayout rotary_layout = RotaryLayout::Halves;
  int64_t kv_heads() const { return n_kv_head == 0 ? n_head : n_kv_head; }
};

class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(const AttentionOptions& options, std::shared_ptr<Generator> dropout_gen = nullptr,
                     Generator* init_gen = nullptr);
  // x: (B, T, C) -> (B, T, C). With a cache, x holds only the new positions; their keys and values are
  // appended to the cache and the queries attend to everything cached (causally).
  Tensor forward(const Tensor& x, KVCache* cache = nullptr);
  Tensor operator()(const Tensor& x, KVCache* cache = nullptr) { return forward(x, cache); }
  // The general form: query (B, T, C), key and value (B, S, C) -> (B, T, C), with optional masks (see
  // the conventions above). Passing the same tensor three times is masked self-attention (one packed
  // projection); cross-attention projects query with c_attn's q rows and key/value with its k/v rows.
  // Without masks, self-attention on the fused path uses the packed kernel, as forward(x) does; with
  // masks, both paths run on split heads (the packed kernel has no mask support).
  Tensor forward(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionMasks& masks = {});
  Tensor operator()(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionMasks& masks = {}) {
    return forward(query, key, value, masks);
  }

  double scale() const { return scale_; }
  int64_t head_size() const { return options_.n_embd / options_.n_head; }
  const AttentionOptions& options() const { return options_; }
  AttentionPath path = AttentionPath::Fused;
  // What the last forward's softmax did, all heads and rows pooled (core/attention_statistics.h): computed
  // by the attention kernel from the scores and weights it used (scale and masks applied), for the forward
  // hooks to read. Filled only while a forward hook is registered on this layer (otherwise forward does no
  // extra work, and the statistics are NaN with rows = 0).
  //
  //   attn.register_forward_hook([](nn::Module& m, const std::vector<Tensor>&, const Tensor&) {
  //     const auto& s = static_cast<nn::MultiHeadAttention&>(m).observed_statistics();  // s.normalized_entropy, ...
  //   });
  const AttentionStatistics& observed_statistics() const { return observed_; }
  std::shared_ptr<Linear> c_attn, c_proj;
  std::shared_ptr<Dropout> resid_dropout;
  std::shared_ptr<RMSNorm> q_norm, k_norm;   // null without qk_norm
  std::shared_ptr<RotaryEmbedding> rotary;   // null without rotary positions

 protected:
  std::string extra_repr() const override;

 private:
  // forward(x, cache) without running the hooks
  Tensor self_attention(const Tensor& x, KVCache* cache);
  // q (B, nh, T, hs), k/v (B, n_kv_head, S, hs), additive mask or undefined -> (B, T, C) after c_proj
  Tensor attend_and_project(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask);
  // QK-norm and rotary positions on projected queries (B, T, n_head · hs) or keys (B, S, n_kv_head · hs)
  // starting at `start`; the identity without either option.
  Tensor prepare(const Tensor& x, int64_t heads, const std::shared_ptr<RMSNorm>& norm, int64_t start);
  // The same on a packed (B, T, (n_head + 2 n_kv_head) · hs) projection, v untouched.
  Tensor prepare_packed(const Tensor& qkv, int64_t start);
  AttentionStatistics* observer();  // where the kernel writes its statistics: &observed_ while hooked, else null
  Tensor split_heads(const Tensor& x) const;  // (B, T, heads · hs) -> (B, heads, T, hs)
  Tensor additive_mask(const AttentionMasks& masks, int64_t B, int64_t T, int64_t S, DType dtype) const;
  AttentionOptions options_;
  double scale_;
  AttentionStatistics observed_ = AttentionStatisticsSum().mean();
  std::shared_ptr<Generator> dropout_gen_;
};

// The composed attention steps, shared with the scale study and the worked example in tests/nn:
// softmax(q·kᵀ·scale + attn_mask, with the causal mask) (dropout) · v. q (..., Tq, D), k/v (..., Tk, D);
// attn_mask as in scaled_dot_product_attention (bool: true = take part; float: added), or undefined.
// It is the readable reference the fused kernel is tested against, masks and `observed` included.
Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                          double dropout_p = 0.0, bool training = false, Generator* gen = nullptr,
                          AttentionStatistics* observed = nullptr);
Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& attn_mask, double scale,
                          bool causal, double dropout_p = 0.0, bool training = false, Generator* gen = nullptr,
                          AttentionStatistics* observed = nullptr);

}  // namespace minitrain::nn
