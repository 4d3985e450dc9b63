// Gradient check of a module's parameters against central finite differences in float64.
//
//   auto r = nn::gradcheck_module(model, [&](const std::vector<Tensor>& in) { return model.forward(in[0]); }, {x});
//   if (!r.passed) std::cerr << r.summary();  // per parameter: worst entry, analytic, numeric
//
// For the check the module's parameters are converted to float64 in place and converted back afterwards
// (also when something throws): float32 → float64 → float32 is exact, so the module ends with the values
// it had. Its gradients are cleared. Floating-point inputs are copied to float64; those that require grad
// are checked too, as "input <i>"; integer inputs (token ids) pass through. The scalar differentiated is
// sum(f(in) ⊙ R) with a fixed random R, as in minitrain::gradcheck. A tensor with more than max_entries
// elements has max_entries of them checked, drawn from `seed` (the same entries on every run).
// f must be deterministic: put the module in eval mode or give its dropout p = 0 (a non-deterministic f
// is refused). Each checked entry passes when |analytic − numeric| ≤ atol + rtol·|numeric|.
#pragma once

#include <minitrain/nn/module.h>

#include <functional>
#include <string>
#include <vector>

namespace minitrain::nn {

struct ModuleGradcheckOptions {
  double eps = 1e-6;  // finite-difference step
  double atol = 1e-6;
  double rtol = 1e-5;
  int64_t max_entries = 64;  // per tensor; <= 0 checks every entry
  uint64_t seed = 1234;      // R and the sampled entries
};

// One parameter's (or input's) worst entry: the largest |a − n| / (atol + rtol·|n|).
struct TensorGradcheck {
  std::string name;  // "fc1.weight" or "input 0"
  int64_t entries_checked = 0, numel = 0;
  int64_t index = 0;  // row-major index of the worst entry
  double analytic = 0, numeric = 0;
  double ratio = 0;  // > 1 fails
  bool passed = true;
};

struct ModuleGradcheckResult {
  bool passed = true;
  std::vector<TensorGradcheck> tensors;  // parameters in named_parameters() order, then checked inputs
  const TensorGradcheck& worst() const;  // the tensor with the largest ratio
  std::string summary() const;           // one line per tensor, failures marked
};

using ModuleGradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

ModuleGradcheckResult gradcheck_module(Module& module, const ModuleGradcheckFn& f, const std::vector<Tensor>& inputs,
                                       const ModuleGradcheckOptions& options = {});

}  // namespace minitrain::nn
