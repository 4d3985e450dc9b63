// Results for a given thread count are deterministic, and the splits minitrain makes (GEMMs by rows or
// columns of C, batched GEMMs by batch, LayerNorm and RMSNorm by rows with dw/db summed in fixed row order,
// rotary embedding by rows, attention by (batch, head) slice) give the same bits on 1 and 2 threads. Shapes
// are chosen large enough that parallel_for really splits them (its work thresholds are in matmul.cpp,
// layer_norm.cpp, rms_norm.cpp, rotary_embedding.cpp, attention.cpp).
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/threads.h>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace minitrain;

namespace {

Tensor rnd32(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g, DType::Float32);
}

// The forward output and every input gradient of one run, as float32 values.
using Results = std::vector<std::vector<float>>;

// Runs f on fresh leaf copies of `inputs`, backward with a fixed random upstream gradient.
Results run(int threads, const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs) {
  set_num_threads(threads);
  EXPECT_EQ(num_threads(), threads);
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) leaves.push_back(t.clone().detach().set_requires_grad(true));
  Tensor out = f(leaves);
  Generator g(4242);
  out.backward(randn(out.shape(), g, out.dtype()));
  Results r{out.to_vector<float>()};
  for (const Tensor& l : leaves) r.push_back(l.grad().to_vector<float>());
  return r;
}

// Bitwise comparison (not ==: that would call -0 and +0 equal and NaN unequal); reports how many
// elements differ and by how much at most.
void expect_same_bits(const Results& a, const Results& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    int64_t differing = 0;
    double max_diff = 0;
    for (std::size_t j = 0; j < a[i].size(); ++j)
      if (std::memcmp(&a[i][j], &b[i][j], sizeof(float)) != 0) {
        ++differing;
        max_diff = std::max(max_diff, std::fabs(static_cast<double>(a[i][j]) - b[i][j]));
      }
    EXPECT_EQ(differing, 0) << what << ": " << (i == 0 ? std::string("output") : "gradient of input " + std::to_string(i - 1))
                            << " differs in " << differing << " of " << a[i].size() << " elements, max |diff| "
                            << max_diff;
  }
}

void expect_thread_independent(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                               const std::vector<Tensor>& inputs, const std::string& what) {
  NumThreadsGuard guard(1);  // run() sets the counts; the guard puts the caller's back, however this ends
  const Results one = run(1, f, inputs), two = run(2, f, inputs), two_again = run(2, f, inputs),
                one_again = run(1, f, inputs);
  expect_same_bits(two, two_again, what + " (2 threads, repeated)");
  expect_same_bits(one, one_again, what + " (1 thread, repeated)");
  expect_same_bits(one, two, what + " (1 vs 2 threads)");
}

}  // namespace

// The comparison itself must see a 1-ulp difference and the sign of zero.
TEST(ThreadDeterminism, BitwiseComparisonSeesOneUlpAndSignedZero) {
  static const Results a{{1.0f, 2.0f}}, b{{1.0f, std::nextafter(2.0f, 3.0f)}};
  EXPECT_NONFATAL_FAILURE(expect_same_bits(a, b, "one ulp"), "differs in 1 of 2 elements");
  static const Results z{{0.0f}}, nz{{-0.0f}};
  EXPECT_NONFATAL_FAILURE(expect_same_bits(z, nz, "signed zero"), "differs in 1 of 1 elements");
}

// The count set is the count seen, and the library's NumThreadsGuard restores the caller's on a normal
// exit, on an exception, and after changes made inside its scope; a bad count changes nothing.
// Mutation killed: ~NumThreadsGuard not restoring (this test used to restore with a guard of its own,
// so it could not fail on the library).
TEST(ThreadDeterminism, SetNumThreadsIsVisibleAndRestored) {
  const int before = num_threads();
  const int other = before == 1 ? 2 : 1;
  {
    NumThreadsGuard guard(other);
    EXPECT_EQ(num_threads(), other);
    set_num_threads(3);
    EXPECT_EQ(num_threads(), 3);
  }
  EXPECT_EQ(num_threads(), before);
  try {
    NumThreadsGuard guard(other);
    throw std::runtime_error("leaving the scope by an exception");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(num_threads(), before);
  EXPECT_THROW(NumThreadsGuard guard(0), std::invalid_argument);
  EXPECT_THROW(set_num_threads(0), std::invalid_argument);
  EXPECT_EQ(num_threads(), before);
}

// 768x128 @ 128x512: C has more rows than columns, so it is split by rows.
TEST(ThreadDeterminism, MatmulSplitByRows) {
  expect_thread_independent([](auto in) { return matmul(in[0], in[1]); }, {rnd32({768, 128}, 1), rnd32({128, 512}, 2)},
                            "matmul 768x128 @ 128x512");
}

// 128x96 @ 96x768: split by columns.
TEST(ThreadDeterminism, MatmulSplitByColumns) {
  expect_thread_independent([](auto in) { return matmul(in[0], in[1]); }, {rnd32({128, 96}, 3), rnd32({96, 768}, 4)},
                            "matmul 128x96 @ 96x768");
}

// Both operands stored transposed (BLAS transpose flags, and the backward's layout-preserving path).
TEST(ThreadDeterminism, MatmulTransposedOperands) {
  expect_thread_independent([](auto in) { return matmul(in[0].transpose(0, 1), in[1].transpose(0, 1)); },
                            {rnd32({128, 768}, 5), rnd32({512, 128}, 6)}, "matmul (128x768)ᵀ @ (512x128)ᵀ");
  // Linear's pattern: x @ Wᵀ with W (out, in).
  expect_thread_independent([](auto in) { return matmul(in[0], in[1].transpose(0, 1)); },
                            {rnd32({768, 128}, 7), rnd32({512, 128}, 8)}, "matmul x @ Wᵀ");
  // The fused op, bias as the gemm's starting value: rows split (768 x 512) and columns split (64 x 512).
  expect_thread_independent([](auto in) { return linear(in[0], in[1], in[2]); },
                            {rnd32({12, 64, 128}, 30), rnd32({512, 128}, 31), rnd32({512}, 32)}, "linear 768 rows");
  expect_thread_independent([](auto in) { return linear(in[0], in[1], in[2]); },
                            {rnd32({64, 128}, 33), rnd32({512, 128}, 34), rnd32({512}, 35)}, "linear 64 rows");
}

// 48 batches of 64x32 @ 32x40: split by batch.
TEST(ThreadDeterminism, BatchedMatmulSplitByBatch) {
  expect_thread_independent([](auto in) { return matmul(in[0], in[1]); }, {rnd32({48, 64, 32}, 9), rnd32({48, 32, 40}, 10)},
                            "batched matmul 48x64x32 @ 48x32x40");
  expect_thread_independent([](auto in) { return matmul(in[0], in[1].transpose(1, 2)); },
                            {rnd32({48, 64, 32}, 11), rnd32({48, 40, 32}, 12)}, "batched matmul with transposed b");
}

// 256 rows of width 96 (rows split for x, columns of dw/db split, each summed over rows in fixed order).
TEST(ThreadDeterminism, LayerNormForwardAndBackward) {
  expect_thread_independent([](auto in) { return layer_norm(in[0], in[1], in[2]); },
                            {rnd32({4, 64, 96}, 13), rnd32({96}, 14), rnd32({96}, 15)}, "layer_norm (4,64,96)");
  expect_thread_independent([](auto in) { return layer_norm(in[0].transpose(0, 1), in[1], Tensor()); },
                            {rnd32({64, 4, 96}, 16), rnd32({96}, 17)}, "layer_norm of a transposed input, no bias");
}

// RMSNorm as LayerNorm: 256 rows of width 96, dw summed over row blocks in fixed order.
TEST(ThreadDeterminism, RmsNormForwardAndBackward) {
  expect_thread_independent([](auto in) { return rms_norm(in[0], in[1], 1e-6); },
                            {rnd32({4, 64, 96}, 19), rnd32({96}, 20)}, "rms_norm (4,64,96)");
}

// Rotary embedding: 2048 rows of 64 channels, split by rows (no sums, so equal bits are the minimum).
TEST(ThreadDeterminism, RotaryEmbeddingForwardAndBackward) {
  const auto tables = rotary_tables(64, 0, 64, 10000.0, DType::Float32);
  expect_thread_independent([&](auto in) { return rotary_embedding(in[0], tables.first, tables.second, RotaryLayout::Halves); },
                            {rnd32({4, 8, 64, 64}, 21)}, "rotary_embedding (4,8,64,64)");
}

// B=2, T=64, C=128 in 4 heads: 8 slices of ~0.5 MFLOP, split over the threads.
TEST(ThreadDeterminism, MultiHeadAttentionForwardAndBackward) {
  const std::vector<Tensor> qkv{rnd32({2, 64, 3 * 128}, 18)};
  expect_thread_independent([](auto in) { return multi_head_attention(in[0], 4, 0.125, true); }, qkv,
                            "multi_head_attention causal");
  expect_thread_independent([](auto in) { return multi_head_attention(in[0], 4, 0.125, false); }, qkv,
                            "multi_head_attention not causal");
}

TEST(ThreadDeterminism, MultiHeadAttentionWithDropout) {
  const std::vector<Tensor> qkv{rnd32({2, 64, 3 * 128}, 19)};
  expect_thread_independent([](auto in) {
    Generator g(77);  // the same masks on every run
    return multi_head_attention(in[0], 4, 0.125, true, 0.2, true, &g);
  }, qkv, "multi_head_attention causal with dropout");
}

TEST(ThreadDeterminism, ScaledDotProductAttentionWithDropout) {
  expect_thread_independent([](auto in) {
    Generator g(78);
    return scaled_dot_product_attention(in[0], in[1], in[2], 0.125, true, 0.2, true, &g);
  }, {rnd32({2, 4, 64, 32}, 20), rnd32({2, 4, 64, 32}, 21), rnd32({2, 4, 64, 32}, 22)}, "sdpa with dropout");
}
