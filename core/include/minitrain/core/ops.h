// The differentiable op library. Every op checks its arguments and throws std::invalid_argument naming
// the op and what it got; every op has a float64 gradient check in tests/core/test_gradcheck_ops.cpp.
//
// Elementwise binary ops broadcast with numpy rules. Both operands must have the same dtype. Arithmetic,
// reductions and the network ops take floating-point tensors (float32, float64) and throw naming the op
// and the dtype when given int64 or bool; ids, targets and indices are int64 tensors, masks bool.
#pragma once

#include <minitrain/core/random.h>
#include <minitrain/core/tensor.h>

#include <optional>
#include <utility>
#include <vector>

namespace minitrain {

struct AttentionStatistics;  // attention_statistics.h

// Elementwise arithmetic (broadcasting).
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
// Scalar forms.
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor rsub(double a, const Tensor& b);  // a - b
Tensor rdiv(double a, const Tensor& b);  // a / b
Tensor pow(const Tensor& x, double exponent);
// x ** exponent elementwise (broadcasting), differentiable in both. As torch: the base gets no gradient
// where the exponent is 0, the exponent none where x = 0 and exponent >= 0; a negative base gives the
// exponent a NaN gradient (log x).
Tensor pow(const Tensor& x, const Tensor& exponent);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, b); }
inline Tensor operator+(double a, const Tensor& b) { return add(b, a); }
inline Tensor operator-(const Tensor& a, double b) { return add(a, -b); }
inline Tensor operator-(double a, const Tensor& b) { return rsub(a, b); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
inline Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
inline Tensor operator/(const Tensor& a, double b) { return mul(a, 1.0 / b); }
inline Tensor operator/(double a, const Tensor& b) { return rdiv(a, b); }

// Elementwise functions.
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor silu(const Tensor& x);  // x·sigmoid(x), as torch.nn.functional.silu
// Piecewise-linear functions; the gradient at their kinks is torch's. abs: 0 at x = 0. clamp: x limited to
// [min, max] (either bound may be absent, not both; min > max gives max everywhere); the gradient passes
// where min <= x <= max, bounds included, and is 0 at clamped entries and NaN. minimum / maximum
// (broadcasting, NaN wins): equal operands split the gradient, half each.
Tensor abs(const Tensor& x);
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);
Tensor clamp_min(const Tensor& x, double min);
Tensor clamp_max(const Tensor& x, double max);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
enum class GeluApproximation { None, Tanh };  // None: x·Φ(x) with erf; Tanh: GPT-2's approximation
Tensor gelu(const Tensor& x, GeluApproximation approximation = GeluApproximation::None);

// Reductions over `dims` (empty = all dims). Negative dims count from the end.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with Bessel's correction by default (correction = 1), as torch.var: the sum of squared
// deviations divided by (count - correction).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false,
           int64_t correction = 1);
// sqrt(var), as torch.std; where a reduction's elements are all equal (std = 0) its gradient is 0, not NaN.
// Call it minitrain::std: after `using namespace minitrain`, a plain std( is ambiguous with namespace std.
Tensor std(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false,
           int64_t correction = 1);
// Maximum / minimum along one dim; the gradient goes to the first extreme element (torch's max(dim)).
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x, int64_t dim, bool keepdim = false);
// Maximum / minimum over `dims` (empty = all): equal extremes share the gradient equally (torch's amax).
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// The p-norm over `dims` (empty = all), (sum |x|^p)^(1/p), for p >= 1 or p = infinity (max |x|), as
// torch.linalg.vector_norm. Gradient g·sgn(x)·|x|^(p-1)/norm^(p-1) (g·x/norm for p = 2, g·sgn(x) for
// p = 1, so 0 at x = 0); 0 for a reduction whose elements are all 0 (norm 0); for infinity, shared by the
// entries with |x| = norm.
Tensor norm(const Tensor& x, double p = 2, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Running sums along `dim`: out[j] = x[0] + ... + x[j] (torch.cumsum). The gradient is the reversed
// running sum of the incoming one.
Tensor cumsum(const Tensor& x, int64_t dim);

// Matrix product of (..., M, K) and (..., K, N) -> (..., M, N); batch dims broadcast. Transposed views
// go to BLAS as transpose flags, not copies.
Tensor matmul(const Tensor& a, const Tensor& b);
// x (..., in) · weightᵀ + bias, with weight (out, in) and bias (out) or undefined, as torch's F::linear.
// One gemm that starts from the bias, instead of a product followed by a separate add.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// Softmax family along `dim`, max-subtracted. A row that is entirely -inf (fully masked) gives an
// all-zero softmax row (and -inf from log_softmax) with zero gradient, instead of NaN.
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);

// Masking and selection. `mask` and `condition` are bool tensors (any other dtype: nonzero means true);
// they broadcast.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);
// A (n, n) mask that is 1 strictly above the diagonal: the future positions a causal model must not see.
Tensor causal_mask(int64_t n, DType dtype = DType::Float32);
// The (rows, cols) version for queries at the end of a longer key sequence (a KV cache): entry (i, j) is
// 1 where j > i + (cols - rows).
Tensor causal_mask(int64_t rows, int64_t cols, DType dtype);

// Comparisons (bool results, broadcasting, no gradient). Both operands have one dtype (any of the four);
// the scalar forms compare with a value of the tensor's dtype. NaN is unequal to everything.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double b);
Tensor ne(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor le(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor ge(const Tensor& a, double b);
// Logical ops on truth values: bool tensors, or any dtype read as value != 0. Bool results.
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& x);

// Indices of the largest / smallest element along `dim` (int64, no gradient): the first one among
// equals; NaN counts as the extreme, as in torch. Without a dim: the index into the flattened tensor.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x);
Tensor argmin(const Tensor& x);
// out[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (and likewise for other dims), as torch.gather: index
// is int64 with x's number of dims and no larger than x outside `dim`. Backward scatter-adds.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// The slices of x at the positions of a 1-D int64 index along `dim`. Backward scatter-adds (repeats add).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// The k largest (or smallest) entries along `dim`, sorted, and their int64 indices: (values, indices).
// Equal values keep index order, NaN ranks first. The values are gather(x, dim, indices), so the gradient
// goes to the chosen entries.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
// int64 class ids (...) -> int64 (..., num_classes) with a 1 at each id; -1 infers max id + 1.
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);

// Row gather: weight (V, C), int64 ids of any shape -> ids.shape + (C). Backward scatter-adds repeated ids.
Tensor embedding(const Tensor& weight, const Tensor& ids);

// Mean cross-entropy of logits (..., C) against int64 targets of shape (...), via a fused log-softmax.
// Targets equal to ignore_index contribute nothing and are not counted in the mean.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);

// Layer normalisation over the last dim: (x - mean) / sqrt(var + eps) * weight + bias, with the biased
// variance. weight and bias are (C) or undefined (then 1 and 0).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// RMS normalisation over the last dim, as torch.nn.functional.rms_norm: x / sqrt(mean(x², last dim) + eps)
// * weight, with weight (C) or undefined (then no gain). x (..., C) with at least one dim. torch's default
// eps (None) is the dtype's machine epsilon: nn::RMSNorm resolves it; this op takes the number.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);

// Rotary position embedding (RoPE): each pair of channels of x is rotated by position · frequency_i.
// Interleaved pairs (x[2i], x[2i+1]), as Meta's original Llama code (complex numbers); Halves pairs
// (x[i], x[i + D/2]), "rotate_half" as Hugging Face's apply_rotary_pos_emb. Checkpoints differ in which
// they were trained with.
enum class RotaryLayout { Interleaved, Halves };
// x (..., D) with D even; T = x.size(seq_dim), seq_dim any dim before the last (negative counts from the
// end: -2 for (B, H, T, D), -3 for (B, T, H, D)). cos and sin (T, D/2), of x's dtype, hold cos and sin of
// position·frequency_i for the T positions of x (rotary_tables). Returns x rotated, same shape. The gradient
// goes to x only (the rotation by the negative angle): cos and sin are constants, and a cos or sin that
// requires grad is refused.
Tensor rotary_embedding(const Tensor& x, const Tensor& cos, const Tensor& sin, RotaryLayout layout,
                        int64_t seq_dim = -2);
// The (cos, sin) tables for rotary_embedding, each (length, head_dim / 2) of `dtype`: entry (t, i) is
// cos / sin of (start_position + t) · theta^(-2i / head_dim), the angle computed in double and then
// converted. Any position is valid: there is no maximum, and positions past a model's trained context
// length are computed by the same formula (whether the model generalises there is another matter).
std::pair<Tensor, Tensor> rotary_tables(int64_t head_dim, int64_t start_position, int64_t length, double theta,
                                        DType dtype);

// Inverted dropout: zeroes each element with probability p and scales survivors by 1/(1-p);
// the identity when !training or p == 0.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

// Fused scaled dot-product attention: softmax(q·kᵀ·scale, causal-masked) (dropout) · v, with its own
// backward. q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv) -> (..., Tq, Dv). With `causal`, query i
// sees keys j <= i + (Tk - Tq), so queries at the end of a longer key sequence (a KV cache) are masked
// correctly. Dropout on the attention weights needs `gen` when training and dropout_p > 0. With
// `observed`, the kernel also summarises the softmax rows it computed (attention_statistics.h): the
// scores as softmax saw them and the weights before dropout; it costs one pass over the weights.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                                    double dropout_p = 0.0, bool training = false, Generator* gen = nullptr,
                                    AttentionStatistics* observed = nullptr);
// With an attention mask, as torch's F.scaled_dot_product_attention: attn_mask broadcasts to
// (..., Tq, Tk) and is either bool (true = the key takes part, false = it is masked out) or of q's dtype,
// added to the scores (−inf masks a key; a float mask is differentiable, as a learned bias would be).
// A query row whose keys are all masked (by attn_mask and causal together) outputs zeros, with zero
// gradients, where torch may give NaN. Unlike torch's is_causal (aligned top-left), `causal` is aligned
// bottom-right when Tq != Tk, as described above.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& attn_mask,
                                    double scale, bool causal, double dropout_p = 0.0, bool training = false,
                                    Generator* gen = nullptr, AttentionStatistics* observed = nullptr);

// The same attention for all heads of a packed projection: qkv is (B, T, 3C) holding [q | k | v] along the
// last dim, each split into n_head blocks of C / n_head; the result is (B, T, C) with the heads side by
// side. Equal to splitting qkv into (B, n_head, T, C / n_head) q, k, v, calling
// scaled_dot_product_attention and merging the heads back, but reads the heads in place and returns the
// packed gradient directly, without the copies between those steps. It takes no attention mask: masked
// and cross-attention go through scaled_dot_product_attention on split heads (nn::MultiHeadAttention).
Tensor multi_head_attention(const Tensor& qkv, int64_t n_head, double scale, bool causal, double dropout_p = 0.0,
                            bool training = false, Generator* gen = nullptr, AttentionStatistics* observed = nullptr);
// Grouped-query attention on a packed projection (B, T, (n_head + 2 n_kv_head) · hs) holding
// [q (n_head heads) | k (n_kv_head heads) | v (n_kv_head heads)]: query head h attends with key/value head
// h / (n_head / n_kv_head), as torch's scaled_dot_product_attention(enable_gqa=True) and Llama's
// repeat_kv. n_kv_head must divide n_head; n_kv_head == n_head is multi_head_attention, n_kv_head == 1
// multi-query attention. Returns (B, T, n_head · hs).
Tensor grouped_query_attention(const Tensor& qkv, int64_t n_head, int64_t n_kv_head, double scale, bool causal,
                               double dropout_p = 0.0, bool training = false, Generator* gen = nullptr,
                               AttentionStatistics* observed = nullptr);

// Joining and splitting (differentiable).
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);  // last part may be short
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);
Tensor broadcast_to(const Tensor& x, const Shape& shape);

// Free-function forms of the Tensor shape methods.
inline Tensor reshape(const Tensor& x, const Shape& s) { return x.reshape(s); }
inline Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) { return x.transpose(d0, d1); }
inline Tensor permute(const Tensor& x, const std::vector<int64_t>& d) { return x.permute(d); }
inline Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  return x.narrow(dim, start, length);
}
inline Tensor unsqueeze(const Tensor& x, int64_t dim) { return x.unsqueeze(dim); }
inline Tensor squeeze(const Tensor& x, int64_t dim) { return x.squeeze(dim); }

// The shape numpy broadcasting gives a and b; throws naming `op` when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Sums `grad` down to `shape` (the reverse of broadcasting): the one helper every backward uses.
Tensor sum_to_shape(const Tensor& grad, const Shape& shape);

}  // namespace minitrain
