// Gradient-norm probes: how much gradient each parameter (or each of W_q, W_k, W_v) receives.
//
// Call them after backward and before clipping, the optimizer step or zero_grad:
//
//   loss.backward();
//   std::map<std::string, double> norms = train::grad_norms(model.named_parameters());
//   train::QKVNorms qkv = train::qkv_grad_norms(*(*model.h)[0]->attn);   // layer 0's W_q, W_k, W_v
//
// A softmax that saturates (one key takes all the weight) or goes flat stops passing gradient to
// W_q and W_k while W_v still gets its share, so q.norm / v.norm is the number to watch.
#pragma once

#include <minitrain/core/tensor.h>
#include <minitrain/nn/attention.h>
#include <minitrain/train/optimizer.h>

#include <map>
#include <string>

namespace minitrain::train {

// sqrt(Σ x²) accumulated in float64; 0 for an undefined tensor.
double l2_norm(const Tensor& t);

// name -> L2 norm of that parameter's gradient (0 for a parameter that has no gradient yet).
std::map<std::string, double> grad_norms(const NamedParameters& params);
// The L2 norm of all gradients together: what clip_grad_norm compares with max_norm.
double global_grad_norm(const NamedParameters& params);

struct QKVNorms {
  double q = 0, k = 0, v = 0;
};
// Norms of the three row blocks of a packed projection: `packed` is (3C, ...) with rows [0, C) for q,
// [C, 2C) for k and [2C, 3C) for v, as c_attn's weight (3C, C) and bias (3C). Works on values or grads.
QKVNorms packed_qkv_norms(const Tensor& packed);
// W_q, W_k, W_v gradient norms of one attention layer: c_attn's weight gradient split by rows, with the
// matching bias blocks included when the layer has a bias. Zeros before the first backward.
QKVNorms qkv_grad_norms(const nn::MultiHeadAttention& attention);

}  // namespace minitrain::train
