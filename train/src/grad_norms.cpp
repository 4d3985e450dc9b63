#include <minitrain/train/grad_norms.h>

#include <cmath>
#include <stdexcept>

namespace minitrain::train {

namespace {
double sum_of_squares(const Tensor& t) {
  if (!t.defined()) return 0;
  double total = 0;
  for (double x : t.to_vector<double>()) total += x * x;
  return total;
}
}  // namespace

double l2_norm(const Tensor& t) { return std::sqrt(sum_of_squares(t)); }

std::map<std::string, double> grad_norms(const NamedParameters& params) {
  std::map<std::string, double> out;
  for (const auto& [name, p] : params) out[name] = l2_norm(p.grad());
  return out;
}

double global_grad_norm(const NamedParameters& params) {
  double total = 0;
  for (const auto& named : params) total += sum_of_squares(named.second.grad());
  return std::sqrt(total);
}

QKVNorms packed_qkv_norms(const Tensor& packed) {
  if (!packed.defined() || packed.dim() < 1 || packed.size(0) % 3 != 0)
    throw std::invalid_argument("packed_qkv_norms: expected a (3C, ...) tensor, got " +
                                (packed.defined() ? shape_str(packed.shape()) : std::string("an undefined tensor")));
  const int64_t C = packed.size(0) / 3;
  return {l2_norm(packed.narrow(0, 0, C)), l2_norm(packed.narrow(0, C, C)), l2_norm(packed.narrow(0, 2 * C, C))};
}

QKVNorms qkv_grad_norms(const nn::MultiHeadAttention& attention) {
  const nn::Linear& c_attn = *attention.c_attn;
  const Tensor w = c_attn.weight.grad(), b = c_attn.bias.defined() ? c_attn.bias.grad() : Tensor();
  QKVNorms out = w.defined() ? packed_qkv_norms(w) : QKVNorms{};
  if (b.defined()) {  // the bias rows belong to the same q / k / v blocks
    const QKVNorms nb = packed_qkv_norms(b);
    out.q = std::hypot(out.q, nb.q);
    out.k = std::hypot(out.k, nb.k);
    out.v = std::hypot(out.v, nb.v);
  }
  return out;
}

}  // namespace minitrain::train
