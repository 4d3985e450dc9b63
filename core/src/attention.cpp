// Fused scaled dot-product attention with its own backward. Per (batch, head) slice:
//   S = scale · Q Kᵀ + A,  S[i, j] = −inf where causal and j > i + (Tk − Tq),  P = softmax_rows(S),
//   P' = P ⊙ M (dropout mask, 0 or 1/(1−p)),  O = P' V.
// A is the optional additive attention mask (a bool mask becomes 0 where true, −inf where false). A row
// whose scores are all −inf (every key masked) has P = 0, so its output is 0 and its gradients are 0.
// Backward, from dO:
//   dV = P'ᵀ dO,  dP = (dO Vᵀ) ⊙ M,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = scale · dS K,
//   dK = scale · dSᵀ Q,  dA = dS (summed over the dims A was broadcast along).
// Only P and the dropout mask are saved. Two ops share the slice kernels: scaled_dot_product_attention on
// (..., T, D) q/k/v, and multi_head_attention on a packed (B, T, 3C) projection, which reads the heads in
// place and writes (B, T, C) and the packed gradient directly (no head split/merge copies). Slices run in
// parallel over the OpenMP team. The composed version in nn/attention (matmul, masked_fill, softmax,
// dropout, matmul) is the readable reference; tests check that all agree in values and gradients.
#include <minitrain/core/attention_statistics.h>
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "blas.h"
#include "parallel.h"
#include "softmax_kernels.h"
#include "tensor_impl.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

namespace minitrain {

namespace {

struct Geometry {
  int64_t slices, tq, tk, d, dv;
  double scale;
  bool causal;
  int64_t flops_per_slice() const { return 4 * tq * tk * (d + dv); }
};

// Where each slice's matrix lives in one buffer: a row-major (rows x cols) block at offsets[slice],
// rows `ld` elements apart. The heads of a packed projection are such blocks (rows 3C apart).
struct SliceLayout {
  std::vector<int64_t> offsets;
  int64_t ld = 0;
  template <class T>
  T* at(T* base, int64_t slice) const {
    return base + offsets[static_cast<std::size_t>(slice)];
  }
};

// The layout of the (..., rows, cols) tensor `t`, which must have unit column stride.
SliceLayout layout_of(const Tensor& t) {
  const int64_t nd = t.dim(), rows = t.size(-2), cols = t.size(-1);
  SliceLayout l;
  l.ld = rows == 1 ? std::max<int64_t>(cols, 1) : t.strides()[nd - 2];
  const Shape batch(t.shape().begin(), t.shape().end() - 2);
  l.offsets.resize(static_cast<std::size_t>(shape_numel(batch)));
  for (std::size_t i = 0; i < l.offsets.size(); ++i) {
    int64_t off = t.offset(), rest = static_cast<int64_t>(i);
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
      off += (rest % batch[d]) * t.strides()[d];
      rest /= batch[d];
    }
    l.offsets[i] = off;
  }
  return l;
}

// `t` itself when its matrices can be read in place (unit column stride, rows not overlapping), else a
// contiguous copy.
Tensor readable_in_place(const Tensor& in) {
  const int64_t nd = in.dim(), rows = in.size(-2), cols = in.size(-1);
  const bool ok = (in.strides()[nd - 1] == 1 || cols == 1) && (rows == 1 || in.strides()[nd - 2] >= cols);
  return ok ? in.detach() : in.detach().contiguous();
}

// The q, k, v operands (or their gradients) and the output (or its gradient) of every slice, and the
// additive mask's (Tq, Tk) block of every slice (offsets empty without a mask; a broadcast mask has
// repeated offsets, and row stride 0 when it is the same for every query).
struct Buffers {
  SliceLayout q, k, v, out, mask;
};

template <class T>
struct Pointers {
  const T* q;
  const T* k;
  const T* v;
  const T* mask = nullptr;  // the additive attention mask, or null
};

// Dropout masks for all slices, drawn in slice then row-major order before the parallel part, so the
// generator's stream does not depend on the thread count.
template <class T>
void draw_masks(T* mask, int64_t count, double p, Generator& gen) {
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  for (int64_t j = 0; j < count; ++j) mask[j] = gen.uniform() >= p ? keep_scale : T(0);
}

// Causal attention is computed in blocks of query rows: a block's queries see at most the keys up to its
// last row, so the products skip the masked upper triangle (about 40% of attention's GEMM work at T = 256).
constexpr int64_t kQueryBlock = 64;

// Keys visible to query rows [i0, i0 + rows): all of them without a causal mask.
int64_t visible_keys(const Geometry& g, int64_t i0, int64_t rows) {
  return g.causal ? std::clamp<int64_t>(i0 + rows + (g.tk - g.tq), 0, g.tk) : g.tk;
}

// With `stats`, each row's scores as softmax sees them are copied to `row_scores` (Tk elements) and
// summarised with the weights softmax makes of them.
template <class T>
void forward_slice(const Geometry& g, const T* q, int64_t ldq, const T* k, int64_t ldk, const T* v, int64_t ldv,
                   const T* A, int64_t lda, T* P, const T* M, T* dropped, T* out, int64_t ldo,
                   AttentionStatisticsSum* stats, T* row_scores) {
  const int64_t offset = g.tk - g.tq;  // query i sits at key position i + offset
  const int64_t block = g.causal ? kQueryBlock : g.tq;
  for (int64_t i0 = 0; i0 < g.tq; i0 += block) {
    const int64_t rows = std::min(block, g.tq - i0), keys = visible_keys(g, i0, rows);
    T* Pb = P + i0 * g.tk;
    T* ob = out + i0 * ldo;
    if (keys == 0) {  // no visible key at all: zero weights, zero output
      std::fill(Pb, Pb + rows * g.tk, T(0));
      for (int64_t i = 0; i < rows; ++i) std::fill(ob + i * ldo, ob + i * ldo + g.dv, T(0));
      continue;
    }
    gemm(false, true, rows, keys, g.d, static_cast<T>(g.scale), q + i0 * ldq, ldq, k, ldk, T(0), Pb, g.tk);
    for (int64_t i = i0; i < i0 + rows; ++i) {
      // Causal: only the first `visible` keys take part; the masked rest get weight exactly 0 without
      // spending an exp on them. A row with no visible key is all zeros (softmax_lane's masked-lane rule).
      T* row = P + i * g.tk;
      const int64_t visible = g.causal ? std::clamp<int64_t>(i + offset + 1, 0, g.tk) : g.tk;
      if (A) {  // −inf entries of the mask make the key's weight 0; a row of them gives zeros
        const T* a = A + i * lda;
#pragma omp simd
        for (int64_t j = 0; j < visible; ++j) row[j] += a[j];
      }
      if (stats) std::copy(row, row + visible, row_scores);
      softmax_lane(row, row, visible, 1, /*log_output=*/false);
      if (stats) stats->add_row(row_scores, row, visible);
      std::fill(row + visible, row + g.tk, T(0));
    }
    const T* weights = Pb;
    if (M) {
      for (int64_t j = i0 * g.tk; j < (i0 + rows) * g.tk; ++j) dropped[j] = P[j] * M[j];
      weights = dropped + i0 * g.tk;
    }
    gemm(false, false, rows, g.dv, keys, T(1), weights, g.tk, v, ldv, T(0), ob, ldo);
  }
}

template <class T>
void zero_rows(T* a, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t i = 0; i < rows; ++i) std::fill(a + i * ld, a + i * ld + cols, T(0));
}

template <class T>
void backward_slice(const Geometry& g, const T* q, int64_t ldq, const T* k, int64_t ldk, const T* v, int64_t ldv,
                    const T* P, const T* M, const T* G, int64_t ldg, T* dq, int64_t lddq, T* dk, int64_t lddk,
                    T* dv, int64_t lddv, T* dA, T* dP, T* dropped) {
  const T* weights = P;
  if (M) {
    for (int64_t j = 0; j < g.tq * g.tk; ++j) dropped[j] = P[j] * M[j];
    weights = dropped;
  }
  const T scale = static_cast<T>(g.scale);
  const int64_t block = g.causal ? kQueryBlock : g.tq;
  // dK and dV collect a contribution from every query block that sees a key.
  zero_rows(dk, g.tk, g.d, lddk);
  zero_rows(dv, g.tk, g.dv, lddv);
  if (dA) std::fill(dA, dA + g.tq * g.tk, T(0));  // dA = dS, zero wherever P is (masked or invisible)
  for (int64_t i0 = 0; i0 < g.tq; i0 += block) {
    const int64_t rows = std::min(block, g.tq - i0), keys = visible_keys(g, i0, rows);
    if (keys == 0) {
      zero_rows(dq + i0 * lddq, rows, g.d, lddq);
      continue;
    }
    const T* Gb = G + i0 * ldg;
    T* dPb = dP + i0 * g.tk;
    gemm(true, false, keys, g.dv, rows, T(1), weights + i0 * g.tk, g.tk, Gb, ldg, T(1), dv, lddv);  // dV += P'ᵀ dO
    gemm(false, true, rows, keys, g.dv, T(1), Gb, ldg, v, ldv, T(0), dPb, g.tk);                    // dP' = dO Vᵀ
    for (int64_t i = i0; i < i0 + rows; ++i) {
      T* dpr = dP + i * g.tk;
      if (M)
        for (int64_t j = 0; j < keys; ++j) dpr[j] *= M[i * g.tk + j];
      // Keys past the row's last visible one have P = 0, hence dS = 0: only the visible ones are computed.
      const int64_t visible = g.causal ? std::clamp<int64_t>(i + (g.tk - g.tq) + 1, 0, keys) : keys;
      softmax_lane_backward(dpr, P + i * g.tk, dpr, visible, 1, /*log_output=*/false);  // now dS
      std::fill(dpr + visible, dpr + keys, T(0));
      if (dA) std::copy(dpr, dpr + visible, dA + i * g.tk);
    }
    gemm(false, false, rows, g.d, keys, scale, dPb, g.tk, k, ldk, T(0), dq + i0 * lddq, lddq);  // dQ = scale · dS K
    gemm(true, false, keys, g.d, rows, scale, dPb, g.tk, q + i0 * ldq, ldq, T(1), dk, lddk);     // dK += scale · dSᵀ Q
  }
}

// Runs body(slice, scratch...) for every slice, slices split over the threads.
template <class T, class Body>
void for_each_slice(const Geometry& g, int64_t scratch_per_thread, Body body) {
  const int64_t min_slices = std::max<int64_t>(1, 1'000'000 / std::max<int64_t>(g.flops_per_slice(), 1));
  parallel_for(g.slices, min_slices, [&](int64_t s0, int64_t s1) {
    std::unique_ptr<T[]> scratch(new T[static_cast<std::size_t>(scratch_per_thread)]);  // uninitialised
    for (int64_t s = s0; s < s1; ++s) body(s, scratch.get());
  });
}

// The shared forward: fills out (through layout.out), probs and, with dropout, the mask; and `observed`
// when not null, from one sum per slice added in slice order (the same for any thread count).
template <class T>
void attention_forward(const Geometry& g, const Buffers& in, Pointers<T> p, T* out, T* probs, T* mask,
                       AttentionStatistics* observed) {
  const int64_t square = g.tq * g.tk, dropped_size = mask ? square : 0;
  std::vector<AttentionStatisticsSum> sums(observed ? static_cast<std::size_t>(g.slices) : 0);
  for_each_slice<T>(g, dropped_size + (observed ? g.tk : 0), [&](int64_t s, T* scratch) {
    forward_slice(g, in.q.at(p.q, s), in.q.ld, in.k.at(p.k, s), in.k.ld, in.v.at(p.v, s), in.v.ld,
                  p.mask ? in.mask.at(p.mask, s) : nullptr, in.mask.ld, probs + s * square,
                  mask ? mask + s * square : nullptr, scratch, in.out.at(out, s), in.out.ld,
                  observed ? &sums[static_cast<std::size_t>(s)] : nullptr, scratch + dropped_size);
  });
  if (!observed) return;
  AttentionStatisticsSum total;
  for (const AttentionStatisticsSum& sum : sums) total.add(sum);
  *observed = total.mean();
}

// The shared backward: `grad` describes where the incoming gradient (out) and dq, dk, dv go.
// dA, when not null, receives dS of every slice as (slices, Tq, Tk): the gradient of the additive mask
// before it is summed back to the mask's broadcast shape.
template <class T>
void attention_backward(const Geometry& g, const Buffers& in, Pointers<T> p, const T* probs, const T* mask,
                        const Buffers& grad, const T* gout, T* dq, T* dk, T* dv, T* dA = nullptr) {
  const int64_t square = g.tq * g.tk;
  for_each_slice<T>(g, square * (mask ? 2 : 1), [&](int64_t s, T* scratch) {
    backward_slice(g, in.q.at(p.q, s), in.q.ld, in.k.at(p.k, s), in.k.ld, in.v.at(p.v, s), in.v.ld, probs + s * square,
                   mask ? mask + s * square : nullptr, grad.out.at(gout, s), grad.out.ld, grad.q.at(dq, s), grad.q.ld,
                   grad.k.at(dk, s), grad.k.ld, grad.v.at(dv, s), grad.v.ld, dA ? dA + s * square : nullptr, scratch,
                   scratch + square);
  });
}

void check_dropout(const char* op, double dropout_p, bool use_dropout, const Generator* gen) {
  if (!(dropout_p >= 0 && dropout_p < 1)) throw_arg(op, "dropout_p must be in [0, 1), got " + std::to_string(dropout_p));
  if (use_dropout && gen == nullptr) throw_arg(op, "dropout at training time needs a generator");
}


// Whether `shape` broadcasts to `full` (aligned right, each dim 1 or equal) without changing `full`.
bool broadcasts_to(const Shape& shape, const Shape& full) {
  if (shape.size() > full.size()) return false;
  for (std::size_t i = 1; i <= shape.size(); ++i)
    if (shape[shape.size() - i] != 1 && shape[shape.size() - i] != full[full.size() - i]) return false;
  return true;
}

// The attention mask as an additive tensor of q's dtype, viewed as (batch..., Tq, Tk) with unit column
// stride (a broadcast mask stays a stride-0 view, not a copy). A bool mask becomes 0 where true (the
// key takes part) and −inf where false.
Tensor additive_mask_view(const Tensor& attn_mask, const Tensor& q, const Shape& full, const char* op) {
  const DType dt = q.dtype();
  if (attn_mask.dtype() != DType::Bool && attn_mask.dtype() != dt)
    throw_arg(op, std::string("attn_mask must be bool or have q's dtype ") + dtype_name(dt) + ", got " +
                      dtype_name(attn_mask.dtype()));
  if (!broadcasts_to(attn_mask.shape(), full))
    throw_arg(op, "attn_mask of shape " + shape_str(attn_mask.shape()) + " does not broadcast to (..., Tq, Tk) " +
                      shape_str(full));
  Tensor additive = attn_mask.dtype() == DType::Bool
                        ? masked_fill(zeros(attn_mask.shape(), dt), logical_not(attn_mask),
                                      -std::numeric_limits<double>::infinity())
                        : attn_mask.detach();
  Tensor view = additive.expand(full);
  const bool unit_columns = view.strides().back() == 1 || view.size(-1) == 1;
  return unit_columns ? view : view.contiguous();
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, double scale,
                                    bool causal, double dropout_p, bool training, Generator* gen,
                                    AttentionStatistics* observed) {
  return scaled_dot_product_attention(q_in, k_in, v_in, Tensor(), scale, causal, dropout_p, training, gen, observed);
}

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                    const Tensor& attn_mask, double scale, bool causal, double dropout_p,
                                    bool training, Generator* gen, AttentionStatistics* observed) {
  profiler::Scope scope("scaled_dot_product_attention");
  const char* op = "scaled_dot_product_attention";
  check_defined(q_in, op, "q");
  check_defined(k_in, op, "k");
  check_defined(v_in, op, "v");
  check_same_dtype(q_in, k_in, op);
  check_same_dtype(q_in, v_in, op);
  check_floating(q_in, op, "q");
  if (q_in.dim() < 2 || q_in.dim() != k_in.dim() || q_in.dim() != v_in.dim())
    throw_arg(op, "q, k, v must have the same number (>= 2) of dims, got " + shape_str(q_in.shape()) + ", " +
                      shape_str(k_in.shape()) + ", " + shape_str(v_in.shape()));
  const Shape batch(q_in.shape().begin(), q_in.shape().end() - 2);
  const bool batch_ok = Shape(k_in.shape().begin(), k_in.shape().end() - 2) == batch &&
                        Shape(v_in.shape().begin(), v_in.shape().end() - 2) == batch;
  if (!batch_ok || q_in.size(-1) != k_in.size(-1) || k_in.size(-2) != v_in.size(-2))
    throw_arg(op, "shapes q " + shape_str(q_in.shape()) + ", k " + shape_str(k_in.shape()) + ", v " +
                      shape_str(v_in.shape()) + " do not fit (..., Tq, D), (..., Tk, D), (..., Tk, Dv)");
  const bool use_dropout = training && dropout_p > 0;
  check_dropout(op, dropout_p, use_dropout, gen);

  const Geometry g{shape_numel(batch), q_in.size(-2), k_in.size(-2), q_in.size(-1), v_in.size(-1), scale, causal};
  Shape scores_shape = batch;
  scores_shape.insert(scores_shape.end(), {g.tq, g.tk});
  const bool has_mask = attn_mask.defined();
  const Tensor amask = has_mask ? additive_mask_view(attn_mask, q_in, scores_shape, op) : Tensor();
  // Only a floating mask is differentiable (a relative-position bias, say); a bool one is a constant.
  const bool mask_is_input = has_mask && attn_mask.dtype() != DType::Bool;
  const Tensor q = readable_in_place(q_in), k = readable_in_place(k_in), v = readable_in_place(v_in);
  Shape out_shape = batch;
  out_shape.insert(out_shape.end(), {g.tq, g.dv});
  Tensor out = make_tensor(out_shape, q_in.dtype());
  Tensor probs = make_tensor({g.slices, g.tq, g.tk}, q_in.dtype());
  Tensor mask = use_dropout ? make_tensor({g.slices, g.tq, g.tk}, q_in.dtype()) : Tensor();
  const Buffers in{layout_of(q), layout_of(k), layout_of(v), layout_of(out), has_mask ? layout_of(amask) : SliceLayout{}};
  auto pointers = [q, k, v, amask](auto tag) {
    using T = decltype(tag);
    return Pointers<T>{q.impl()->storage->template ptr<T>(), k.impl()->storage->template ptr<T>(),
                       v.impl()->storage->template ptr<T>(),
                       amask.defined() ? amask.impl()->storage->template ptr<T>() : nullptr};
  };

  dispatch(q_in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (use_dropout) draw_masks(mask.data<T>(), mask.numel(), dropout_p, *gen);
    attention_forward(g, in, pointers(tag), out.data<T>(), probs.data<T>(), use_dropout ? mask.data<T>() : nullptr,
                      observed);
  });

  std::vector<Tensor> inputs{q_in, k_in, v_in};
  if (mask_is_input) inputs.push_back(attn_mask);
  return attach(out, op, inputs, [q, k, v, probs, mask, g, in, pointers, scores_shape](const Tensor& g_in, const std::vector<Tensor>& inputs) {
    Tensor gout = g_in.contiguous();
    Tensor dq = make_tensor(q.shape(), q.dtype()), dk = make_tensor(k.shape(), k.dtype()), dv = make_tensor(v.shape(), v.dtype());
    const bool want_dmask = inputs.size() == 4 && inputs[3].requires_grad();
    Tensor dmask = want_dmask ? make_tensor(scores_shape, q.dtype()) : Tensor();
    const Buffers grad{layout_of(dq), layout_of(dk), layout_of(dv), layout_of(gout), {}};
    dispatch(q.dtype(), [&](auto tag) {
      using T = decltype(tag);
      attention_backward(g, in, pointers(tag), probs.data<T>(), mask.defined() ? mask.data<T>() : nullptr, grad,
                         gout.impl()->storage->template ptr<T>(), dq.data<T>(), dk.data<T>(), dv.data<T>(),
                         want_dmask ? dmask.data<T>() : nullptr);
    });
    std::vector<Tensor> grads{inputs[0].requires_grad() ? dq : Tensor(), inputs[1].requires_grad() ? dk : Tensor(),
                              inputs[2].requires_grad() ? dv : Tensor()};
    if (inputs.size() == 4) grads.push_back(want_dmask ? sum_to_shape(dmask, inputs[3].shape()) : Tensor());
    return grads;
  }, {q, k, v});
}

namespace {

// multi_head_attention and grouped_query_attention: `op` names the entry point in errors.
Tensor packed_attention(const char* op, const Tensor& qkv_in, int64_t n_head, int64_t n_kv_head, double scale,
                        bool causal, double dropout_p, bool training, Generator* gen, AttentionStatistics* observed) {
  profiler::Scope scope("multi_head_attention");
  check_floating(qkv_in, op, "qkv");
  const bool grouped = n_kv_head != n_head;
  if (n_head <= 0 || n_kv_head <= 0 || n_head % n_kv_head != 0)
    throw_arg(op, "n_kv_head " + std::to_string(n_kv_head) + " must be positive and divide n_head " +
                      std::to_string(n_head));
  const int64_t columns_per_size = n_head + 2 * n_kv_head;  // q heads, k heads, v heads
  if (qkv_in.dim() != 3 || qkv_in.size(2) % columns_per_size != 0)
    throw_arg(op, "qkv of shape " + shape_str(qkv_in.shape()) +
                      (grouped ? " is not (B, T, (n_head + 2 n_kv_head) * head_size) with n_head " + std::to_string(n_head) +
                                     ", n_kv_head " + std::to_string(n_kv_head)
                               : " is not (B, T, 3C) with C a multiple of n_head " + std::to_string(n_head)));
  const bool use_dropout = training && dropout_p > 0;
  check_dropout(op, dropout_p, use_dropout, gen);

  const int64_t B = qkv_in.size(0), T = qkv_in.size(1), hs = qkv_in.size(2) / columns_per_size;
  const int64_t C = n_head * hs, KV = n_kv_head * hs, W = C + 2 * KV, group = n_head / n_kv_head;
  const Geometry g{B * n_head, T, T, hs, hs, scale, causal};
  const Tensor qkv = qkv_in.detach().contiguous();
  // Slice (b, h) reads rows of q at column h·hs, of k and v at the columns of kv head h / group (so
  // `group` query heads share one key/value head), and writes columns h·hs of the (B, T, C) output.
  auto packed = [&](int64_t row_length, int64_t column, int64_t heads_per_block) {
    SliceLayout l;
    l.ld = row_length;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < n_head; ++h) l.offsets.push_back(b * T * row_length + column + (h / heads_per_block) * hs);
    return l;
  };
  const Buffers in{packed(W, 0, 1), packed(W, C, group), packed(W, C + KV, group), packed(C, 0, 1), {}};  // no mask
  Tensor out = make_tensor({B, T, C}, qkv.dtype());
  Tensor probs = make_tensor({g.slices, T, T}, qkv.dtype());
  Tensor mask = use_dropout ? make_tensor({g.slices, T, T}, qkv.dtype()) : Tensor();

  dispatch(qkv.dtype(), [&](auto tag) {
    using E = decltype(tag);
    if (use_dropout) draw_masks(mask.data<E>(), mask.numel(), dropout_p, *gen);
    const E* base = qkv.data<E>();
    attention_forward(g, in, Pointers<E>{base, base, base, nullptr}, out.data<E>(), probs.data<E>(),
                      use_dropout ? mask.data<E>() : nullptr, observed);
  });

  return attach(out, op, {qkv_in}, [qkv, probs, mask, g, in, B, T, hs, C, KV, W, n_head, n_kv_head, group](
                                       const Tensor& g_in, const std::vector<Tensor>&) {
    Tensor gout = g_in.contiguous();
    Tensor dqkv = make_tensor(qkv.shape(), qkv.dtype());
    if (group == 1) {  // every element of dqkv is written by exactly one slice
      dispatch(qkv.dtype(), [&](auto tag) {
        using E = decltype(tag);
        const E* base = qkv.data<E>();
        E* d = dqkv.data<E>();
        attention_backward(g, in, Pointers<E>{base, base, base, nullptr}, probs.data<E>(),
                           mask.defined() ? mask.data<E>() : nullptr, in, gout.data<E>(), d, d, d);
      });
      return std::vector<Tensor>{dqkv};
    }
    // Shared kv heads: each query head's slice writes its own dK, dV (B·n_head, T, hs) — slices of one
    // group run on different threads, so they must not accumulate into one place — and the group's
    // contributions are then summed in head order (the same result for any thread count).
    Tensor dk_heads = make_tensor({g.slices, T, hs}, qkv.dtype()), dv_heads = make_tensor({g.slices, T, hs}, qkv.dtype());
    SliceLayout per_head;
    per_head.ld = hs;
    for (int64_t s = 0; s < g.slices; ++s) per_head.offsets.push_back(s * T * hs);
    const Buffers grad{in.q, per_head, per_head, in.out, {}};
    dispatch(qkv.dtype(), [&](auto tag) {
      using E = decltype(tag);
      const E* base = qkv.data<E>();
      E* d = dqkv.data<E>();
      attention_backward(g, in, Pointers<E>{base, base, base, nullptr}, probs.data<E>(),
                         mask.defined() ? mask.data<E>() : nullptr, grad, gout.data<E>(), d, dk_heads.data<E>(),
                         dv_heads.data<E>());
      const E* dk = dk_heads.data<E>();
      const E* dv = dv_heads.data<E>();
      parallel_for(B * n_kv_head, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t b = p / n_kv_head, kv = p % n_kv_head;
          for (int64_t t = 0; t < T; ++t) {
            E* dk_row = d + (b * T + t) * W + C + kv * hs;
            E* dv_row = dk_row + KV;
            std::fill(dk_row, dk_row + hs, E(0));
            std::fill(dv_row, dv_row + hs, E(0));
            for (int64_t j = 0; j < group; ++j) {
              const int64_t offset = ((b * n_head + kv * group + j) * T + t) * hs;
              for (int64_t c = 0; c < hs; ++c) {
                dk_row[c] += dk[offset + c];
                dv_row[c] += dv[offset + c];
              }
            }
          }
        }
      });
    });
    return std::vector<Tensor>{dqkv};
  }, {qkv});
}

}  // namespace

Tensor multi_head_attention(const Tensor& qkv, int64_t n_head, double scale, bool causal, double dropout_p,
                            bool training, Generator* gen, AttentionStatistics* observed) {
  if (n_head <= 0) throw_arg("multi_head_attention", "n_head must be positive, got n_head " + std::to_string(n_head));
  return packed_attention("multi_head_attention", qkv, n_head, n_head, scale, causal, dropout_p, training, gen, observed);
}

Tensor grouped_query_attention(const Tensor& qkv, int64_t n_head, int64_t n_kv_head, double scale, bool causal,
                               double dropout_p, bool training, Generator* gen, AttentionStatistics* observed) {
  return packed_attention("grouped_query_attention", qkv, n_head, n_kv_head, scale, causal, dropout_p, training, gen,
                          observed);
}

}  // namespace minitrain
