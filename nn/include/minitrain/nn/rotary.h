// Rotary position embedding as a module: RoPE applied to q or k of shape (..., T, ..., head_dim) at
// positions [start_position, start_position + T), with its cos/sin tables built on demand and cached.
//
//   nn::RotaryEmbedding rope(head_dim);               // theta 10000, Hugging Face's "halves" layout
//   q = rope(q, past_length);                         // (B, H, T, D), positions continue after the cache
//   k = rope(k, past_length);
//   q = rope(q, past_length, /*seq_dim=*/-3);         // (B, T, H, D)
//
// It has no parameters. The tables are computed in double for any position (rotary_tables in core's ops.h):
// positions past a model's trained context are computed by the same formula, not refused.
// forward may grow the cache, so one module is not for concurrent forwards from several threads.
#pragma once

#include <minitrain/core/ops.h>
#include <minitrain/nn/module.h>

#include <map>

namespace minitrain::nn {

class RotaryEmbedding : public Module {
 public:
  RotaryEmbedding(int64_t head_dim, double theta = 10000.0, RotaryLayout layout = RotaryLayout::Halves);
  // x (..., T, ..., head_dim) with T = x.size(seq_dim) -> same shape, position p = start_position + t.
  Tensor forward(const Tensor& x, int64_t start_position, int64_t seq_dim = -2);
  Tensor operator()(const Tensor& x, int64_t start_position, int64_t seq_dim = -2) {
    return forward(x, start_position, seq_dim);
  }
  int64_t head_dim() const { return head_dim_; }
  double theta() const { return theta_; }
  RotaryLayout layout() const { return layout_; }
  // How many positions (from 0) the tables cached for `dtype` cover; 0 before the first forward in it.
  int64_t cached_positions(DType dtype) const;

 protected:
  std::string extra_repr() const override;

 private:
  // The (cos, sin) tables of positions [0, cached_positions) for `dtype`, grown to cover `end` positions.
  const std::pair<Tensor, Tensor>& tables(DType dtype, int64_t end);

  int64_t head_dim_;
  double theta_;
  RotaryLayout layout_;
  std::map<DType, std::pair<Tensor, Tensor>> cache_;
};

}  // namespace minitrain::nn
