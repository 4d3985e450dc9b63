// gradcheck_module: one backward for the analytic gradients of every parameter, then central differences
// on sampled entries of each.
#include <minitrain/nn/gradcheck.h>

#include <minitrain/core/factory.h>
#include <minitrain/core/gradcheck.h>
#include <minitrain/core/ops.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <stdexcept>

namespace minitrain::nn {

const TensorGradcheck& ModuleGradcheckResult::worst() const {
  if (tensors.empty()) throw std::logic_error("gradcheck_module: no tensor was checked");
  return *std::max_element(tensors.begin(), tensors.end(), [](const TensorGradcheck& a, const TensorGradcheck& b) {
    return std::isnan(b.ratio) || (!std::isnan(a.ratio) && a.ratio < b.ratio);
  });
}

std::string ModuleGradcheckResult::summary() const {
  std::ostringstream os;
  os << (passed ? "gradcheck_module passed" : "gradcheck_module FAILED") << " (" << tensors.size() << " tensors)\n";
  for (const auto& t : tensors)
    os << (t.passed ? "  ok   " : "  FAIL ") << t.name << ": " << t.entries_checked << " of " << t.numel
       << " entries, worst at index " << t.index << ": analytic " << t.analytic << ", numeric " << t.numeric
       << ", error/tolerance " << t.ratio << "\n";
  return os.str();
}

namespace {
// Converts the module's parameters to float64 and back on every exit; clears gradients both ways.
class Float64Scope {
 public:
  explicit Float64Scope(Module& module) : module_(module) {
    for (Tensor& p : module_.parameters()) dtypes_.push_back(p.dtype());
    module_.zero_grad();
    module_.to(DType::Float64);
  }
  ~Float64Scope() {
    module_.zero_grad();
    std::size_t i = 0;
    for (Tensor& p : module_.parameters()) {
      const DType dtype = dtypes_[i++];
      if (p.dtype() != dtype) p.set_data(p.detach().to(dtype));
    }
  }
  Float64Scope(const Float64Scope&) = delete;
  Float64Scope& operator=(const Float64Scope&) = delete;

 private:
  Module& module_;
  std::vector<DType> dtypes_;
};

// k distinct indices in [0, n), sorted (Floyd's sampling; all of them when k <= 0 or k >= n).
std::vector<int64_t> sample_indices(int64_t n, int64_t k, Generator& gen) {
  std::vector<int64_t> out;
  if (k <= 0 || k >= n) {
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  std::set<int64_t> chosen;
  for (int64_t j = n - k; j < n; ++j) {
    const int64_t t = gen.randint(0, j + 1);
    chosen.insert(chosen.count(t) ? j : t);
  }
  return {chosen.begin(), chosen.end()};
}

bool is_floating(DType d) { return d == DType::Float32 || d == DType::Float64; }
}  // namespace

ModuleGradcheckResult gradcheck_module(Module& module, const ModuleGradcheckFn& f, const std::vector<Tensor>& inputs,
                                       const ModuleGradcheckOptions& options) {
  Float64Scope scope(module);
  std::vector<Tensor> xs;
  std::vector<std::pair<std::string, Tensor>> checked = module.named_parameters();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined() || !is_floating(x.dtype())) {
      xs.push_back(x);
      continue;
    }
    const bool wanted = x.requires_grad();
    xs.push_back(x.detach().to(DType::Float64).clone().set_requires_grad(wanted));
    if (wanted) checked.emplace_back("input " + std::to_string(i), xs.back());
  }

  Tensor out = f(xs);
  if (!out.defined() || out.dtype() != DType::Float64)
    throw std::invalid_argument("gradcheck_module: the function must return a defined float64 tensor (got " +
                                std::string(out.defined() ? dtype_name(out.dtype()) : "an undefined tensor") + ")");
  Generator gen(options.seed);
  const Tensor upstream = randn(out.shape(), gen, DType::Float64);
  auto objective = [&](const Tensor& y) { return sum(mul(y, upstream)); };
  const Tensor loss = objective(out);
  const double at_start = loss.item();
  loss.backward();
  const std::function<double()> evaluate = [&] { return objective(f(xs)).item(); };

  ModuleGradcheckResult result;
  NoGradGuard no_grad;
  const double again = objective(f(xs)).item();
  if (!(std::fabs(again - at_start) <= 1e-12 * (1 + std::fabs(at_start))))
    throw std::invalid_argument("gradcheck_module: the function gives a different value on a second call; make it "
                                "deterministic (eval mode, or dropout p = 0)");
  for (auto& [name, t] : checked) {
    TensorGradcheck r;
    r.name = name;
    r.numel = t.numel();
    const Tensor analytic = t.grad().defined() ? t.grad().contiguous() : zeros(t.shape(), DType::Float64);
    const double* a = analytic.data<double>();
    for (int64_t j : sample_indices(t.numel(), options.max_entries, gen)) {
      const double numeric = central_difference(t, j, options.eps, evaluate);
      const double ratio = std::fabs(a[j] - numeric) / (options.atol + options.rtol * std::fabs(numeric));
      ++r.entries_checked;
      if (!(ratio <= 1)) r.passed = false;  // also catches NaN
      if (r.entries_checked == 1 || ratio > r.ratio || std::isnan(ratio)) {
        r.ratio = ratio;
        r.index = j;
        r.analytic = a[j];
        r.numeric = numeric;
      }
    }
    t.bump_version();  // written in place by central_difference (values restored, but not through the API)
    result.passed = result.passed && r.passed;
    result.tensors.push_back(r);
  }
  return result;
}

}  // namespace minitrain::nn
