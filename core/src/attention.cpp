// Fused scaled dot-product attention with its own backward. Per (batch, head) slice:
//   S = scale · Q Kᵀ,  S[i, j] = −inf where causal and j > i + (Tk − Tq),  P = softmax_rows(S),
//   P' = P ⊙ M (dropout mask, 0 or 1/(1−p)),  O = P' V.
// Backward, from dO:
//   dV = P'ᵀ dO,  dP = (dO Vᵀ) ⊙ M,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = scale · dS K,
//   dK = scale · dSᵀ Q.
// Only P and the mask are saved. The composed version in nn/attention (matmul, masked_fill, softmax,
// dropout, matmul) is the readable reference; tests check that both agree in values and gradients.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "blas.h"
#include "softmax_kernels.h"
#include "tensor_impl.h"

#include <cmath>
#include <algorithm>

namespace minitrain {

namespace {

struct AttentionShape {
  int64_t slices, tq, tk, d, dv;
};

// A (..., rows, cols) operand read in place: each slice is a row-major matrix whose rows are `ld` apart.
// The heads of a packed q/k/v projection are such views (rows 3C apart), so they need no copy.
struct MatrixSlices {
  Tensor t;
  std::vector<int64_t> offsets;  // storage offset of each slice
  int64_t ld = 0;

  explicit MatrixSlices(const Tensor& in) {
    const int64_t nd = in.dim(), rows = in.size(-2), cols = in.size(-1);
    const bool in_place = (in.strides()[nd - 1] == 1 || cols == 1) && (rows == 1 || in.strides()[nd - 2] >= cols);
    t = in_place ? in.detach() : in.detach().contiguous();
    ld = rows == 1 ? std::max<int64_t>(cols, 1) : t.strides()[nd - 2];
    const Shape batch(t.shape().begin(), t.shape().end() - 2);
    offsets.resize(static_cast<std::size_t>(shape_numel(batch)));
    for (std::size_t i = 0; i < offsets.size(); ++i) {
      int64_t off = t.offset(), rest = static_cast<int64_t>(i);
      for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
        off += (rest % batch[d]) * t.strides()[d];
        rest /= batch[d];
      }
      offsets[i] = off;
    }
  }
  template <class T>
  const T* slice(int64_t i) const {
    return t.impl()->storage->template ptr<T>() + offsets[i];
  }
};

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, double scale,
                                    bool causal, double dropout_p, bool training, Generator* gen) {
  profiler::Scope scope("scaled_dot_product_attention");
  const char* op = "scaled_dot_product_attention";
  check_defined(q_in, op, "q");
  check_defined(k_in, op, "k");
  check_defined(v_in, op, "v");
  check_same_dtype(q_in, k_in, op);
  check_same_dtype(q_in, v_in, op);
  if (q_in.dim() < 2 || q_in.dim() != k_in.dim() || q_in.dim() != v_in.dim())
    throw_arg(op, "q, k, v must have the same number (>= 2) of dims, got " + shape_str(q_in.shape()) + ", " +
                      shape_str(k_in.shape()) + ", " + shape_str(v_in.shape()));
  const Shape batch(q_in.shape().begin(), q_in.shape().end() - 2);
  const bool batch_ok = Shape(k_in.shape().begin(), k_in.shape().end() - 2) == batch &&
                        Shape(v_in.shape().begin(), v_in.shape().end() - 2) == batch;
  if (!batch_ok || q_in.size(-1) != k_in.size(-1) || k_in.size(-2) != v_in.size(-2))
    throw_arg(op, "shapes q " + shape_str(q_in.shape()) + ", k " + shape_str(k_in.shape()) + ", v " +
                      shape_str(v_in.shape()) + " do not fit (..., Tq, D), (..., Tk, D), (..., Tk, Dv)");
  if (!(dropout_p >= 0 && dropout_p < 1)) throw_arg(op, "dropout_p must be in [0, 1), got " + std::to_string(dropout_p));
  const bool use_dropout = training && dropout_p > 0;
  if (use_dropout && gen == nullptr) throw_arg(op, "dropout at training time needs a generator");

  const AttentionShape s{shape_numel(batch), q_in.size(-2), k_in.size(-2), q_in.size(-1), v_in.size(-1)};
  const int64_t offset = s.tk - s.tq;  // query i sits at key position i + offset
  const MatrixSlices q(q_in), k(k_in), v(v_in);
  Shape out_shape = batch;
  out_shape.insert(out_shape.end(), {s.tq, s.dv});
  Tensor out = make_tensor(out_shape, q_in.dtype());
  Tensor probs = make_tensor({s.slices, s.tq, s.tk}, q_in.dtype());
  Tensor mask = use_dropout ? make_tensor({s.slices, s.tq, s.tk}, q_in.dtype()) : Tensor();

  dispatch(q_in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* pp = probs.data<T>();
    T* op_ = out.data<T>();
    T* mp = use_dropout ? mask.data<T>() : nullptr;
    std::vector<T> dropped(use_dropout ? s.tq * s.tk : 0);
    const T keep_scale = static_cast<T>(1.0 / (1.0 - dropout_p));
    for (int64_t b = 0; b < s.slices; ++b) {
      T* P = pp + b * s.tq * s.tk;
      gemm(false, true, s.tq, s.tk, s.d, static_cast<T>(scale), q.slice<T>(b), q.ld, k.slice<T>(b), k.ld, T(0), P, s.tk);
      for (int64_t i = 0; i < s.tq; ++i) {
        // Causal: only the first `visible` keys take part; the masked rest get weight exactly 0 without
        // spending an exp on them. A row with no visible key is all zeros (softmax_lane's masked-lane rule).
        T* row = P + i * s.tk;
        const int64_t visible = causal ? std::clamp<int64_t>(i + offset + 1, 0, s.tk) : s.tk;
        softmax_lane(row, row, visible, 1, /*log_output=*/false);
        std::fill(row + visible, row + s.tk, T(0));
      }
      const T* weights = P;
      if (use_dropout) {
        T* M = mp + b * s.tq * s.tk;
        for (int64_t j = 0; j < s.tq * s.tk; ++j) {
          M[j] = gen->uniform() >= dropout_p ? keep_scale : T(0);
          dropped[j] = P[j] * M[j];
        }
        weights = dropped.data();
      }
      gemm(false, false, s.tq, s.dv, s.tk, T(1), weights, s.tk, v.slice<T>(b), v.ld, T(0),
           op_ + b * s.tq * s.dv, s.dv);
    }
  });

  return attach(out, op, {q_in, k_in, v_in}, [q, k, v, probs, mask, s, scale](const Tensor& g_in, const std::vector<Tensor>& in) {
    Tensor g = g_in.contiguous();
    Tensor dq = make_tensor(q.t.shape(), q.t.dtype()), dk = make_tensor(k.t.shape(), k.t.dtype()),
           dv = make_tensor(v.t.shape(), v.t.dtype());
    dispatch(q.t.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* pp = probs.data<T>();
      const T* mp = mask.defined() ? mask.data<T>() : nullptr;
      const T* gp = g.data<T>();
      std::vector<T> dP(s.tq * s.tk), dropped(mp ? s.tq * s.tk : 0);
      for (int64_t b = 0; b < s.slices; ++b) {
        const T* P = pp + b * s.tq * s.tk;
        const T* M = mp ? mp + b * s.tq * s.tk : nullptr;
        const T* G = gp + b * s.tq * s.dv;
        const T* weights = P;
        if (M) {
          for (int64_t j = 0; j < s.tq * s.tk; ++j) dropped[j] = P[j] * M[j];
          weights = dropped.data();
        }
        // dV = P'ᵀ dO
        gemm(true, false, s.tk, s.dv, s.tq, T(1), weights, s.tk, G, s.dv, T(0), dv.data<T>() + b * s.tk * s.dv, s.dv);
        // dP = (dO Vᵀ) ⊙ M
        gemm(false, true, s.tq, s.tk, s.dv, T(1), G, s.dv, v.slice<T>(b), v.ld, T(0), dP.data(), s.tk);
        for (int64_t i = 0; i < s.tq; ++i) {
          T* dpr = dP.data() + i * s.tk;
          const T* pr = P + i * s.tk;
          if (M)
            for (int64_t j = 0; j < s.tk; ++j) dpr[j] *= M[i * s.tk + j];
          softmax_lane_backward(dpr, pr, dpr, s.tk, 1, /*log_output=*/false);  // now dS
        }
        gemm(false, false, s.tq, s.d, s.tk, static_cast<T>(scale), dP.data(), s.tk, k.slice<T>(b), k.ld, T(0),
             dq.data<T>() + b * s.tq * s.d, s.d);
        gemm(true, false, s.tk, s.d, s.tq, static_cast<T>(scale), dP.data(), s.tk, q.slice<T>(b), q.ld, T(0),
             dk.data<T>() + b * s.tk * s.d, s.d);
      }
    });
    return std::vector<Tensor>{in[0].requires_grad() ? dq : Tensor(), in[1].requires_grad() ? dk : Tensor(),
                               in[2].requires_grad() ? dv : Tensor()};
  });
}

}  // namespace minitrain
