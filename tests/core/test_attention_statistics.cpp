// The statistics the attention kernels report (`observed`) are those of the scores and weights they
// computed: equal to attention_statistics_of on the composed steps (scale, causal mask, attention mask and
// all), the same from the packed multi_head_attention as from scaled_dot_product_attention on split heads,
// untouched by dropout, independent of the thread count, and the output is the same whether observed or not.
#include <minitrain/core/attention_statistics.h>
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/threads.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace minitrain;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The statistics of softmax(q·kᵀ·scale + mask, causal) written out in composed ops, in float64.
AttentionStatistics composed_statistics(const Tensor& q, const Tensor& k, double scale, bool causal,
                                        const Tensor& bool_mask = Tensor()) {
  Tensor scores = mul(matmul(q.to(DType::Float64), k.to(DType::Float64).transpose(-2, -1)), scale);
  if (bool_mask.defined()) scores = masked_fill(scores, logical_not(bool_mask), -kInf);
  if (causal) scores = masked_fill(scores, causal_mask(q.size(-2), k.size(-2), DType::Float64), -kInf);
  return attention_statistics_of(scores, softmax(scores, -1));
}

void expect_equal(const AttentionStatistics& got, const AttentionStatistics& want, double tol) {
  EXPECT_EQ(got.rows, want.rows);
  EXPECT_NEAR(got.entropy, want.entropy, tol);
  EXPECT_NEAR(got.normalized_entropy, want.normalized_entropy, tol);
  EXPECT_NEAR(got.max_probability, want.max_probability, tol);
  EXPECT_NEAR(got.logit_std, want.logit_std, tol * std::max(1.0, want.logit_std));
}

}  // namespace

TEST(AttentionStatistics, KernelReportsTheRowsItNormalised) {
  Generator gen(7);
  // Tq < Tk: queries at the end of a longer key sequence, as after a KV cache.
  const Tensor q = randn({2, 3, 4, 8}, gen, DType::Float64), k = randn({2, 3, 6, 8}, gen, DType::Float64);
  const Tensor v = randn({2, 3, 6, 5}, gen, DType::Float64);
  for (const double scale : {0.1, 0.35, 3.0})
    for (const bool causal : {false, true}) {
      SCOPED_TRACE("scale " + std::to_string(scale) + (causal ? ", causal" : ""));
      AttentionStatistics got;
      const Tensor y = scaled_dot_product_attention(q, k, v, scale, causal, 0.0, false, nullptr, &got);
      expect_equal(got, composed_statistics(q, k, scale, causal), 1e-12);
      EXPECT_EQ(y.to_vector<double>(), scaled_dot_product_attention(q, k, v, scale, causal).to_vector<double>());
    }
}

TEST(AttentionStatistics, MaskedKeysTakeNoPartAndFullyMaskedRowsAreLeftOut) {
  Generator gen(8);
  const Tensor q = randn({1, 2, 5, 4}, gen, DType::Float64), k = randn({1, 2, 5, 4}, gen, DType::Float64);
  const Tensor v = randn({1, 2, 5, 4}, gen, DType::Float64);
  // Key 3 is masked for every query; query 1 sees nothing at all (a row of −inf).
  Tensor mask = ones({5, 5}, DType::Bool);
  for (int64_t i = 0; i < 5; ++i) mask.set({i, 3}, 0.0);
  for (int64_t j = 0; j < 5; ++j) mask.set({1, j}, 0.0);
  AttentionStatistics got;
  scaled_dot_product_attention(q, k, v, mask, 0.8, false, 0.0, false, nullptr, &got);
  const AttentionStatistics want = composed_statistics(q, k, 0.8, false, mask);
  EXPECT_EQ(want.rows, 2 * 4);  // heads · the rows with at least two keys
  expect_equal(got, want, 1e-12);
  // With the causal mask too, query 0 sees one key and query 1 none: left out.
  scaled_dot_product_attention(q, k, v, mask, 0.8, true, 0.0, false, nullptr, &got);
  expect_equal(got, composed_statistics(q, k, 0.8, true, mask), 1e-12);
}

TEST(AttentionStatistics, PackedKernelEqualsSplitHeadsAndIgnoresDropout) {
  Generator gen(9);
  const int64_t B = 2, T = 7, C = 12, nh = 3, hs = C / nh;
  const Tensor qkv = randn({B, T, 3 * C}, gen, DType::Float64);
  const auto heads = [&](int64_t part) { return qkv.narrow(2, part * C, C).reshape({B, T, nh, hs}).transpose(1, 2); };
  AttentionStatistics packed, packed_dropout, split;
  multi_head_attention(qkv, nh, 0.6, true, 0.0, false, nullptr, &packed);
  Generator drop(3);
  multi_head_attention(qkv, nh, 0.6, true, 0.5, true, &drop, &packed_dropout);  // weights before dropout
  scaled_dot_product_attention(heads(0), heads(1), heads(2), 0.6, true, 0.0, false, nullptr, &split);
  expect_equal(packed, split, 1e-12);
  expect_equal(packed_dropout, split, 1e-12);
  expect_equal(split, composed_statistics(heads(0), heads(1), 0.6, true), 1e-12);
}

TEST(AttentionStatistics, Float32KernelAgreesWithFloat64) {
  Generator gen(10);
  const Tensor q = randn({2, 2, 16, 8}, gen), k = randn({2, 2, 16, 8}, gen), v = randn({2, 2, 16, 8}, gen);
  AttentionStatistics got;
  scaled_dot_product_attention(q, k, v, 0.5, true, 0.0, false, nullptr, &got);
  expect_equal(got, composed_statistics(q, k, 0.5, true), 1e-5);
}

TEST(AttentionStatistics, SameForEveryThreadCount) {
  Generator gen(11);
  const Tensor qkv = randn({4, 32, 3 * 16}, gen);
  const int before = num_threads();
  AttentionStatistics one, two;
  set_num_threads(1);
  multi_head_attention(qkv, 4, 0.25, true, 0.0, false, nullptr, &one);
  set_num_threads(2);
  multi_head_attention(qkv, 4, 0.25, true, 0.0, false, nullptr, &two);
  set_num_threads(before);
  EXPECT_EQ(one.rows, two.rows);
  EXPECT_EQ(one.entropy, two.entropy);  // bit-identical: per-slice sums added in slice order
  EXPECT_EQ(one.logit_std, two.logit_std);
}

TEST(AttentionStatistics, OfRejectsMismatchedShapes) {
  try {
    attention_statistics_of(zeros({2, 3}), zeros({3, 2}));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("attention_statistics_of"), std::string::npos) << e.what();
  }
}
