// Every op in the library against central finite differences in float64, with a random upstream
// gradient. Cases cover broadcasting, transposed (non-contiguous) inputs, size-1 dims and extreme
// inputs. Each case prints its worst error so regressions in precision are visible in the test log.
#include <minitrain/core/factory.h>
#include <minitrain/core/gradcheck.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <optional>

using namespace minitrain;

namespace {

struct OpCase {
  std::string name;
  GradcheckFn f;
  std::vector<Tensor> inputs;
  GradcheckOptions options{};
};

Tensor rnd(const Shape& s, uint64_t seed, double scale = 1.0, double shift = 0.0) {
  Generator g(seed);
  return add(mul(randn(s, g, DType::Float64), scale), shift);
}
// Values bounded away from zero (for log, sqrt, division, relu kinks).
Tensor away_from_zero(const Shape& s, uint64_t seed) {
  Generator g(seed);
  Tensor u = rand(s, g, DType::Float64);
  Tensor sign = rand(s, g, DType::Float64);
  std::vector<double> v = u.to_vector<double>(), sg = sign.to_vector<double>();
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = (0.3 + v[i]) * (sg[i] < 0.5 ? -1 : 1);
  return from_vector(v, s);
}
Tensor positive(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return add(rand(s, g, DType::Float64), 0.5);
}

// x with every element closer than `gap` to one of `kinks` pushed out to kink ± gap: finite differences
// across a kink average the two one-sided slopes, so the check stays on one side (the value at the kink
// itself is pinned by tests/parity against torch and by tests/core/test_reductions.cpp).
Tensor steer_clear(const Tensor& x, const std::vector<double>& kinks, double gap = 0.1) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v)
    for (double k : kinks)
      if (std::abs(e - k) < gap) e = e < k ? k - gap : k + gap;
  return from_vector(v, x.shape());
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> c;
  auto T = [](const Tensor& t) { return t.transpose(0, 1); };  // a non-contiguous view
  // --- elementwise binary, with broadcasting and transposed operands
  c.push_back({"add_broadcast", [](auto in) { return add(in[0], in[1]); }, {rnd({2, 3}, 1), rnd({3}, 2)}});
  c.push_back({"add_size1_dims", [](auto in) { return add(in[0], in[1]); }, {rnd({2, 1, 3}, 3), rnd({4, 1}, 4)}});
  c.push_back({"sub_transposed", [T](auto in) { return sub(T(in[0]), in[1]); }, {rnd({3, 2}, 5), rnd({2, 3}, 6)}});
  c.push_back({"mul_broadcast", [](auto in) { return mul(in[0], in[1]); }, {rnd({4, 3}, 7), rnd({4, 1}, 8)}});
  c.push_back({"mul_transposed", [T](auto in) { return mul(T(in[0]), T(in[1])); }, {rnd({3, 4}, 9), rnd({3, 4}, 10)}});
  c.push_back({"div", [](auto in) { return div(in[0], in[1]); }, {rnd({2, 3}, 11), away_from_zero({3}, 12)}});
  c.push_back({"neg", [](auto in) { return neg(in[0]); }, {rnd({5}, 13)}});
  // --- scalar forms
  c.push_back({"add_scalar", [](auto in) { return in[0] + 1.5; }, {rnd({3, 2}, 14)}});
  c.push_back({"mul_scalar", [](auto in) { return in[0] * -2.5; }, {rnd({3, 2}, 15)}});
  c.push_back({"rsub_scalar", [](auto in) { return 3.0 - in[0]; }, {rnd({3, 2}, 16)}});
  c.push_back({"rdiv_scalar", [](auto in) { return 2.0 / in[0]; }, {away_from_zero({3, 2}, 17)}});
  c.push_back({"pow_fractional", [](auto in) { return pow(in[0], 2.5); }, {positive({4}, 18)}});
  c.push_back({"pow_cube_negative_base", [](auto in) { return pow(in[0], 3.0); }, {rnd({4}, 19)}});
  // --- elementwise functions
  c.push_back({"exp", [](auto in) { return exp(in[0]); }, {rnd({2, 3}, 20)}});
  c.push_back({"log", [](auto in) { return log(in[0]); }, {positive({2, 3}, 21)}});
  c.push_back({"sqrt", [](auto in) { return sqrt(in[0]); }, {positive({2, 3}, 22)}});
  c.push_back({"rsqrt", [](auto in) { return rsqrt(in[0]); }, {positive({2, 3}, 23)}});
  c.push_back({"tanh", [](auto in) { return tanh(in[0]); }, {rnd({2, 3}, 24)}});
  c.push_back({"sigmoid", [](auto in) { return sigmoid(in[0]); }, {rnd({2, 3}, 25, 3.0)}});
  c.push_back({"relu_away_from_kink", [](auto in) { return relu(in[0]); }, {away_from_zero({3, 3}, 26)}});
  c.push_back({"silu", [](auto in) { return silu(in[0]); }, {rnd({3, 4}, 182, 3.0)}});
  c.push_back({"gelu_erf", [](auto in) { return gelu(in[0]); }, {rnd({3, 4}, 27, 2.0)}});
  c.push_back({"gelu_tanh", [](auto in) { return gelu(in[0], GeluApproximation::Tanh); }, {rnd({3, 4}, 28, 2.0)}});
  c.push_back({"tanh_transposed", [T](auto in) { return tanh(T(in[0])); }, {rnd({3, 4}, 29)}});
  // --- reductions
  c.push_back({"sum_all", [](auto in) { return sum(in[0]); }, {rnd({2, 3, 4}, 30)}});
  c.push_back({"sum_dims_keepdim", [](auto in) { return sum(in[0], {0, 2}, true); }, {rnd({2, 3, 4}, 31)}});
  c.push_back({"sum_transposed", [T](auto in) { return sum(T(in[0]), {1}); }, {rnd({3, 4}, 32)}});
  c.push_back({"mean_dim", [](auto in) { return mean(in[0], {-1}); }, {rnd({2, 3, 4}, 33)}});
  c.push_back({"var_dim_keepdim", [](auto in) { return var(in[0], {1}, true); }, {rnd({3, 5}, 34)}});
  c.push_back({"var_all_biased", [](auto in) { return var(in[0], {}, false, 0); }, {rnd({3, 5}, 35)}});
  c.push_back({"max_dim", [](auto in) { return max(in[0], 1); }, {rnd({3, 5}, 36)}});
  c.push_back({"max_dim0_keepdim", [](auto in) { return max(in[0], 0, true); }, {rnd({4, 3}, 37)}});
  // --- piecewise-linear ops, away from their kinks (the rule at each kink is in piecewise.cpp and ops.h)
  c.push_back({"abs_away_from_kink", [](auto in) { return abs(in[0]); }, {away_from_zero({3, 4}, 210)}});
  c.push_back({"abs_transposed", [T](auto in) { return abs(T(in[0])); }, {steer_clear(rnd({4, 3}, 211), {0})}});
  // Entries below, inside and above [-0.5, 0.7], none within 0.1 of a bound.
  c.push_back({"clamp_both_bounds", [](auto in) { return clamp(in[0], -0.5, 0.7); },
               {steer_clear(rnd({4, 5}, 212), {-0.5, 0.7})}});
  c.push_back({"clamp_min_only", [](auto in) { return clamp_min(in[0], 0.2); }, {steer_clear(rnd({3, 4}, 213), {0.2})}});
  c.push_back({"clamp_max_only_transposed", [T](auto in) { return clamp(T(in[0]), std::nullopt, -0.1); },
               {steer_clear(rnd({4, 3}, 214), {-0.1})}});
  // Random operands are never within the finite-difference step of a tie.
  c.push_back({"maximum_broadcast", [](auto in) { return maximum(in[0], in[1]); }, {rnd({2, 3}, 215), rnd({3}, 216)}});
  c.push_back({"minimum_transposed_size1", [T](auto in) { return minimum(T(in[0]), in[1]); },
               {rnd({3, 2}, 217), rnd({2, 1}, 218)}});
  // --- pow with a tensor exponent: gradients to base and exponent, broadcasting both ways
  c.push_back({"pow_tensor_exponent_broadcast", [](auto in) { return pow(in[0], in[1]); },
               {positive({2, 3}, 219), rnd({3}, 220)}});
  c.push_back({"pow_tensor_base_broadcast", [](auto in) { return pow(in[0], in[1]); }, {positive({3, 1}, 221), rnd({3, 4}, 222)}});
  // A negative base with integer exponents: the exponent's gradient (x^e·log x) is NaN there, so the
  // exponent is a constant and only the base is checked.
  c.push_back({"pow_tensor_negative_base", [](auto in) {
                 return pow(in[0], from_vector(std::vector<double>{2, 3, 0, -1}, {4}));
               }, {away_from_zero({3, 4}, 223)}});
  // --- cumsum along each dim, of a transposed view
  c.push_back({"cumsum_last", [](auto in) { return cumsum(in[0], -1); }, {rnd({2, 3, 4}, 224)}});
  c.push_back({"cumsum_dim0_transposed", [T](auto in) { return cumsum(T(in[0]), 0); }, {rnd({3, 5}, 225)}});
  c.push_back({"cumsum_middle", [](auto in) { return cumsum(in[0], 1); }, {rnd({2, 4, 3}, 226)}});
  // --- reductions over several dims
  c.push_back({"mean_two_dims_keepdim", [](auto in) { return mean(in[0], {0, 2}, true); }, {rnd({2, 3, 4}, 227)}});
  c.push_back({"var_two_dims", [](auto in) { return var(in[0], {0, -1}); }, {rnd({3, 2, 4}, 228)}});
  c.push_back({"std_dim_keepdim", [](auto in) { return minitrain::std(in[0], {1}, true); }, {rnd({3, 5}, 229)}});
  c.push_back({"std_two_dims_biased_transposed", [T](auto in) { return minitrain::std(T(in[0]), {1, 2}, false, 0); },
               {rnd({3, 2, 4}, 230)}});
  c.push_back({"std_all", [](auto in) { return minitrain::std(in[0]); }, {rnd({4, 3}, 231)}});
  c.push_back({"min_dim", [](auto in) { return min(in[0], 1); }, {rnd({3, 5}, 232)}});
  c.push_back({"min_dim0_keepdim", [](auto in) { return min(in[0], 0, true); }, {rnd({4, 3}, 233)}});
  // Random entries never tie, so one element per reduction gets the gradient (ties are pinned in
  // test_reductions.cpp and by the parity fixtures).
  c.push_back({"amax_two_dims", [](auto in) { return amax(in[0], {0, 2}); }, {rnd({2, 3, 4}, 234)}});
  c.push_back({"amax_all", [](auto in) { return amax(in[0]); }, {rnd({3, 4}, 235)}});
  c.push_back({"amin_keepdim_transposed", [T](auto in) { return amin(T(in[0]), {1}, true); }, {rnd({4, 3}, 236)}});
  // --- norms: p = 2, 1 (away from abs's kink at 0), infinity, and p = 3, 1.5 (the general formula)
  c.push_back({"norm2_dim", [](auto in) { return norm(in[0], 2, {1}); }, {rnd({3, 4}, 237)}});
  c.push_back({"norm2_all_transposed", [T](auto in) { return norm(T(in[0])); }, {rnd({3, 4}, 238)}});
  c.push_back({"norm1_two_dims_keepdim", [](auto in) { return norm(in[0], 1, {0, 2}, true); }, {away_from_zero({2, 3, 4}, 239)}});
  c.push_back({"norm_inf_dim", [](auto in) { return norm(in[0], std::numeric_limits<double>::infinity(), {-1}); },
               {rnd({3, 5}, 240)}});
  c.push_back({"norm3_dim0", [](auto in) { return norm(in[0], 3, {0}); }, {rnd({4, 3}, 241)}});
  c.push_back({"norm1_5_dim", [](auto in) { return norm(in[0], 1.5, {1}); }, {away_from_zero({3, 4}, 242)}});
  // --- matmul: 2-D, transposed operands (gemm flags), batched with broadcast batch dims
  c.push_back({"matmul_2d", [](auto in) { return matmul(in[0], in[1]); }, {rnd({3, 4}, 38), rnd({4, 5}, 39)}});
  c.push_back({"matmul_transposed", [T](auto in) { return matmul(T(in[0]), T(in[1])); }, {rnd({4, 3}, 40), rnd({5, 4}, 41)}});
  c.push_back({"matmul_batched_broadcast", [](auto in) { return matmul(in[0], in[1]); },
               {rnd({2, 1, 3, 4}, 42), rnd({3, 4, 2}, 43)}});
  c.push_back({"matmul_batched_transposed", [](auto in) { return matmul(in[0], in[1].transpose(-1, -2)); },
               {rnd({2, 3, 4}, 44), rnd({2, 5, 4}, 45)}});
  c.push_back({"matmul_size1", [](auto in) { return matmul(in[0], in[1]); }, {rnd({1, 4}, 46), rnd({4, 1}, 47)}});
  // --- linear: x·Wᵀ + b in one gemm; leading dims flattened, a transposed input, no bias, one row
  c.push_back({"linear_3d", [](auto in) { return linear(in[0], in[1], in[2]); },
               {rnd({2, 3, 4}, 120), rnd({5, 4}, 121), rnd({5}, 122)}});
  c.push_back({"linear_transposed_input_no_bias", [T](auto in) { return linear(T(in[0]), in[1]); },
               {rnd({4, 3}, 123), rnd({2, 4}, 124)}});
  c.push_back({"linear_one_row", [](auto in) { return linear(in[0], in[1], in[2]); },
               {rnd({1, 4}, 125), rnd({3, 4}, 126), rnd({3}, 127)}});
  c.push_back({"linear_one_output", [](auto in) { return linear(in[0], in[1], in[2]); },
               {rnd({3, 4}, 128), rnd({1, 4}, 129), rnd({1}, 130)}});
  // --- softmax family
  c.push_back({"softmax_last", [](auto in) { return softmax(in[0], -1); }, {rnd({3, 5}, 48, 2.0)}});
  c.push_back({"softmax_dim0", [](auto in) { return softmax(in[0], 0); }, {rnd({4, 3}, 49, 2.0)}});
  c.push_back({"softmax_extreme_1e4", [](auto in) { return softmax(in[0], -1); }, {rnd({3, 4}, 50, 1e4)}});
  c.push_back({"log_softmax", [](auto in) { return log_softmax(in[0], 1); }, {rnd({3, 5}, 51, 2.0)}});
  c.push_back({"log_softmax_extreme_1e4", [](auto in) { return log_softmax(in[0], -1); }, {rnd({3, 4}, 52, 1e4)}});
  c.push_back({"softmax_causal_masked", [](auto in) {
                 return softmax(masked_fill(in[0], causal_mask(4, DType::Float64), -std::numeric_limits<double>::infinity()), -1);
               }, {rnd({2, 4, 4}, 53)}});
  c.push_back({"softmax_fully_masked_row", [](auto in) {
                 Tensor mask = from_vector(std::vector<double>{1, 1, 1, 0, 1, 0}, {2, 3});
                 return softmax(masked_fill(in[0], mask, -std::numeric_limits<double>::infinity()), -1);
               }, {rnd({2, 3}, 54)}});
  // --- masking and selection
  c.push_back({"masked_fill_broadcast", [](auto in) {
                 return masked_fill(in[0], from_vector(std::vector<double>{1, 0, 1}, {3}), 0.5);
               }, {rnd({2, 3}, 55)}});
  c.push_back({"where_broadcast", [](auto in) {
                 return where(from_vector(std::vector<double>{1, 0, 0, 1}, {2, 2}), in[0], in[1]);
               }, {rnd({2, 2}, 56), rnd({2}, 57)}});
  c.push_back({"masked_fill_bool_mask", [](auto in) {
                 return masked_fill(in[0], from_vector(std::vector<bool>{true, false, true}, {3}), -2.0);
               }, {rnd({2, 3}, 200)}});
  c.push_back({"where_bool_condition", [](auto in) {
                 return where(from_vector(std::vector<bool>{false, true}, {2, 1}), in[0], in[1]);
               }, {rnd({2, 3}, 201), rnd({3}, 202)}});
  // --- index ops: the gradient scatter-adds into the positions read (repeated indices add up)
  c.push_back({"gather_dim0_repeats", [](auto in) {
                 return gather(in[0], 0, from_vector(std::vector<int64_t>{2, 0, 2, 2, 1, 0}, {2, 3}));
               }, {rnd({3, 4}, 203)}});
  c.push_back({"gather_last_dim_transposed", [T](auto in) {
                 return gather(T(in[0]), -1, from_vector(std::vector<int64_t>{1, 1, 0, 2, 2, 0}, {3, 2}));
               }, {rnd({3, 3}, 204)}});
  c.push_back({"index_select_dim1_repeats", [](auto in) {
                 return index_select(in[0], 1, from_vector(std::vector<int64_t>{3, 0, 3}, {3}));
               }, {rnd({2, 4, 2}, 205)}});
  // Distinct values (randn), so that the chosen entries do not change under the finite-difference step.
  c.push_back({"topk_values_largest", [](auto in) { return topk(in[0], 2, 1).first; }, {rnd({3, 5}, 206)}});
  c.push_back({"topk_values_smallest_dim0", [](auto in) { return topk(in[0], 2, 0, false).first; }, {rnd({4, 3}, 207)}});
  // --- embedding, cross-entropy
  c.push_back({"embedding_repeated_ids", [](auto in) { return embedding(in[0], from_vector(std::vector<int64_t>{1, 3, 1, 0, 1, 3}, {2, 3})); },
               {rnd({5, 4}, 58)}});
  c.push_back({"cross_entropy", [](auto in) { return cross_entropy(in[0], from_vector(std::vector<int64_t>{0, 2, 1, 2}, {4})); },
               {rnd({4, 3}, 59)}});
  c.push_back({"cross_entropy_3d_ignore_index", [](auto in) {
                 return cross_entropy(in[0], from_vector(std::vector<int64_t>{1, -100, 0, 3}, {2, 2}));
               }, {rnd({2, 2, 4}, 60)}});
  c.push_back({"cross_entropy_extreme_1e4", [](auto in) { return cross_entropy(in[0], from_vector(std::vector<int64_t>{0, 1, 2}, {3})); },
               {rnd({3, 4}, 61, 1e4)}});
  // --- layer norm: plain, large-mean rows, constant rows, no affine
  c.push_back({"layer_norm", [](auto in) { return layer_norm(in[0], in[1], in[2]); },
               {rnd({3, 6}, 62), rnd({6}, 63, 0.5, 1.0), rnd({6}, 64)}});
  c.push_back({"layer_norm_mean_1e4", [](auto in) { return layer_norm(in[0], in[1], in[2]); },
               {rnd({2, 5}, 65, 1.0, 1e4), rnd({5}, 66, 0.5, 1.0), rnd({5}, 67)}, {1e-6, 1e-5, 1e-4}});
  c.push_back({"layer_norm_constant_rows", [](auto in) { return layer_norm(add(mul(in[0], 0.0), 3.0) + in[1], in[2], Tensor()); },
               {rnd({2, 4}, 68), rnd({2, 1}, 69), rnd({4}, 70)}});
  c.push_back({"layer_norm_no_affine_transposed", [T](auto in) { return layer_norm(T(in[0]), Tensor(), Tensor()); },
               {rnd({5, 3}, 71)}});
  // --- rms norm: weight and x, no weight on a transposed view, eps of the size of the mean square
  c.push_back({"rms_norm", [](auto in) { return rms_norm(in[0], in[1], 1e-6); }, {rnd({4, 7}, 230), rnd({7}, 231, 0.5, 1.0)}});
  c.push_back({"rms_norm_no_weight_transposed", [T](auto in) { return rms_norm(T(in[0]), Tensor(), 1e-6); }, {rnd({5, 3}, 232)}});
  c.push_back({"rms_norm_eps_dominant", [](auto in) { return rms_norm(in[0], in[1], 0.5); }, {rnd({2, 3, 5}, 233, 0.3), rnd({5}, 234)}});
  // --- rotary embedding, both layouts, (B, H, T, D) with seq_dim -2 and (B, T, H, D) with -3; the tables
  // are constants built inside (start position 2)
  for (RotaryLayout layout : {RotaryLayout::Halves, RotaryLayout::Interleaved})
    for (int64_t seq_dim : {-2, -3}) {
      const std::string name = std::string("rotary_") + (layout == RotaryLayout::Halves ? "halves" : "interleaved") +
                               (seq_dim == -2 ? "_seq_dim_minus2" : "_seq_dim_minus3");
      c.push_back({name, [layout, seq_dim](auto in) {
                     const auto tables = rotary_tables(6, 2, in[0].size(seq_dim), 100.0, DType::Float64);
                     return rotary_embedding(in[0], tables.first, tables.second, layout, seq_dim);
                   }, {rnd({2, 3, 4, 6}, seq_dim == -2 ? 235 : 236)}});
    }
  // --- dropout with a fixed mask (generator created inside the function)
  c.push_back({"dropout", [](auto in) {
                 Generator g(7);
                 return dropout(in[0], 0.3, true, g);
               }, {rnd({4, 5}, 72)}});
  // --- fused attention: causal, with dropout, and queries at the end of longer keys (KV cache)
  c.push_back({"attention_causal", [](auto in) { return scaled_dot_product_attention(in[0], in[1], in[2], 0.5, true); },
               {rnd({2, 4, 3}, 88), rnd({2, 4, 3}, 89), rnd({2, 4, 2}, 90)}});
  c.push_back({"attention_dropout", [](auto in) {
                 Generator g(3);
                 return scaled_dot_product_attention(in[0], in[1], in[2], 0.7, true, 0.25, true, &g);
               }, {rnd({1, 2, 4, 3}, 91), rnd({1, 2, 4, 3}, 92), rnd({1, 2, 4, 3}, 93)}});
  c.push_back({"attention_kv_cache_rows", [](auto in) { return scaled_dot_product_attention(in[0], in[1], in[2], 0.6, true); },
               {rnd({2, 2, 3}, 94), rnd({2, 5, 3}, 95), rnd({2, 5, 3}, 96)}});
  c.push_back({"attention_not_causal_transposed", [](auto in) {
                 return scaled_dot_product_attention(in[0].transpose(-1, -2), in[1], in[2], 0.4, false);
               }, {rnd({2, 3, 4}, 97), rnd({2, 5, 3}, 98), rnd({2, 5, 2}, 99)}});
  c.push_back({"attention_on_packed_qkv_views", [](auto in) {
                 // The heads of a packed (B, T, 3C) projection, read in place (rows 3C apart), as in MHA.
                 auto head = [&](int64_t part) { return in[0].narrow(2, part * 6, 6).reshape({2, 4, 2, 3}).transpose(1, 2); };
                 return scaled_dot_product_attention(head(0), head(1), head(2), 0.5, true);
               }, {rnd({2, 4, 18}, 100)}});
  // --- fused attention with masks (bool: true = take part; float: added, differentiable). Each mask
  // leaves at least one query row with every key masked: its output is 0 and its gradients 0, and the
  // finite differences see a constant there. A key-padding mask is the (B, 1, 1, S) case.
  c.push_back({"attention_bool_mask_cross_lengths", [](auto in) {
                 const Tensor m = from_vector(std::vector<bool>{1, 0, 1, 1, 0,  0, 0, 0, 0, 0,  0, 1, 1, 0, 1}, {3, 5});
                 return scaled_dot_product_attention(in[0], in[1], in[2], m, 0.5, false);  // (Tq, Tk) over the batch
               }, {rnd({2, 3, 4}, 160), rnd({2, 5, 4}, 161), rnd({2, 5, 3}, 162)}});
  c.push_back({"attention_key_padding_4d", [](auto in) {
                 // batch 0 keeps keys 0..2, batch 1 keeps none: its every query row is fully masked
                 const Tensor m = from_vector(std::vector<bool>{1, 1, 1, 0,  0, 0, 0, 0}, {2, 1, 1, 4});
                 return scaled_dot_product_attention(in[0], in[1], in[2], m, 0.6, false);
               }, {rnd({2, 2, 3, 4}, 163), rnd({2, 2, 4, 4}, 164), rnd({2, 2, 4, 2}, 165)}});
  c.push_back({"attention_bool_mask_and_causal", [](auto in) {
                 // row 0 loses its only causal key, row 2 keeps key 1 only
                 const Tensor m = from_vector(std::vector<bool>{0, 1, 1, 1,  1, 1, 1, 1,  0, 1, 0, 1,  1, 0, 1, 1}, {4, 4});
                 return scaled_dot_product_attention(in[0], in[1], in[2], m, 0.7, true);
               }, {rnd({2, 4, 3}, 166), rnd({2, 4, 3}, 167), rnd({2, 4, 3}, 168)}});
  c.push_back({"attention_float_mask_grad", [](auto in) {  // the mask is an input: dA = dS
                 return scaled_dot_product_attention(in[0], in[1], in[2], in[3], 0.5, false);
               }, {rnd({2, 2, 3, 4}, 169), rnd({2, 2, 5, 4}, 170), rnd({2, 2, 5, 3}, 171), rnd({2, 1, 3, 5}, 172)}});
  c.push_back({"attention_float_mask_inf_rows", [](auto in) {
                 constexpr double kInf = std::numeric_limits<double>::infinity();
                 const Tensor m = from_vector(std::vector<double>{0.5, -kInf, -1.0, -kInf, -kInf, -kInf, 2.0, 0.0, -kInf}, {3, 3});
                 return scaled_dot_product_attention(in[0], in[1], in[2], m, 0.5, true);
               }, {rnd({2, 3, 4}, 173), rnd({2, 3, 4}, 174), rnd({2, 3, 2}, 175)}});
  c.push_back({"attention_mask_broadcast_over_keys", [](auto in) {
                 // (B, 1, Tq, 1): whole query rows on or off, a column-broadcast view the kernel copies
                 const Tensor m = from_vector(std::vector<bool>{1, 0, 1,  0, 1, 1}, {2, 1, 3, 1});
                 return scaled_dot_product_attention(in[0], in[1], in[2], m, 0.5, false);
               }, {rnd({2, 2, 3, 4}, 176), rnd({2, 2, 4, 4}, 177), rnd({2, 2, 4, 3}, 178)}});
  c.push_back({"attention_mask_dropout", [](auto in) {
                 Generator g(5);
                 const Tensor m = from_vector(std::vector<bool>{1, 1, 0, 0,  0, 0, 0, 0,  1, 0, 1, 1,  1, 1, 1, 1}, {4, 4});
                 return scaled_dot_product_attention(in[0], in[1], in[2], m, 0.6, true, 0.25, true, &g);
               }, {rnd({2, 1, 4, 3}, 179), rnd({2, 1, 4, 3}, 180), rnd({2, 1, 4, 3}, 181)}});
  // --- multi_head_attention on a packed (B, T, 3C) projection: n_head 1 and 3, causal or not, dropout
  // (the generator created inside, so every call draws the same masks), a non-contiguous qkv
  c.push_back({"mha_causal_3_heads", [](auto in) { return multi_head_attention(in[0], 3, 0.5, true); },
               {rnd({2, 4, 18}, 101)}});
  c.push_back({"mha_not_causal_3_heads", [](auto in) { return multi_head_attention(in[0], 3, 0.45, false); },
               {rnd({2, 4, 18}, 102)}});
  c.push_back({"mha_causal_1_head", [](auto in) { return multi_head_attention(in[0], 1, 0.6, true); },
               {rnd({2, 3, 12}, 103)}});
  c.push_back({"mha_not_causal_1_head", [](auto in) { return multi_head_attention(in[0], 1, 0.6, false); },
               {rnd({1, 5, 9}, 104)}});
  c.push_back({"mha_dropout_3_heads", [](auto in) {
                 Generator g(3);
                 return multi_head_attention(in[0], 3, 0.5, true, 0.25, true, &g);
               }, {rnd({2, 4, 18}, 105)}});
  c.push_back({"mha_dropout_not_causal_1_head", [](auto in) {
                 Generator g(4);
                 return multi_head_attention(in[0], 1, 0.5, false, 0.3, true, &g);
               }, {rnd({1, 4, 12}, 106)}});
  c.push_back({"mha_transposed_input", [](auto in) { return multi_head_attention(in[0].transpose(0, 1), 3, 0.5, true); },
               {rnd({4, 2, 18}, 107)}});
  // --- grouped_query_attention: (n_head + 2 n_kv_head) · hs columns; 2 query heads per kv head, MQA
  c.push_back({"gqa_causal_4_heads_2_kv", [](auto in) { return grouped_query_attention(in[0], 4, 2, 0.5, true); },
               {rnd({2, 5, 24}, 183)}});
  c.push_back({"mqa_not_causal_3_heads", [](auto in) { return grouped_query_attention(in[0], 3, 1, 0.45, false); },
               {rnd({2, 4, 15}, 184)}});
  c.push_back({"gqa_dropout", [](auto in) {
                 Generator g(6);
                 return grouped_query_attention(in[0], 4, 2, 0.5, true, 0.25, true, &g);
               }, {rnd({1, 4, 16}, 185)}});
  // --- shape ops
  c.push_back({"reshape", [](auto in) { return in[0].reshape({3, -1}) * in[1]; }, {rnd({2, 6}, 73), rnd({4}, 74)}});
  c.push_back({"reshape_of_transposed", [T](auto in) { return T(in[0]).reshape({-1}); }, {rnd({3, 4}, 75)}});
  c.push_back({"permute", [](auto in) { return in[0].permute({2, 0, 1}) * in[1]; }, {rnd({2, 3, 4}, 76), rnd({4, 1, 3}, 77)}});
  c.push_back({"narrow_slice", [](auto in) { return in[0].narrow(0, 1, 2).narrow(1, 1, 2) + in[0].slice(0, 1, 3).narrow(1, 0, 2); }, {rnd({3, 4}, 78)}});
  c.push_back({"cat", [](auto in) { return cat({in[0], in[1], in[0]}, 1); }, {rnd({2, 3}, 79), rnd({2, 1}, 80)}});
  c.push_back({"stack", [T](auto in) { return stack({in[0], T(in[1])}, 0); }, {rnd({2, 3}, 81), rnd({3, 2}, 82)}});
  c.push_back({"split_chunk", [](auto in) {
                 auto parts = split(in[0], 2, 1);
                 auto halves = chunk(in[0], 2, 0);
                 return parts[0] * parts[2].expand({3, 2}) + sum(halves[0].narrow(1, 0, 2), {0}, true);
               }, {rnd({3, 5}, 83)}});
  c.push_back({"unsqueeze_squeeze_expand", [](auto in) { return in[0].unsqueeze(1).expand({3, 2, 4}).squeeze(0) * in[1]; },
               {rnd({3, 4}, 84), rnd({2, 1}, 85)}});
  c.push_back({"contiguous_clone", [T](auto in) { return T(in[0]).contiguous().clone() * 2.0; }, {rnd({3, 4}, 86)}});
  return c;
}

// Test names and failure messages show the case name instead of the object's bytes.
void PrintTo(const OpCase& op, std::ostream* os) { *os << op.name; }

class OpGradcheck : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpGradcheck, MatchesFiniteDifferences) {
  const OpCase& op = GetParam();
  GradcheckResult r = gradcheck(op.f, op.inputs, op.options);
  std::cout << "[gradcheck] " << op.name << ": worst relative error " << r.max_relative_error << " (" << r.summary()
            << ")\n";
  EXPECT_TRUE(r.passed) << op.name << ": " << r.summary();
  EXPECT_GT(r.entries_checked, 0);
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpGradcheck, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) { return info.param.name; });

}  // namespace

// The checker itself must be able to fail: x.detach() hides a term from backward.
TEST(Gradcheck, DetectsAWrongGradient) {
  GradcheckResult r = gradcheck([](auto in) { return mul(in[0], in[0].detach()); }, {rnd({4}, 99)});
  EXPECT_FALSE(r.passed) << r.summary();
  EXPECT_GT(r.worst_ratio, 1.0);
}

TEST(Gradcheck, WorstEntryIsReported) {
  GradcheckResult r = gradcheck([](auto in) { return mul(in[0], in[1].detach()); }, {rnd({3}, 1), rnd({3}, 2)});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.worst_input, 1u);  // the input whose gradient was dropped
  EXPECT_EQ(r.analytic, 0.0);
  EXPECT_NE(r.summary().find("FAILED"), std::string::npos);
}

// The central difference both checkers share: the derivative of a known function, the entry left exactly
// as it was (and the version untouched: the caller decides), and clear errors.
TEST(Gradcheck, CentralDifferenceOfACubeRestoresTheEntry) {
  Tensor x = from_vector(std::vector<double>{0.5, -1.25, 2.0}, {3});
  std::vector<double> seen;  // the perturbed entry, as the objective sees it
  const auto cube_sum = [&] {
    seen.push_back(x.to_vector<double>()[1]);
    return sum(mul(mul(x, x), x)).item();
  };
  const uint64_t version = x.version();
  const double numeric = central_difference(x, 1, 1e-4, cube_sum);
  EXPECT_NEAR(numeric, 3 * 1.25 * 1.25, 1e-7);  // error h² = 1e-8
  EXPECT_EQ(seen, (std::vector<double>{-1.25 + 1e-4, -1.25 - 1e-4}));
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{0.5, -1.25, 2.0}));
  EXPECT_EQ(x.version(), version);

  EXPECT_THROW(central_difference(x, 3, 1e-4, cube_sum), std::invalid_argument);
  EXPECT_THROW(central_difference(x, -1, 1e-4, cube_sum), std::invalid_argument);
  Tensor single = x.to(DType::Float32);
  EXPECT_THROW(central_difference(single, 0, 1e-4, cube_sum), std::invalid_argument);  // not float64
}
