// Shared pieces of the PyTorch parity tests: opening a fixture written by tests/reference/make_fixtures.py
// (with minitrain's own safetensors reader), the error measure, and the per-group report of the worst error.
//
// The error measure. For a result a and torch's reference r (same shape and dtype):
//   err = max_i |a_i − r_i| / max(|r_i|, floor),   floor = 16·u·max_j |r_j| / limit
// with u the unit roundoff of the dtype (2^-53, 2^-24). err <= limit is the mixed criterion
//   |a_i − r_i| <= limit·|r_i|  or  |a_i − r_i| <= 16 ulps of the tensor's largest value.
// Why the absolute part: a sum, matmul or backward that cancels to a small value (a gradient entry near 0,
// GELU's 1 + erf(x/√2) for x < −2, a softmax weight of e^-10) carries a rounding error of the size of the
// terms that cancelled, not of the result; both frameworks round differently (BLAS blocking, vectorised
// reductions, their own erf and exp), so an elementwise relative test would fail on correct code and would
// divide by the exact zeros of masks, relu and unused embedding rows. 16 ulps of the largest value allows
// for a handful of roundings in each of a few cancelling terms; any wrong term, scale or sign moves an
// element by far more. Exact zeros compare exactly; an all-zero reference compares absolute values.
//
// The limits. float64: 1e-10. Both frameworks are within a few ulp·(terms summed) of the exact value;
// with at most ~10^3 terms per sum that is ~1e-13, so 1e-10 leaves a margin of 1000 and still catches any
// algorithmic difference (a wrong formula is off by far more). float32: 1e-5. The unit roundoff is 6e-8;
// sums of up to a few hundred float32 terms accumulated in different orders (BLAS blocking, torch's
// vectorised reductions, minitrain's double accumulators) differ by up to ~100 ulp, ~1e-6 relative, so
// 1e-5 is the tightest limit that does not depend on the summation order. Where torch's float32 kernel is
// itself far from the exact value (LayerNorm rows with a mean of 1e4) the fixture says so and uses the
// matching torch call in float64, rounded to float32.
//
// MINITRAIN_PARITY_DUMP=<dir> writes every compared minitrain tensor to <dir>/<group>.safetensors, to look
// at a failure next to the fixture in Python.
#pragma once

#include <minitrain/core/safetensors.h>
#include <minitrain/core/tensor.h>

#include <map>
#include <string>
#include <vector>

namespace minitrain::parity {

constexpr double kFloat64Limit = 1e-10;
constexpr double kFloat32Limit = 1e-5;
constexpr double kUlpsOfLargest = 16;
inline double limit_for(DType dtype) { return dtype == DType::Float64 ? kFloat64Limit : kFloat32Limit; }
inline double unit_roundoff(DType dtype) { return dtype == DType::Float64 ? 0x1p-53 : 0x1p-24; }

// One fixture file from tests/reference/fixtures/.
class Fixture {
 public:
  explicit Fixture(const std::string& file_name);
  const std::string& name() const { return name_; }
  bool has(const std::string& tensor) const;
  const Tensor& at(const std::string& tensor) const;  // throws naming the file and the tensor
  Tensor ids(const std::string& tensor) const;        // a float tensor of exact integers, as int64
  const std::string& meta(const std::string& key) const;
  DType dtype() const;  // from the "dtype" metadata: f32 or f64
  // Names of the tensors that start with `prefix` and end with `suffix`, sorted, with both removed.
  std::vector<std::string> names(const std::string& prefix, const std::string& suffix = "") const;
  const SafeTensors& contents() const { return file_; }

 private:
  std::string name_;
  SafeTensors file_;
};

std::string fixture_path(const std::string& file_name);

// err as defined above, for `limit`; shapes must match (otherwise +inf).
double relative_error(const Tensor& actual, const Tensor& expected, double limit);
inline double relative_error(const Tensor& actual, const Tensor& expected) {
  return relative_error(actual, expected, limit_for(expected.dtype()));
}

// Collects comparisons of one fixture group and prints each and the worst, e.g.
//   [parity] ops_f64 | softmax_last | out 3.1e-17 | grad_in.0 1.2e-16
//   [parity] ops_f64: worst relative error 4.4e-16 (cross_entropy grad_in.0), limit 1e-10, 68 cases
class Report {
 public:
  Report(std::string group, double limit) : group_(std::move(group)), limit_(limit) {}
  ~Report();  // prints the summary line
  // Compares and records; returns whether err <= limit. `item` is e.g. the case name, `what` the tensor.
  bool check(const std::string& item, const std::string& what, const Tensor& actual, const Tensor& expected);
  void record(const std::string& item, const std::string& what, double error);  // an error computed elsewhere
  void end_item();  // prints the item's line
  double worst() const { return worst_; }
  double limit() const { return limit_; }
  std::vector<std::string> failures() const { return failures_; }

 private:
  std::string group_;
  double limit_;
  double worst_ = 0;
  std::string worst_where_;
  std::string line_, line_item_;
  int items_ = 0;
  std::vector<std::string> failures_;
  std::map<std::string, Tensor> dump_;
};

}  // namespace minitrain::parity
