#include <minitrain/nn/rotary.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace minitrain::nn {

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double theta, RotaryLayout layout)
    : Module("RotaryEmbedding"), head_dim_(head_dim), theta_(theta), layout_(layout) {
  if (head_dim <= 0 || head_dim % 2 != 0)
    throw std::invalid_argument("RotaryEmbedding: head_dim must be positive and even, got " + std::to_string(head_dim));
  if (!(theta > 0) || !std::isfinite(theta))
    throw std::invalid_argument("RotaryEmbedding: theta must be positive and finite, got " + std::to_string(theta));
}

int64_t RotaryEmbedding::cached_positions(DType dtype) const {
  auto it = cache_.find(dtype);
  return it == cache_.end() ? 0 : it->second.first.size(0);
}

const std::pair<Tensor, Tensor>& RotaryEmbedding::tables(DType dtype, int64_t end) {
  std::pair<Tensor, Tensor>& cached = cache_[dtype];
  const int64_t have = cached.first.defined() ? cached.first.size(0) : 0;
  if (end > have) {
    // Doubling: a KV cache asks for one more position per generated token, and rebuilding the tables each
    // time would cost O(length²). Every entry is computed from its position alone (rotary_tables), so a
    // rebuilt table holds the same bits as before for the positions it already had.
    const int64_t grown = have > std::numeric_limits<int64_t>::max() / 2 ? end : std::max(end, 2 * have);
    cached = rotary_tables(head_dim_, 0, grown, theta_, dtype);
  }
  return cached;
}

Tensor RotaryEmbedding::forward(const Tensor& x, int64_t start_position, int64_t seq_dim) {
  // x: (..., T, ..., D) -> same shape. Shapes and seq_dim are checked here for messages naming the module;
  // dtype and layout details by rotary_embedding.
  if (!x.defined() || x.dim() < 2 || x.size(-1) != head_dim_)
    throw std::invalid_argument("RotaryEmbedding: input " + (x.defined() ? shape_str(x.shape()) : std::string("undefined")) +
                                " must have at least 2 dims and end in head_dim " + std::to_string(head_dim_));
  const int64_t nd = x.dim();
  const int64_t sd = seq_dim < 0 ? seq_dim + nd : seq_dim;
  if (sd < 0 || sd > nd - 2)
    throw std::invalid_argument("RotaryEmbedding: seq_dim " + std::to_string(seq_dim) + " must name a dim before the last of input " +
                                shape_str(x.shape()));
  const int64_t length = x.size(sd);
  if (start_position < 0 || start_position > std::numeric_limits<int64_t>::max() - length)
    throw std::invalid_argument("RotaryEmbedding: start_position must be >= 0 (and start_position + T fit in int64), got " +
                                std::to_string(start_position) + " with T = " + std::to_string(length));
  if (!is_floating_point(x.dtype()))
    throw std::invalid_argument(std::string("RotaryEmbedding: input must be float32 or float64, got ") + dtype_name(x.dtype()));
  const auto& [cos, sin] = tables(x.dtype(), start_position + length);
  return run_forward_hooks({x}, rotary_embedding(x, cos.narrow(0, start_position, length),
                                                 sin.narrow(0, start_position, length), layout_, seq_dim));
}

std::string RotaryEmbedding::extra_repr() const {
  std::ostringstream theta;
  theta << theta_;
  return "(head_dim=" + std::to_string(head_dim_) + ", theta=" + theta.str() +
         ", layout=" + (layout_ == RotaryLayout::Halves ? "halves" : "interleaved") + ")";
}

}  // namespace minitrain::nn
