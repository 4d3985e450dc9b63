// Layer normalisation over the last dim: fused forward and backward on contiguous rows.
// Statistics are two-pass in double (mean first, then the centred sum of squares), so rows with a mean
// of 1e4 or constant rows keep their precision.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/profiler.h>

#include "parallel.h"
#include "tensor_impl.h"

#include <cmath>

namespace minitrain {

namespace {
constexpr int64_t kRowsPerThread = 64;
}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, double eps) {
  profiler::Scope scope("layer_norm");
  check_defined(x_in, "layer_norm");
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
  Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  const int64_t rows = width == 0 ? 0 : x.numel() / width;
  Tensor y = make_tensor(x.shape(), x.dtype());
  auto mean = std::make_shared<std::vector<double>>(rows);
  auto rstd = std::make_shared<std::vector<double>>(rows);
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    const T* bp = b.defined() ? b.data<T>() : nullptr;
    T* yp = y.data<T>();
    parallel_for(rows, kRowsPerThread, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* row = xp + r * width;
        double m = 0;
#pragma omp simd reduction(+ : m)
        for (int64_t c = 0; c < width; ++c) m += row[c];
        m /= static_cast<double>(width);
        double v = 0;
#pragma omp simd reduction(+ : v)
        for (int64_t c = 0; c < width; ++c) v += (row[c] - m) * (row[c] - m);
        v /= static_cast<double>(width);
        const double s = 1.0 / std::sqrt(v + eps);
        (*mean)[r] = m;
        (*rstd)[r] = s;
        T* out = yp + r * width;
        for (int64_t c = 0; c < width; ++c) {  // centred in double: a float mean of 1e4 would be off by 1e-3
          double o = (row[c] - m) * s;
          if (wp) o *= wp[c];
          if (bp) o += bp[c];
          out[c] = static_cast<T>(o);
        }
      }
    });
  });
  return attach(y, "layer_norm", {x_in, weight, bias}, [x, w, mean, rstd, rows, width](const Tensor& g_in, const std::vector<Tensor>& in) {
    Tensor g = g_in.contiguous();
    Tensor dx = make_tensor(x.shape(), x.dtype());
    std::vector<double> dw(width, 0.0), db(width, 0.0);
    dispatch(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.data<T>();
      const T* gp = g.data<T>();
      // Without a weight, dxhat = g: a row of ones keeps the loops below free of branches (so they vectorise).
      std::vector<T> ones(w.defined() ? 0 : static_cast<std::size_t>(width), T(1));
      const T* wp = w.defined() ? w.data<T>() : ones.data();
      T* dp = dx.data<T>();
      // dx row by row, rows split over threads.
      parallel_for(rows, kRowsPerThread, [&](int64_t r0, int64_t r1) {
        // xhat and dxhat = g·w of one row, in double, each computed once and read by two plain loops.
        std::vector<double> xhat(static_cast<std::size_t>(width)), dxhat(static_cast<std::size_t>(width));
        double* xh = xhat.data();
        double* dh = dxhat.data();
        for (int64_t r = r0; r < r1; ++r) {
          const T* xr = xp + r * width;
          const T* gr = gp + r * width;
          const double m = (*mean)[r], s = (*rstd)[r];
          for (int64_t c = 0; c < width; ++c) {
            xh[c] = (xr[c] - m) * s;
            dh[c] = static_cast<double>(gr[c]) * wp[c];
          }
          // dx = rstd · (dxhat − mean(dxhat) − xhat · mean(dxhat · xhat))
          double mean_dxhat = 0, mean_dxhat_xhat = 0;
#pragma omp simd reduction(+ : mean_dxhat, mean_dxhat_xhat)
          for (int64_t c = 0; c < width; ++c) {
            mean_dxhat += dh[c];
            mean_dxhat_xhat += dh[c] * xh[c];
          }
          mean_dxhat /= static_cast<double>(width);
          mean_dxhat_xhat /= static_cast<double>(width);
          T* dr = dp + r * width;
          for (int64_t c = 0; c < width; ++c)
            dr[c] = static_cast<T>(s * (dh[c] - mean_dxhat - xh[c] * mean_dxhat_xhat));
        }
      });
      // dw, db: sums over rows, columns split over threads, so every column is summed in the same row
      // order whatever the thread count.
      double* dwp = dw.data();
      double* dbp = db.data();
      parallel_for(width, 16, [&](int64_t c0, int64_t c1) {
        for (int64_t r = 0; r < rows; ++r) {
          const T* xr = xp + r * width;
          const T* gr = gp + r * width;
          const double m = (*mean)[r], s = (*rstd)[r];
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) {
            dwp[c] += gr[c] * ((xr[c] - m) * s);
            dbp[c] += gr[c];
          }
        }
      });
    });
    auto to_tensor = [&](const std::vector<double>& v) {
      Tensor t = make_tensor({width}, x.dtype());
      dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        for (int64_t c = 0; c < width; ++c) t.data<T>()[c] = static_cast<T>(v[c]);
      });
      return t;
    };
    return std::vector<Tensor>{dx, in[1].defined() ? to_tensor(dw) : Tensor(),
                               in[2].defined() ? to_tensor(db) : Tensor()};
  });
}

}  // namespace minitrain
