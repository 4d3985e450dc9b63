// Gradient checking against central finite differences in float64.
//
// Use it for your own ops and modules:
//
//   auto result = minitrain::gradcheck(
//       [](const std::vector<Tensor>& in) { return my_op(in[0], in[1]); }, {x, w});
//   EXPECT_TRUE(result.passed) << result.summary();
//
// Every input is copied to float64 and becomes a leaf that requires grad. The function must be
// deterministic (create any Generator inside it, with a fixed seed, so dropout draws the same mask on
// every call). The scalar differentiated is sum(f(x) ⊙ R) for a fixed random R, not sum(f(x)): a
// uniform upstream gradient cancels inside softmax and LayerNorm and would hide bugs there.
// Entry (i, j) passes when |analytic − numeric| ≤ atol + rtol·|numeric|.
#pragma once

#include <minitrain/core/tensor.h>

#include <functional>
#include <string>
#include <vector>

namespace minitrain {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-6;
  double rtol = 1e-5;
  uint64_t seed = 1234;  // for the upstream gradient R
};

struct GradcheckResult {
  bool passed = true;
  int64_t entries_checked = 0;
  // The entry with the largest |a − n| / (atol + rtol·|n|) (the one closest to failing, or failing).
  std::size_t worst_input = 0;
  int64_t worst_index = 0;  // row-major index into that input
  double analytic = 0, numeric = 0;
  double worst_ratio = 0;           // that entry's |a − n| / (atol + rtol·|n|); > 1 fails
  double max_abs_error = 0;         // over all entries
  double max_relative_error = 0;    // |a − n| / max(|n|, 1e-3) over all entries
  std::string summary() const;
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

// The central difference (objective() at x + step − objective() at x − step) / (2·step) in entry `index`
// (row-major) of `t`, a contiguous float64 tensor that `objective` reads. The entry is written in place
// through data<double>() and restored to exactly x; t's version is not bumped (the caller decides).
// Shared by gradcheck and nn::gradcheck_module. Throws for an index outside [0, numel).
double central_difference(Tensor& t, int64_t index, double step, const std::function<double()>& objective);

}  // namespace minitrain
