// The ops on int64 and bool tensors against PyTorch, from tests/reference/fixtures/index_ops_*.safetensors
// (written by tests/reference/fixtures_index_ops.py, whose cases have the same names as the tables below).
// Differentiable cases compare the float output and input gradients with the usual error measure; int64
// and bool results (indices, masks) must be exactly torch's, dtype and shape included.
#include "parity.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <map>
#include <sstream>

using namespace minitrain;
using parity::Fixture;

namespace {

using Inputs = std::vector<Tensor>;
// Differentiable: (float inputs, int64/bool arguments) -> output, or (values, indices) for topk.
using GradFn = std::function<std::pair<Tensor, Tensor>(const Inputs&, const Inputs&)>;
using ValueFn = std::function<Tensor(const Inputs&)>;

std::pair<Tensor, Tensor> only(Tensor t) { return {std::move(t), Tensor()}; }

std::map<std::string, GradFn> differentiable_table() {
  std::map<std::string, GradFn> m;
  m["gather_dim0_repeats"] = [](auto in, auto idx) { return only(gather(in[0], 0, idx[0])); };
  m["gather_dim1_transposed"] = [](auto in, auto idx) { return only(gather(in[0].transpose(0, 1), 1, idx[0])); };
  m["gather_3d_last_dim"] = [](auto in, auto idx) { return only(gather(in[0], -1, idx[0])); };
  m["index_select_dim1_repeats"] = [](auto in, auto idx) { return only(index_select(in[0], 1, idx[0])); };
  m["index_select_dim0"] = [](auto in, auto idx) { return only(index_select(in[0], 0, idx[0])); };
  m["topk_largest_last_dim"] = [](auto in, auto) { return topk(in[0], 3, -1); };
  m["topk_smallest_dim0"] = [](auto in, auto) { return topk(in[0], 2, 0, false); };
  m["masked_fill_bool_broadcast"] = [](auto in, auto idx) { return only(masked_fill(in[0], idx[0], -0.75)); };
  m["where_bool_condition"] = [](auto in, auto idx) { return only(where(idx[0], in[0], in[1])); };
  m["embedding_int64_ids"] = [](auto in, auto idx) { return only(embedding(in[0], idx[0])); };
  m["cross_entropy_int64_targets"] = [](auto in, auto idx) { return only(cross_entropy(in[0], idx[0], -100)); };
  return m;
}

std::map<std::string, ValueFn> value_table() {
  std::map<std::string, ValueFn> m;
  m["eq_broadcast"] = [](auto in) { return eq(in[0], in[1]); };
  m["ne_broadcast"] = [](auto in) { return ne(in[0], in[1]); };
  m["lt_broadcast"] = [](auto in) { return lt(in[0], in[1]); };
  m["le_broadcast"] = [](auto in) { return le(in[0], in[1]); };
  m["gt_broadcast"] = [](auto in) { return gt(in[0], in[1]); };
  m["ge_broadcast"] = [](auto in) { return ge(in[0], in[1]); };
  m["eq_scalar"] = [](auto in) { return eq(in[0], 0.5); };
  m["ne_scalar"] = [](auto in) { return ne(in[0], 0.5); };
  m["lt_scalar"] = [](auto in) { return lt(in[0], 0.5); };
  m["le_scalar"] = [](auto in) { return le(in[0], 0.5); };
  m["gt_scalar"] = [](auto in) { return gt(in[0], 0.5); };
  m["ge_scalar"] = [](auto in) { return ge(in[0], 0.5); };
  m["eq_transposed"] = [](auto in) { return eq(in[0].transpose(0, 1), in[1]); };
  m["logical_and_broadcast"] = [](auto in) { return logical_and(in[0], in[1]); };
  m["logical_or_broadcast"] = [](auto in) { return logical_or(in[0], in[1]); };
  m["logical_not"] = [](auto in) { return logical_not(in[0]); };
  m["logical_and_of_floats"] = [](auto in) { return logical_and(in[0], in[1]); };
  m["argmax_dim1_ties"] = [](auto in) { return argmax(in[0], 1); };
  m["argmax_dim0_keepdim_ties"] = [](auto in) { return argmax(in[0], 0, true); };
  m["argmin_last_dim_ties"] = [](auto in) { return argmin(in[0], -1); };
  m["argmin_dim0_keepdim_ties"] = [](auto in) { return argmin(in[0], 0, true); };
  m["argmax_flattened"] = [](auto in) { return argmax(in[0]); };
  m["argmax_3d_transposed"] = [](auto in) { return argmax(in[0].transpose(0, 2), 1); };
  m["one_hot_given_classes"] = [](auto in) { return one_hot(in[0], 6); };
  m["one_hot_inferred_classes"] = [](auto in) { return one_hot(in[0]); };
  return m;
}

Inputs numbered(const Fixture& f, const std::string& prefix) {
  Inputs out;
  for (int k = 0; f.has(prefix + std::to_string(k)); ++k) out.push_back(f.at(prefix + std::to_string(k)));
  return out;
}

// An int64 or bool result must equal torch's entry for entry; records 0 or +inf in the report.
void check_exact(parity::Report& report, const std::string& name, const std::string& what, const Tensor& actual,
                 const Tensor& expected) {
  std::ostringstream why;
  if (actual.dtype() != expected.dtype()) {
    why << "dtype " << dtype_name(actual.dtype()) << ", torch's " << dtype_name(expected.dtype());
  } else if (actual.shape() != expected.shape()) {
    why << "shape " << shape_str(actual.shape()) << ", torch's " << shape_str(expected.shape());
  } else {
    const std::vector<int64_t> a = actual.to_vector<int64_t>(), e = expected.to_vector<int64_t>();
    for (std::size_t i = 0; i < a.size() && why.tellp() == 0; ++i)
      if (a[i] != e[i]) why << "entry " << i << " is " << a[i] << ", torch's " << e[i];
  }
  const bool same = why.tellp() == 0;
  EXPECT_TRUE(same) << name << " " << what << ": " << why.str();
  report.record(name, what, same ? 0.0 : std::numeric_limits<double>::infinity());
}

void check_differentiable(const Fixture& f, const std::string& name, const GradFn& fn, parity::Report& report) {
  Inputs in;
  for (const Tensor& x : numbered(f, name + ".in.")) in.push_back(x.clone().set_requires_grad(true));
  const auto [out, indices] = fn(in, numbered(f, name + ".idx."));
  out.backward(f.at(name + ".grad_out"));
  report.check(name, "out", out, f.at(name + ".out"));
  if (f.has(name + ".indices")) check_exact(report, name, "indices", indices, f.at(name + ".indices"));
  for (std::size_t k = 0; k < in.size(); ++k) {
    const std::string key = "grad_in." + std::to_string(k);
    report.check(name, key, in[k].grad().defined() ? in[k].grad() : zeros_like(in[k]), f.at(name + "." + key));
  }
}

void check_all(const std::string& file) {
  const Fixture f(file);
  parity::Report report(f.name(), parity::limit_for(f.dtype()));
  const auto differentiable = differentiable_table();
  const auto values = value_table();
  for (const std::string& name : f.names("", ".out")) {
    SCOPED_TRACE(name);
    if (auto it = differentiable.find(name); it != differentiable.end()) {
      check_differentiable(f, name, it->second, report);
    } else if (auto v = values.find(name); v != values.end()) {
      check_exact(report, name, "out", v->second(numbered(f, name + ".in.")), f.at(name + ".out"));
    } else {
      ADD_FAILURE() << f.name() << " has case '" << name << "' that the C++ tables lack";
    }
  }
  for (const auto& [name, fn] : differentiable)
    EXPECT_TRUE(f.has(name + ".out")) << f.name() << " lacks case '" << name << "': regenerate the fixtures";
  for (const auto& [name, fn] : values)
    EXPECT_TRUE(f.has(name + ".out")) << f.name() << " lacks case '" << name << "': regenerate the fixtures";
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

}  // namespace

TEST(IndexOpsParity, Float64MatchesTorch) { check_all("index_ops_f64.safetensors"); }
TEST(IndexOpsParity, Float32MatchesTorch) { check_all("index_ops_f32.safetensors"); }
