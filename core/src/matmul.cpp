// Batched matrix product through BLAS gemm. Transposed views are passed as transpose flags with their
// leading dimension, so neither forward nor backward (which multiplies by transposes) copies them.
// <cblas.h> lives here and nowhere near xtensor-blas (their declarations clash).
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "blas.h"
#include "parallel.h"
#include "tensor_impl.h"

#include <cblas.h>

#include <omp.h>

#include <algorithm>

namespace minitrain {

namespace {

// A thread's share must be worth waking it for: about a megaflop (~15 us of single-core sgemm here).
constexpr double kMinFlopsPerThread = 1e6;
// A large GEMM is cut into at most this many parts along the longer side of C, whatever the thread count
// (split_gemm): one per core on the 2-core machines this is tuned on.
constexpr int64_t kGemmParts = 2;

struct GemmOperand {
  bool transposed = false;
  int64_t ld = 0;
};

// How a (rows x cols) matrix with strides (row_stride, col_stride) can be handed to row-major gemm
// without a copy; false if it cannot (then the caller makes it contiguous).
bool gemm_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride, GemmOperand& out) {
  const int64_t min_cols = std::max<int64_t>(cols, 1), min_rows = std::max<int64_t>(rows, 1);
  if (col_stride == 1 || cols == 1) {
    const int64_t ld = rows == 1 ? min_cols : row_stride;
    if (ld >= min_cols) {
      out = {false, ld};
      return true;
    }
  }
  if (row_stride == 1 || rows == 1) {
    const int64_t ld = cols == 1 ? min_rows : col_stride;
    if (ld >= min_rows) {
      out = {true, ld};
      return true;
    }
  }
  return false;
}

bool matrix_layout(const Tensor& t, GemmOperand& out) {
  const int64_t nd = t.dim();
  return gemm_layout(t.shape()[nd - 2], t.shape()[nd - 1], t.strides()[nd - 2], t.strides()[nd - 1], out);
}

// Storage offset of batch element `index` (row-major over batch_shape) for a tensor expanded to it.
int64_t batch_offset(const Tensor& t, const Shape& batch_shape, int64_t index) {
  int64_t off = t.offset();
  for (int64_t d = static_cast<int64_t>(batch_shape.size()) - 1; d >= 0; --d) {
    off += (index % batch_shape[d]) * t.strides()[d];
    index /= batch_shape[d];
  }
  return off;
}

Tensor matmul_forward(Tensor a, Tensor b) {
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2);
  const Shape batch_b(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  Shape a_shape = batch, b_shape = batch, out_shape = batch;
  a_shape.insert(a_shape.end(), {m, k});
  b_shape.insert(b_shape.end(), {k, n});
  out_shape.insert(out_shape.end(), {m, n});
  a = a.expand(a_shape);
  b = b.expand(b_shape);
  GemmOperand la, lb;
  if (!matrix_layout(a, la)) a = a.contiguous(), matrix_layout(a, la);
  if (!matrix_layout(b, lb)) b = b.contiguous(), matrix_layout(b, lb);

  if (m == 0 || n == 0 || k == 0) return zeros(out_shape, a.dtype());  // an empty sum is 0
  Tensor out = empty(out_shape, a.dtype());  // gemm with beta = 0 writes every element
  const int64_t batches = shape_numel(batch);
  dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* ap = a.impl()->storage->template ptr<T>();
    const T* bp = b.impl()->storage->template ptr<T>();
    T* cp = out.data<T>();
    // Many small products (attention's per-head ones) are split by batch; a single large one splits
    // itself inside gemm().
    const double flops_per_batch = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    const auto min_batches = static_cast<int64_t>(kMinFlopsPerThread / flops_per_batch) + 1;
    parallel_for(batches, min_batches, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i)
        gemm(la.transposed, lb.transposed, m, n, k, T(1), ap + batch_offset(a, batch, i), la.ld,
             bp + batch_offset(b, batch, i), lb.ld, T(0), cp + i * m * n, n);
    });
  });
  return out;
}

void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
               const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

void blas_gemv(bool trans, int64_t rows, int64_t cols, float alpha, const float* a, int64_t lda, const float* x,
               int64_t incx, float beta, float* y, int64_t incy) {
  cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, int(rows), int(cols), alpha, a, int(lda), x,
              int(incx), beta, y, int(incy));
}

void blas_gemv(bool trans, int64_t rows, int64_t cols, double alpha, const double* a, int64_t lda, const double* x,
               int64_t incx, double beta, double* y, int64_t incy) {
  cblas_dgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, int(rows), int(cols), alpha, a, int(lda), x,
              int(incx), beta, y, int(incy));
}

// A product with a single row (m = 1) or column (n = 1) as a matrix-vector product: OpenBLAS's gemm
// packs the whole matrix operand first, which for one row costs as much again as the product itself
// (this is every Linear layer of KV-cached generation).
template <class T>
void vector_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                 int64_t ldb, T beta, T* c, int64_t ldc) {
  if (beta == T(0)) {
    // c may be uninitialised (a recycled buffer): gemv scales it by beta first, and whether 0 times a NaN
    // left there gives 0 is up to the BLAS's scal kernel. Zeroing the one row or column is cheap.
    const int64_t count = m == 1 ? n : m, step = m == 1 ? 1 : ldc;
    for (int64_t i = 0; i < count; ++i) c[i * step] = T(0);
  }
  if (m == 1) {
    // c (1 x n) = a (1 x k) · op(B): c = op(B)ᵀ aᵀ. a's k elements are 1 apart, or lda apart if stored as a column.
    const int64_t inc_a = ta ? lda : 1;
    if (tb)  // B stored (n x k)
      blas_gemv(false, n, k, alpha, b, ldb, a, inc_a, beta, c, 1);
    else     // B stored (k x n)
      blas_gemv(true, k, n, alpha, b, ldb, a, inc_a, beta, c, 1);
    return;
  }
  // n == 1: c (m x 1, elements ldc apart) = op(A) · b (k x 1).
  const int64_t inc_b = tb ? 1 : ldb;
  if (ta)  // A stored (k x m)
    blas_gemv(true, k, m, alpha, a, lda, b, inc_b, beta, c, ldc);
  else     // A stored (m x k)
    blas_gemv(false, m, k, alpha, a, lda, b, inc_b, beta, c, ldc);
}

// Writes `bias` (n values) into every row of the (m x n) block at c: the starting value of a gemm with
// beta = 1, so a Linear layer's bias costs no pass of its own (with beta = 0 the BLAS would zero C first).
template <class T>
void fill_rows_with_bias(T* c, int64_t ldc, int64_t m, int64_t n, const T* bias) {
  for (int64_t i = 0; i < m; ++i) std::copy(bias, bias + n, c + i * ldc);
}

// One GEMM split over the OpenMP threads along the longer side of C: each thread computes a block of
// rows (or columns) of C with single-threaded BLAS. Each element of C is still one BLAS dot product over
// all of k, so the split does not change how it is summed. With `bias`, C = op(A)·op(B) + bias (added
// to every row) and beta must be 0.
template <class T>
void split_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, T beta, T* c, int64_t ldc, const T* bias = nullptr) {
  blas_single_threaded();
  const T beta_used = bias ? T(1) : beta;
  if (m == 1 || n == 1) {
    if (bias) fill_rows_with_bias(c, ldc, m, n, bias);
    return vector_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta_used, c, ldc);
  }
  const int64_t line_length = m >= n ? n : m;  // a row of C when splitting rows, else a column
  const double flops_per_line = 2.0 * static_cast<double>(line_length) * static_cast<double>(k);
  const auto min_lines = static_cast<int64_t>(kMinFlopsPerThread / std::max(flops_per_line, 1.0)) + 1;
  constexpr int64_t kTile = 16;  // keep chunk edges on the kernels' register tiles
  // The cut into parts depends on the shape only, not on the thread count: OpenBLAS rounds a block of
  // 384 columns differently from the whole 768 (measured on its Haswell/Zen kernels), so cutting per
  // thread would make results depend on the number of threads.
  const int64_t parts = std::min(kGemmParts, (m >= n ? m : n) / min_lines);
  if (m >= n) {
    parallel_parts(m, parts, [&](int64_t r0, int64_t r1) {
      if (bias) fill_rows_with_bias(c + r0 * ldc, ldc, r1 - r0, n, bias);
      blas_gemm(ta, tb, r1 - r0, n, k, alpha, ta ? a + r0 : a + r0 * lda, lda, b, ldb, beta_used, c + r0 * ldc,
                ldc);
    }, kTile);
  } else {
    parallel_parts(n, parts, [&](int64_t c0, int64_t c1) {
      if (bias) fill_rows_with_bias(c + c0, ldc, m, c1 - c0, bias + c0);
      blas_gemm(ta, tb, m, c1 - c0, k, alpha, a, lda, tb ? b + c0 * ldb : b + c0, ldb, beta_used, c + c0, ldc);
    }, kTile);
  }
}

// The gradients of a·b, each only if asked for: dA = G·Bᵀ, dB = Aᵀ·G, summed over broadcast batch dims.
// A gradient takes its input's layout: for an input stored transposed (a weight used as W.transpose(), as
// Linear does) it is computed as the transpose of (dB)ᵀ = Gᵀ·A, so W's gradient arrives contiguous instead
// of needing a copy.
std::vector<Tensor> matmul_grads(const Tensor& g, const Tensor& a_in, const Tensor& b_in, bool need_a, bool need_b) {
  auto stored_transposed = [](const Tensor& t) {
    const int64_t nd = t.dim();
    return t.size(-1) > 1 && t.size(-2) > 1 && t.strides()[nd - 2] == 1 && t.strides()[nd - 1] != 1;
  };
  Tensor ga, gb;
  if (need_a && need_b && a_in.dim() == 2 && b_in.dim() == 2 && omp_get_max_threads() == 2 && !omp_in_parallel()) {
    // On two threads, the two products (equal work: 2·m·n·k each) run side by side, one per thread with
    // single-threaded BLAS, instead of both threads splitting each in turn: one fork instead of two, and
    // no operand packed twice. The operand views are made here, not in the worker: grad mode is per
    // thread, and the worker must not record autograd nodes.
    const Tensor a = a_in.detach(), b = b_in.detach(), gd = g.detach();
    const bool ta = stored_transposed(a), tb = stored_transposed(b);
    const Tensor ga_left = ta ? b : gd, ga_right = ta ? gd.transpose(0, 1) : b.transpose(0, 1);
    const Tensor gb_left = tb ? gd.transpose(0, 1) : a.transpose(0, 1), gb_right = tb ? a : gd;
#pragma omp parallel sections num_threads(2)
    {
#pragma omp section
      ga = matmul_forward(ga_left, ga_right);
#pragma omp section
      gb = matmul_forward(gb_left, gb_right);
    }
    return std::vector<Tensor>{ta ? ga.transpose(0, 1) : ga, tb ? gb.transpose(0, 1) : gb};
  }
  if (need_a) {
    ga = stored_transposed(a_in) ? matmul(b_in, g.transpose(-1, -2)).transpose(-1, -2)
                                 : matmul(g, b_in.transpose(-1, -2));
    ga = sum_to_shape(ga, a_in.shape());
  }
  if (need_b) {
    gb = stored_transposed(b_in) ? matmul(g.transpose(-1, -2), a_in).transpose(-1, -2)
                                 : matmul(a_in.transpose(-1, -2), g);
    gb = sum_to_shape(gb, b_in.shape());
  }
  return std::vector<Tensor>{ga, gb};
}

}  // namespace

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  split_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  split_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  profiler::Scope scope("matmul");
  check_defined(a, "matmul", "first operand");
  check_defined(b, "matmul", "second operand");
  if (a.dim() < 2 || b.dim() < 2)
    throw_arg("matmul", "needs tensors with at least 2 dims, got shapes " + shape_str(a.shape()) + " and " +
                            shape_str(b.shape()) + " (unsqueeze vectors first)");
  if (a.size(-1) != b.size(-2))
    throw_arg("matmul", "shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) + " do not align");
  check_same_dtype(a, b, "matmul");
  check_floating(a, "matmul", "first operand");
  Tensor out = matmul_forward(a.detach(), b.detach());
  return attach(out, "matmul", {a, b}, [](const Tensor& g, const std::vector<Tensor>& in) {
    return matmul_grads(g, in[0], in[1], in[0].requires_grad(), in[1].requires_grad());
  }, {a, b});
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  profiler::Scope scope("linear");
  check_defined(x, "linear");
  check_defined(weight, "linear", "weight");
  if (weight.dim() != 2) throw_arg("linear", "weight must be (out, in), got shape " + shape_str(weight.shape()));
  const int64_t out_features = weight.size(0), in_features = weight.size(1);
  if (x.dim() < 1 || x.size(-1) != in_features)
    throw_arg("linear", "input " + shape_str(x.shape()) + " does not end in in_features " +
                            std::to_string(in_features) + " of weight " + shape_str(weight.shape()));
  check_same_dtype(x, weight, "linear");
  check_floating(x, "linear");
  if (bias.defined()) {
    if (bias.shape() != Shape{out_features})
      throw_arg("linear", "bias of shape " + shape_str(bias.shape()) + " does not match weight " +
                              shape_str(weight.shape()));
    check_same_dtype(x, bias, "linear");
  }
  const int64_t rows = in_features == 0 ? 0 : x.numel() / in_features;
  const Tensor x2 = x.detach().contiguous().reshape({rows, in_features});
  const Tensor w = weight.detach().contiguous();
  const Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out;
  if (rows == 0 || out_features == 0 || in_features == 0) {
    out = b.defined() ? add(zeros(out_shape, x.dtype()), b) : zeros(out_shape, x.dtype());
  } else {
    out = empty(out_shape, x.dtype());
    dispatch(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      // out = x2 · wᵀ + b: w is (out, in) row-major, i.e. wᵀ stored transposed.
      split_gemm(false, true, rows, out_features, in_features, T(1), x2.data<T>(), in_features, w.data<T>(),
                 in_features, T(0), out.data<T>(), out_features, b.defined() ? b.data<T>() : nullptr);
    });
  }
  return attach(out, "linear", {x, weight, bias}, [x2, w](const Tensor& g, const std::vector<Tensor>& in) {
    const Tensor g2 = g.contiguous().reshape({x2.size(0), w.size(0)});
    // As matmul(x2, wᵀ): wᵀ is a transposed view, so w's gradient comes back in w's own layout.
    std::vector<Tensor> grads =
        matmul_grads(g2, x2, w.transpose(0, 1), in[0].requires_grad(), in[1].requires_grad());
    Tensor gx = grads[0].defined() ? grads[0].reshape(in[0].shape()) : Tensor();
    Tensor gw = grads[1].defined() ? grads[1].transpose(0, 1) : Tensor();
    Tensor gb = in[2].defined() && in[2].requires_grad() ? sum_to_shape(g2, in[2].shape()) : Tensor();
    return std::vector<Tensor>{gx, gw, gb};
  }, {x2, w});
}

}  // namespace minitrain
