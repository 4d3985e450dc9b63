// Every op in core against PyTorch: outputs and input gradients of sum(out ⊙ grad_out), in float64 and
// float32, from tests/reference/fixtures/ops_*.safetensors (written by tests/reference/fixtures_ops.py,
// whose cases have the same names as the table below).
#include "parity.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <map>
#include <optional>

using namespace minitrain;
using parity::Fixture;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The fixture's non-differentiable arguments of one case.
struct Aux {
  const Fixture& f;
  std::string name;
  Tensor mask() const { return f.at(name + ".mask"); }
  Tensor ids() const { return f.ids(name + ".ids"); }
};

using OpFn = std::function<Tensor(const std::vector<Tensor>&, const Aux&)>;

Tensor T(const Tensor& t) { return t.transpose(0, 1); }

std::map<std::string, OpFn> op_table() {
  std::map<std::string, OpFn> m;
  // elementwise binary
  m["add_broadcast"] = [](auto in, auto&) { return add(in[0], in[1]); };
  m["add_size1_dims"] = [](auto in, auto&) { return add(in[0], in[1]); };
  m["sub_transposed"] = [](auto in, auto&) { return sub(T(in[0]), in[1]); };
  m["mul_broadcast"] = [](auto in, auto&) { return mul(in[0], in[1]); };
  m["mul_transposed"] = [](auto in, auto&) { return mul(T(in[0]), T(in[1])); };
  m["div"] = [](auto in, auto&) { return div(in[0], in[1]); };
  m["neg"] = [](auto in, auto&) { return neg(in[0]); };
  // scalar forms
  m["add_scalar"] = [](auto in, auto&) { return in[0] + 1.5; };
  m["mul_scalar"] = [](auto in, auto&) { return in[0] * -2.5; };
  m["rsub_scalar"] = [](auto in, auto&) { return 3.0 - in[0]; };
  m["rdiv_scalar"] = [](auto in, auto&) { return 2.0 / in[0]; };
  m["pow_fractional"] = [](auto in, auto&) { return pow(in[0], 2.5); };
  m["pow_cube_negative_base"] = [](auto in, auto&) { return pow(in[0], 3.0); };
  // elementwise functions
  m["exp"] = [](auto in, auto&) { return exp(in[0]); };
  m["log"] = [](auto in, auto&) { return log(in[0]); };
  m["sqrt"] = [](auto in, auto&) { return sqrt(in[0]); };
  m["rsqrt"] = [](auto in, auto&) { return rsqrt(in[0]); };
  m["tanh"] = [](auto in, auto&) { return tanh(in[0]); };
  m["sigmoid"] = [](auto in, auto&) { return sigmoid(in[0]); };
  m["relu_away_from_kink"] = [](auto in, auto&) { return relu(in[0]); };
  m["gelu_erf"] = [](auto in, auto&) { return gelu(in[0]); };
  m["gelu_tanh"] = [](auto in, auto&) { return gelu(in[0], GeluApproximation::Tanh); };
  m["tanh_transposed"] = [](auto in, auto&) { return tanh(T(in[0])); };
  // reductions
  m["sum_all"] = [](auto in, auto&) { return sum(in[0]); };
  m["sum_dims_keepdim"] = [](auto in, auto&) { return sum(in[0], {0, 2}, true); };
  m["sum_transposed"] = [](auto in, auto&) { return sum(T(in[0]), {1}); };
  m["mean_dim"] = [](auto in, auto&) { return mean(in[0], {-1}); };
  m["var_dim_keepdim"] = [](auto in, auto&) { return var(in[0], {1}, true); };
  m["var_all_biased"] = [](auto in, auto&) { return var(in[0], {}, false, 0); };
  m["max_dim"] = [](auto in, auto&) { return max(in[0], 1); };
  m["max_dim0_keepdim"] = [](auto in, auto&) { return max(in[0], 0, true); };
  // matmul
  m["matmul_2d"] = [](auto in, auto&) { return matmul(in[0], in[1]); };
  m["matmul_transposed"] = [](auto in, auto&) { return matmul(T(in[0]), T(in[1])); };
  m["matmul_batched_broadcast"] = [](auto in, auto&) { return matmul(in[0], in[1]); };
  m["matmul_batched_transposed"] = [](auto in, auto&) { return matmul(in[0], in[1].transpose(-1, -2)); };
  m["matmul_size1"] = [](auto in, auto&) { return matmul(in[0], in[1]); };
  m["matmul_large_k"] = [](auto in, auto&) { return matmul(in[0], in[1]); };
  // softmax family
  m["softmax_last"] = [](auto in, auto&) { return softmax(in[0], -1); };
  m["softmax_dim0"] = [](auto in, auto&) { return softmax(in[0], 0); };
  m["softmax_extreme_1e4"] = [](auto in, auto&) { return softmax(in[0], -1); };
  m["log_softmax"] = [](auto in, auto&) { return log_softmax(in[0], 1); };
  m["log_softmax_extreme_1e4"] = [](auto in, auto&) { return log_softmax(in[0], -1); };
  m["softmax_causal_masked"] = [](auto in, auto& a) {
    // The fixture's mask is torch's triu(ones, 1): minitrain's causal_mask must be the same matrix.
    EXPECT_EQ(parity::relative_error(causal_mask(4, in[0].dtype()), a.mask()), 0.0);
    return softmax(masked_fill(in[0], causal_mask(4, in[0].dtype()), -kInf), -1);
  };
  m["softmax_fully_masked_row"] = [](auto in, auto& a) { return softmax(masked_fill(in[0], a.mask(), -kInf), -1); };
  // masking and selection
  m["masked_fill_broadcast"] = [](auto in, auto& a) { return masked_fill(in[0], a.mask(), 0.5); };
  m["where_broadcast"] = [](auto in, auto& a) { return where(a.mask(), in[0], in[1]); };
  // embedding, cross-entropy
  m["embedding_repeated_ids"] = [](auto in, auto& a) { return embedding(in[0], a.ids()); };
  m["cross_entropy"] = [](auto in, auto& a) { return cross_entropy(in[0], a.ids()); };
  m["cross_entropy_3d_ignore_index"] = [](auto in, auto& a) { return cross_entropy(in[0], a.ids()); };
  m["cross_entropy_extreme_1e4"] = [](auto in, auto& a) { return cross_entropy(in[0], a.ids()); };
  m["cross_entropy_wide"] = [](auto in, auto& a) { return cross_entropy(in[0], a.ids()); };
  // layer norm
  m["layer_norm"] = [](auto in, auto&) { return layer_norm(in[0], in[1], in[2]); };
  m["layer_norm_mean_1e4"] = [](auto in, auto&) { return layer_norm(in[0], in[1], in[2]); };
  m["layer_norm_constant_rows"] = [](auto in, auto&) { return layer_norm(in[0], in[1], Tensor()); };
  m["layer_norm_no_affine_transposed"] = [](auto in, auto&) { return layer_norm(T(in[0]), Tensor(), Tensor()); };
  // attention (the fused kernel)
  m["attention_causal"] = [](auto in, auto&) { return scaled_dot_product_attention(in[0], in[1], in[2], 0.5, true); };
  m["attention_kv_cache_rows"] = [](auto in, auto&) {
    return scaled_dot_product_attention(in[0], in[1], in[2], 0.6, true);
  };
  m["attention_not_causal_transposed"] = [](auto in, auto&) {
    return scaled_dot_product_attention(in[0].transpose(-1, -2), in[1], in[2], 0.4, false);
  };
  // shape ops
  m["reshape"] = [](auto in, auto&) { return in[0].reshape({3, -1}) * in[1]; };
  m["reshape_of_transposed"] = [](auto in, auto&) { return T(in[0]).reshape({-1}); };
  m["permute"] = [](auto in, auto&) { return in[0].permute({2, 0, 1}) * in[1]; };
  m["narrow_slice"] = [](auto in, auto&) {
    return in[0].narrow(0, 1, 2).narrow(1, 1, 2) + in[0].slice(0, 1, 3).narrow(1, 0, 2);
  };
  m["cat"] = [](auto in, auto&) { return cat({in[0], in[1], in[0]}, 1); };
  m["stack"] = [](auto in, auto&) { return stack({in[0], T(in[1])}, 0); };
  m["split_chunk"] = [](auto in, auto&) {
    auto parts = split(in[0], 2, 1);
    auto halves = chunk(in[0], 2, 0);
    return parts[0] * parts[2].expand({3, 2}) + sum(halves[0].narrow(1, 0, 2), {0}, true);
  };
  m["unsqueeze_squeeze_expand"] = [](auto in, auto&) { return in[0].unsqueeze(1).expand({3, 2, 4}).squeeze(0) * in[1]; };
  m["broadcast_to"] = [](auto in, auto&) { return broadcast_to(in[0], {2, 3, 4}); };
  m["contiguous_clone"] = [](auto in, auto&) { return T(in[0]).contiguous().clone() * 2.0; };
  // abs, clamp, minimum/maximum (random inputs away from the kinks, and exact values on them: "_at_",
  // "_ties"), pow with a tensor exponent, cumsum, std, min, amax/amin, norm
  m["abs_away_from_kink"] = [](auto in, auto&) { return abs(in[0]); };
  m["abs_at_zero"] = [](auto in, auto&) { return abs(in[0]); };
  m["clamp_both_bounds"] = [](auto in, auto&) { return clamp(in[0], -0.5, 0.7); };
  m["clamp_min_only"] = [](auto in, auto&) { return clamp_min(in[0], 0.2); };
  m["clamp_max_only_transposed"] = [](auto in, auto&) { return clamp(T(in[0]), std::nullopt, -0.1); };
  m["clamp_at_bounds"] = [](auto in, auto&) { return clamp(in[0], -0.5, 0.75); };
  m["clamp_min_above_max"] = [](auto in, auto&) { return clamp(in[0], 1.0, -1.0); };
  m["maximum_broadcast"] = [](auto in, auto&) { return maximum(in[0], in[1]); };
  m["minimum_transposed_size1"] = [](auto in, auto&) { return minimum(T(in[0]), in[1]); };
  m["maximum_ties"] = [](auto in, auto&) { return maximum(in[0], in[1]); };
  m["minimum_ties"] = [](auto in, auto&) { return minimum(in[0], in[1]); };
  m["pow_tensor_exponent_broadcast"] = [](auto in, auto&) { return pow(in[0], in[1]); };
  m["pow_tensor_base_broadcast"] = [](auto in, auto&) { return pow(in[0], in[1]); };
  m["pow_tensor_negative_base"] = [](auto in, auto&) {
    return pow(in[0], from_vector(std::vector<double>{2, 3, 0, -1}, {4}).to(in[0].dtype()));
  };
  m["pow_tensor_at_zero"] = [](auto in, auto&) { return pow(in[0], in[1]); };
  m["cumsum_last"] = [](auto in, auto&) { return cumsum(in[0], -1); };
  m["cumsum_dim0_transposed"] = [](auto in, auto&) { return cumsum(T(in[0]), 0); };
  m["cumsum_middle"] = [](auto in, auto&) { return cumsum(in[0], 1); };
  m["mean_two_dims_keepdim"] = [](auto in, auto&) { return mean(in[0], {0, 2}, true); };
  m["var_two_dims"] = [](auto in, auto&) { return var(in[0], {0, -1}); };
  m["std_dim_keepdim"] = [](auto in, auto&) { return minitrain::std(in[0], {1}, true); };
  m["std_two_dims_biased_transposed"] = [](auto in, auto&) { return minitrain::std(T(in[0]), {1, 2}, false, 0); };
  m["std_all"] = [](auto in, auto&) { return minitrain::std(in[0]); };
  m["std_constant_row"] = [](auto in, auto&) { return minitrain::std(in[0], {1}); };
  m["min_dim"] = [](auto in, auto&) { return min(in[0], 1); };
  m["min_dim0_keepdim"] = [](auto in, auto&) { return min(in[0], 0, true); };
  m["amax_two_dims"] = [](auto in, auto&) { return amax(in[0], {0, 2}); };
  m["amax_all"] = [](auto in, auto&) { return amax(in[0]); };
  m["amin_keepdim_transposed"] = [](auto in, auto&) { return amin(T(in[0]), {1}, true); };
  m["amax_ties"] = [](auto in, auto&) { return amax(in[0], {1}); };
  m["amin_ties"] = [](auto in, auto&) { return amin(in[0], {1}); };
  m["norm2_dim"] = [](auto in, auto&) { return norm(in[0], 2, {1}); };
  m["norm2_all_transposed"] = [](auto in, auto&) { return norm(T(in[0])); };
  m["norm1_two_dims_keepdim"] = [](auto in, auto&) { return norm(in[0], 1, {0, 2}, true); };
  m["norm_inf_dim"] = [](auto in, auto&) { return norm(in[0], kInf, {-1}); };
  m["norm3_dim0"] = [](auto in, auto&) { return norm(in[0], 3, {0}); };
  m["norm1_5_dim"] = [](auto in, auto&) { return norm(in[0], 1.5, {1}); };
  m["norm2_at_zero"] = [](auto in, auto&) { return norm(in[0], 2, {1}); };
  m["norm1_at_zero"] = [](auto in, auto&) { return norm(in[0], 1, {1}); };
  m["norm3_at_zero"] = [](auto in, auto&) { return norm(in[0], 3, {1}); };
  m["norm1_5_at_zero"] = [](auto in, auto&) { return norm(in[0], 1.5, {1}); };
  m["norm_inf_ties"] = [](auto in, auto&) { return norm(in[0], kInf, {1}); };
  return m;
}

std::vector<Tensor> leaf_inputs(const Fixture& f, const std::string& name) {
  std::vector<Tensor> in;
  for (int k = 0; f.has(name + ".in." + std::to_string(k)); ++k)
    in.push_back(f.at(name + ".in." + std::to_string(k)).clone().set_requires_grad(true));
  return in;
}

// Output and every input gradient against torch's.
void check_case(const Fixture& f, const std::string& name, const OpFn& fn, parity::Report& report) {
  std::vector<Tensor> in = leaf_inputs(f, name);
  Tensor out = fn(in, Aux{f, name});
  out.backward(f.at(name + ".grad_out"));
  report.check(name, "out", out, f.at(name + ".out"));
  for (std::size_t k = 0; k < in.size(); ++k) {
    const std::string key = "grad_in." + std::to_string(k);
    Tensor grad = in[k].grad().defined() ? in[k].grad() : zeros_like(in[k]);
    report.check(name, key, grad, f.at(name + "." + key));
  }
}

// Dropout masks come from different generators (minitrain's xoshiro, torch's Philox/MT), so the values are
// compared where both frameworks kept the element: there both must give x/(1−p) and grad_out/(1−p).
void check_dropout(const Fixture& f, parity::Report& report) {
  const std::string name = "dropout";
  std::vector<Tensor> in = leaf_inputs(f, name);
  Generator gen(7);
  Tensor out = dropout(in[0], 0.3, true, gen);
  out.backward(f.at(name + ".grad_out"));
  const Tensor& ref = f.at(name + ".out");
  const Tensor kept = out.detach();
  Tensor both = mul(where(kept, ones_like(kept), zeros_like(kept)), where(ref, ones_like(ref), zeros_like(ref)));
  EXPECT_GT(sum(both).item(), 0.0) << "no element kept by both frameworks";
  report.check(name, "out(kept by both)", mul(kept, both), mul(ref, both));
  report.check(name, "grad_in.0(kept by both)", mul(in[0].grad(), both), mul(f.at(name + ".grad_in.0"), both));
  // minitrain's own mask is the same in forward and backward: dropped outputs have zero gradient.
  Tensor dropped = where(kept, zeros_like(kept), ones_like(kept));
  EXPECT_EQ(sum(mul(mul(in[0].grad(), in[0].grad()), dropped)).item(), 0.0);
}

void check_all(const std::string& file) {
  const Fixture f(file);
  parity::Report report(f.name(), parity::limit_for(f.dtype()));
  const auto table = op_table();
  const std::vector<std::string> cases = f.names("", ".out");
  for (const std::string& name : cases) {
    SCOPED_TRACE(name);
    if (name == "dropout") {
      check_dropout(f, report);
      continue;
    }
    auto it = table.find(name);
    if (it == table.end()) {
      ADD_FAILURE() << f.name() << " has case '" << name << "' that the C++ table lacks";
      continue;
    }
    check_case(f, name, it->second, report);
  }
  for (const auto& [name, fn] : table)  // every C++ case has its golden values
    EXPECT_TRUE(f.has(name + ".out")) << f.name() << " lacks case '" << name << "': regenerate the fixtures";
  EXPECT_GE(cases.size(), table.size());
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

}  // namespace

TEST(OpsParity, Float64MatchesTorch) { check_all("ops_f64.safetensors"); }
TEST(OpsParity, Float32MatchesTorch) { check_all("ops_f32.safetensors"); }
