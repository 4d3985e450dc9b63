// gradcheck: analytic gradients from one backward, numeric ones from central differences.
#include <minitrain/core/factory.h>
#include <minitrain/core/gradcheck.h>
#include <minitrain/core/ops.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace minitrain {

std::string GradcheckResult::summary() const {
  std::ostringstream os;
  os << (passed ? "gradcheck passed" : "gradcheck FAILED") << ": " << entries_checked
     << " entries, worst at input " << worst_input << " index " << worst_index << " (analytic " << analytic
     << ", numeric " << numeric << ", error/tolerance " << worst_ratio << "); max abs error " << max_abs_error
     << ", max relative error " << max_relative_error;
  return os.str();
}

double central_difference(Tensor& t, int64_t index, double step, const std::function<double()>& objective) {
  if (index < 0 || index >= t.numel())
    throw std::invalid_argument("central_difference: index " + std::to_string(index) + " is outside a tensor of " +
                                std::to_string(t.numel()) + " entries");
  double* x = t.data<double>();
  const double saved = x[index];
  x[index] = saved + step;
  const double plus = objective();
  x[index] = saved - step;
  const double minus = objective();
  x[index] = saved;
  return (plus - minus) / (2 * step);
}

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  std::vector<Tensor> xs;
  for (const Tensor& x : inputs) xs.push_back(x.detach().to(DType::Float64).clone().set_requires_grad(true));

  Tensor out = f(xs);
  if (!out.defined() || out.dtype() != DType::Float64)
    throw std::invalid_argument("gradcheck: the function must return a defined float64 tensor");
  Generator gen(options.seed);
  const Tensor upstream = randn(out.shape(), gen, DType::Float64);
  auto objective = [&](const Tensor& y) { return sum(mul(y, upstream)); };
  objective(out).backward();
  const std::function<double()> evaluate = [&] { return objective(f(xs)).item(); };

  GradcheckResult result;
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    Tensor analytic = xs[i].grad().defined() ? xs[i].grad().contiguous() : zeros(xs[i].shape(), DType::Float64);
    const double* a = analytic.data<double>();
    for (int64_t j = 0; j < xs[i].numel(); ++j) {
      const double numeric = central_difference(xs[i], j, options.eps, evaluate);
      const double err = std::fabs(a[j] - numeric);
      const double ratio = err / (options.atol + options.rtol * std::fabs(numeric));
      ++result.entries_checked;
      result.max_abs_error = std::max(result.max_abs_error, err);
      result.max_relative_error = std::max(result.max_relative_error, err / std::max(std::fabs(numeric), 1e-3));
      if (!(ratio <= 1)) result.passed = false;  // also catches NaN
      if (ratio > result.worst_ratio || std::isnan(ratio)) {
        result.worst_ratio = ratio;
        result.worst_input = i;
        result.worst_index = j;
        result.analytic = a[j];
        result.numeric = numeric;
      }
    }
  }
  return result;
}

}  // namespace minitrain
