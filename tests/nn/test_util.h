// Small helpers shared by the nn tests: seeded random tensors, parameter randomisation, comparisons and
// the module-level gradient check (parameters perturbed in place, compared with one backward).
#pragma once

#include <minitrain/core/factory.h>
#include <minitrain/core/gradcheck.h>
#include <minitrain/core/ops.h>
#include <minitrain/nn/module.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace minitrain::nn_test {

inline Tensor rnd(const Shape& shape, uint64_t seed, double stddev = 1.0, DType dtype = DType::Float64) {
  Generator g(seed);
  return normal(shape, 0.0, stddev, g, dtype);
}

inline Tensor random_ids(const Shape& shape, int64_t vocab, uint64_t seed) {
  Generator g(seed);
  return randint(0, vocab, shape, g);
}

// Moves every parameter away from its (often special: 1, 0, tiny) initial value, so gradient checks
// are not helped by symmetric or near-zero weights. Values are added in place, handles stay valid.
inline void perturb_parameters(nn::Module& m, uint64_t seed, double stddev) {
  NoGradGuard no_grad;
  Generator g(seed);
  for (Tensor p : m.parameters()) p.copy_(add(p.detach(), normal(p.shape(), 0.0, stddev, g, p.dtype())));
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  if (x.size() != y.size()) return INFINITY;
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

// Bit-identical comparison of the raw values (same dtype and shape required).
inline bool bit_identical(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.dtype() == DType::Float32 ? static_cast<const void*>(x.data<float>())
                                                 : static_cast<const void*>(x.data<double>()),
                     y.dtype() == DType::Float32 ? static_cast<const void*>(y.data<float>())
                                                 : static_cast<const void*>(y.data<double>()),
                     static_cast<std::size_t>(x.numel()) * dtype_size(x.dtype())) == 0;
}

// ---- module_gradcheck ------------------------------------------------------------------------------
// Converts `module` to float64, runs forward(inputs) once, backpropagates sum(out ⊙ R) for a fixed
// random R, and compares every parameter's .grad() entry by entry with central differences obtained by
// perturbing that parameter in place (under NoGradGuard). Entry passes when
// |a − n| <= atol + rtol·|n|. The forward function must be deterministic (reset any dropout generator
// inside it).
struct ModuleCheckResult {
  bool passed = true;
  int64_t entries_checked = 0;
  int64_t parameters_checked = 0;
  std::string worst_parameter;
  int64_t worst_index = 0;
  double analytic = 0, numeric = 0, worst_ratio = 0;
  // The smallest, over parameters, of the largest |numeric gradient| of that parameter: > 0 means every
  // parameter really influences the output (the check is not vacuous).
  double min_param_grad_scale = INFINITY;
  std::string weakest_parameter;
  std::string summary() const {
    std::ostringstream os;
    os << (passed ? "module gradcheck passed" : "module gradcheck FAILED") << ": " << parameters_checked
       << " parameters, " << entries_checked << " entries; worst " << worst_parameter << "[" << worst_index
       << "] analytic " << analytic << " numeric " << numeric << " error/tolerance " << worst_ratio
       << "; weakest parameter " << weakest_parameter << " max|grad| " << min_param_grad_scale;
    return os.str();
  }
};

using ForwardFn = std::function<Tensor(const std::vector<Tensor>&)>;

inline ModuleCheckResult module_gradcheck(nn::Module& module, const ForwardFn& forward,
                                          const std::vector<Tensor>& inputs = {}, double eps = 1e-6,
                                          double atol = 1e-6, double rtol = 1e-5, uint64_t seed = 4321) {
  module.to(DType::Float64);
  std::vector<Tensor> xs;
  for (const Tensor& x : inputs) xs.push_back(x.detach().to(DType::Float64).clone());
  module.zero_grad();
  Tensor out = forward(xs);
  if (!out.defined() || out.dtype() != DType::Float64)
    throw std::invalid_argument("module_gradcheck: forward must return a float64 tensor");
  Generator g(seed);
  const Tensor R = randn(out.shape(), g, DType::Float64);
  sum(mul(out, R)).backward();

  ModuleCheckResult r;
  NoGradGuard no_grad;
  auto objective = [&]() { return sum(mul(forward(xs), R)).item(); };
  for (auto& [name, p] : module.named_parameters()) {
    Tensor grad = p.grad();
    std::vector<double> analytic =
        grad.defined() ? grad.to_vector<double>() : std::vector<double>(static_cast<std::size_t>(p.numel()), 0.0);
    double scale = 0;
    for (int64_t j = 0; j < p.numel(); ++j) {
      const double numeric = central_difference(p, j, eps, objective);
      const double a = analytic[static_cast<std::size_t>(j)];
      const double ratio = std::fabs(a - numeric) / (atol + rtol * std::fabs(numeric));
      ++r.entries_checked;
      scale = std::max(scale, std::fabs(numeric));
      if (!(ratio <= 1)) r.passed = false;
      if (ratio > r.worst_ratio || std::isnan(ratio)) {
        r.worst_ratio = ratio;
        r.worst_parameter = name;
        r.worst_index = j;
        r.analytic = a;
        r.numeric = numeric;
      }
    }
    ++r.parameters_checked;
    if (scale < r.min_param_grad_scale) {
      r.min_param_grad_scale = scale;
      r.weakest_parameter = name;
    }
  }
  return r;
}

}  // namespace minitrain::nn_test
