// Layer normalisation over the last dim: fused forward and backward on contiguous rows.
//
// Precision: row statistics are two-pass sums in double (mean first, then the centred sum of squares), so
// rows with a mean of 1e4 or constant rows keep their precision. The per-element work runs in the
// tensor's own type (float32 vectors are twice as wide as double ones): x is centred as
// (x − mean_hi) − mean_lo, the double mean split into two floats, which is exact to float rounding of
// the centred value even when the mean is 1e4 times the spread.
//
// The weight and bias gradients are sums over rows. Each block of kRowsPerBlock rows adds up its own
// partial sum while computing dx (x and g are read once), and the blocks' partials are then added in block
// order: the same sums in the same order for any thread count.
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

// A row's mean as a float pair (hi + lo == the double mean to ~2^-48 relative) and 1/std.
template <class T>
struct RowStats {
  T mean_hi, mean_lo, rstd;
};

template <class T>
RowStats<T> row_stats(double mean, double rstd) {
  const T hi = static_cast<T>(mean);
  return {hi, static_cast<T>(mean - static_cast<double>(hi)), static_cast<T>(rstd)};
}

template <class T>
void layer_norm_rows(const T* xp, const T* wp, const T* bp, T* yp, double* mean, double* rstd, int64_t r0,
                     int64_t r1, int64_t width, double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* row = xp + r * width;
    double m = 0;
#pragma omp simd reduction(+ : m)
    for (int64_t c = 0; c < width; ++c) m += static_cast<double>(row[c]);
    m /= static_cast<double>(width);
    double v = 0;
#pragma omp simd reduction(+ : v)
    for (int64_t c = 0; c < width; ++c) {
      const double d = static_cast<double>(row[c]) - m;
      v += d * d;
    }
    v /= static_cast<double>(width);
    mean[r] = m;
    rstd[r] = 1.0 / std::sqrt(v + eps);
    const RowStats<T> st = row_stats<T>(m, rstd[r]);
    T* out = yp + r * width;
#pragma omp simd
    for (int64_t c = 0; c < width; ++c) out[c] = ((row[c] - st.mean_hi) - st.mean_lo) * st.rstd * wp[c] + bp[c];
  }
}

// dx for rows [r0, r1), and the block's partial sums of g·xhat (for dw) and g (for db), in T.
// xhat: scratch of `width` elements.
template <class T>
void layer_norm_backward_rows(const T* xp, const T* gp, const T* wp, const double* mean, const double* rstd,
                              T* dp, T* dw_part, T* db_part, T* xhat, int64_t r0, int64_t r1, int64_t width) {
  for (int64_t c = 0; c < width; ++c) dw_part[c] = db_part[c] = T(0);
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = xp + r * width;
    const T* gr = gp + r * width;
    const RowStats<T> st = row_stats<T>(mean[r], rstd[r]);
    // dx = rstd · (dxhat − mean(dxhat) − xhat · mean(dxhat · xhat)), dxhat = g·w.
    double sum_dxhat = 0, sum_dxhat_xhat = 0;
#pragma omp simd reduction(+ : sum_dxhat, sum_dxhat_xhat)
    for (int64_t c = 0; c < width; ++c) {
      const T xh = ((xr[c] - st.mean_hi) - st.mean_lo) * st.rstd;
      const T dh = gr[c] * wp[c];
      xhat[c] = xh;
      sum_dxhat += static_cast<double>(dh);
      sum_dxhat_xhat += static_cast<double>(dh * xh);
      dw_part[c] += gr[c] * xh;
      db_part[c] += gr[c];
    }
    const T mean_dxhat = static_cast<T>(sum_dxhat / static_cast<double>(width));
    const T mean_dxhat_xhat = static_cast<T>(sum_dxhat_xhat / static_cast<double>(width));
    T* dr = dp + r * width;
#pragma omp simd
    for (int64_t c = 0; c < width; ++c) dr[c] = st.rstd * (gr[c] * wp[c] - mean_dxhat - xhat[c] * mean_dxhat_xhat);
  }
}
}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, double eps) {
  profiler::Scope scope("layer_norm");
  check_floating(x_in, "layer_norm");
  if (x_in.dim() < 1) throw_arg("layer_norm", "needs at least one dim, got a scalar");
  const int64_t width = x_in.size(-1);
  for (const Tensor* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    if (p->shape() != Shape{width})
      throw_arg("layer_norm", std::string(p == &weight ? "weight" : "bias") + " of shape " +
                                  shape_str(p->shape()) + " does not match the last dim of input " +
                                  shape_str(x_in.shape()));
    check_same_dtype(x_in, *p, "layer_norm");
  }
  if (!(eps >= 0)) throw_arg("layer_norm", "eps must be >= 0, got " + std::to_string(eps));
  Tensor x = x_in.detach().contiguous();
  // Without a weight (bias), a row of ones (zeros) keeps the loops free of branches, so they vectorise.
  Tensor w = weight.defined() ? weight.detach().contiguous() : ones({width}, x.dtype());
  Tensor b = bias.defined() ? bias.detach().contiguous() : zeros({width}, x.dtype());
  const int64_t rows = width == 0 ? 0 : x.numel() / width;
  Tensor y = make_tensor(x.shape(), x.dtype());
  auto mean = std::make_shared<std::vector<double>>(rows);
  auto rstd = std::make_shared<std::vector<double>>(rows);
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const T* wp = w.data<T>();
    const T* bp = b.data<T>();
    T* yp = y.data<T>();
    parallel_for(rows, kRowsPerThread, [&](int64_t r0, int64_t r1) {
      layer_norm_rows(xp, wp, bp, yp, mean->data(), rstd->data(), r0, r1, width, eps);
    });
  });
  return attach(y, "layer_norm", {x_in, weight, bias}, [x, w, mean, rstd, rows, width](const Tensor& g_in, const std::vector<Tensor>& in) {
    Tensor g = g_in.contiguous();
    Tensor dx = make_tensor(x.shape(), x.dtype());
    const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
    Tensor dw = make_tensor({width}, x.dtype()), db = make_tensor({width}, x.dtype());
    dispatch(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.data<T>();
      const T* gp = g.data<T>();
      const T* wp = w.data<T>();
      T* dp = dx.data<T>();
      // Per block: dw partial, db partial; then one xhat scratch row per block.
      std::vector<T> partials(static_cast<std::size_t>(blocks * 3 * width));
      parallel_for(blocks, kRowsPerThread / kRowsPerBlock, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) {
          T* part = partials.data() + k * 3 * width;
          layer_norm_backward_rows(xp, gp, wp, mean->data(), rstd->data(), dp, part, part + width, part + 2 * width,
                                   k * kRowsPerBlock, std::min(rows, (k + 1) * kRowsPerBlock), width);
        }
      });
      T* dwp = dw.data<T>();
      T* dbp = db.data<T>();
      for (int64_t c = 0; c < width; ++c) {
        double sw = 0, sb = 0;
        for (int64_t k = 0; k < blocks; ++k) {
          sw += static_cast<double>(partials[k * 3 * width + c]);
          sb += static_cast<double>(partials[k * 3 * width + width + c]);
        }
        dwp[c] = static_cast<T>(sw);
        dbp[c] = static_cast<T>(sb);
      }
    });
    return std::vector<Tensor>{dx, in[1].defined() ? dw : Tensor(), in[2].defined() ? db : Tensor()};
  }, {x, w});
}

}  // namespace minitrain
