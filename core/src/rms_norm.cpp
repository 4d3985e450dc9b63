// RMS normalisation over the last dim (torch.nn.functional.rms_norm): fused forward and backward on
// contiguous rows, structured like layer_norm.cpp.
//
//   y = x · r · w,   r = 1 / sqrt(mean(x²) + eps)   (per row)
//   dx = r · (dh − x̂ · mean(dh · x̂)),   dh = g · w,   x̂ = x · r
//   dw = Σ_rows g · x̂
//
// Precision: a row's sum of squares and the two sums of the backward are accumulated in double, so float32
// rows of a few thousand elements (or of large magnitude) lose nothing there; r is computed in double
// and rounded once. There is no centring, so unlike LayerNorm no mean has to be carried as a float pair.
// The per-element work runs in the tensor's own type, where float32 vectors are twice as wide.
//
// The weight gradient is a sum over rows. Each block of kRowsPerBlock rows adds up its own partial sum
// while computing dx, and the blocks' partials are then added in block order: the same sums in the same
// order for any thread count.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "parallel.h"
#include "tensor_impl.h"

#include <cmath>
#include <vector>

namespace minitrain {

namespace {
constexpr int64_t kRowsPerThread = 64;
constexpr int64_t kRowsPerBlock = 32;

template <class T>
void rms_norm_rows(const T* xp, const T* wp, T* yp, double* rstd, int64_t r0, int64_t r1, int64_t width,
                   double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* row = xp + r * width;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < width; ++c) ss += static_cast<double>(row[c]) * static_cast<double>(row[c]);
    rstd[r] = 1.0 / std::sqrt(ss / static_cast<double>(width) + eps);
    const T rs = static_cast<T>(rstd[r]);
    T* out = yp + r * width;
#pragma omp simd
    for (int64_t c = 0; c < width; ++c) out[c] = row[c] * rs * wp[c];
  }
}

// dx for rows [r0, r1), and the block's partial sum of g·x̂ (for dw), in T.
template <class T>
void rms_norm_backward_rows(const T* xp, const T* gp, const T* wp, const double* rstd, T* dp, T* dw_part,
                            int64_t r0, int64_t r1, int64_t width) {
  for (int64_t c = 0; c < width; ++c) dw_part[c] = T(0);
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = xp + r * width;
    const T* gr = gp + r * width;
    const T rs = static_cast<T>(rstd[r]);
    double sum_dh_xhat = 0;
#pragma omp simd reduction(+ : sum_dh_xhat)
    for (int64_t c = 0; c < width; ++c) {
      const T xh = xr[c] * rs;
      sum_dh_xhat += static_cast<double>(gr[c] * wp[c] * xh);
      dw_part[c] += gr[c] * xh;
    }
    const T mean_dh_xhat = static_cast<T>(sum_dh_xhat / static_cast<double>(width));
    T* dr = dp + r * width;
#pragma omp simd
    for (int64_t c = 0; c < width; ++c) dr[c] = rs * (gr[c] * wp[c] - xr[c] * rs * mean_dh_xhat);
  }
}
}  // namespace

Tensor rms_norm(const Tensor& x_in, const Tensor& weight, double eps) {
  profiler::Scope scope("rms_norm");
  check_floating(x_in, "rms_norm");
  if (x_in.dim() < 1) throw_arg("rms_norm", "needs at least one dim (it normalises the last), got a scalar input []");
  const int64_t width = x_in.size(-1);
  if (weight.defined()) {
    if (weight.shape() != Shape{width})
      throw_arg("rms_norm", "weight of shape " + shape_str(weight.shape()) + " does not match the last dim of input " +
                                shape_str(x_in.shape()));
    if (weight.dtype() != x_in.dtype())
      throw_arg("rms_norm", std::string("weight ") + shape_str(weight.shape()) + " is " + dtype_name(weight.dtype()) +
                                " but input " + shape_str(x_in.shape()) + " is " + dtype_name(x_in.dtype()) +
                                " (convert one with .to())");
  }
  if (!(eps >= 0)) throw_arg("rms_norm", "eps must be >= 0, got " + std::to_string(eps));
  Tensor x = x_in.detach().contiguous();
  // Without a weight, a row of ones keeps the loops free of branches, so they vectorise.
  Tensor w = weight.defined() ? weight.detach().contiguous() : ones({width}, x.dtype());
  const int64_t rows = width == 0 ? 0 : x.numel() / width;
  Tensor y = make_tensor(x.shape(), x.dtype());
  auto rstd = std::make_shared<std::vector<double>>(rows);
  // x: (..., C), w: (C) -> y: (..., C); rstd: one double per row, kept for backward.
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const T* wp = w.data<T>();
    T* yp = y.data<T>();
    parallel_for(rows, kRowsPerThread, [&](int64_t r0, int64_t r1) {
      rms_norm_rows(xp, wp, yp, rstd->data(), r0, r1, width, eps);
    });
  });
  return attach(y, "rms_norm", {x_in, weight}, [x, w, rstd, rows, width](const Tensor& g_in, const std::vector<Tensor>& in) {
    Tensor g = g_in.contiguous();
    Tensor dx = make_tensor(x.shape(), x.dtype());
    const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
    Tensor dw = make_tensor({width}, x.dtype());
    dispatch(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.data<T>();
      const T* gp = g.data<T>();
      const T* wp = w.data<T>();
      T* dp = dx.data<T>();
      std::vector<T> partials(static_cast<std::size_t>(blocks * width));  // one dw partial per block
      parallel_for(blocks, kRowsPerThread / kRowsPerBlock, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k)
          rms_norm_backward_rows(xp, gp, wp, rstd->data(), dp, partials.data() + k * width, k * kRowsPerBlock,
                                 std::min(rows, (k + 1) * kRowsPerBlock), width);
      });
      T* dwp = dw.data<T>();
      for (int64_t c = 0; c < width; ++c) {
        double s = 0;
        for (int64_t k = 0; k < blocks; ++k) s += static_cast<double>(partials[k * width + c]);
        dwp[c] = static_cast<T>(s);
      }
    });
    return std::vector<Tensor>{dx, in[1].defined() ? dw : Tensor()};
  }, {x, w});
}

}  // namespace minitrain
