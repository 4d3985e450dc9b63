// rotary_embedding and rotary_tables: the fused kernel against a composed reference built from narrow, cat
// and mul (Hugging Face's rotate_half for Halves, the real form of Meta's complex product for Interleaved)
// in value and gradient; the two properties a decoder relies on (applying at start_position p to a slice
// equals slicing the whole sequence, which the KV cache needs; q·k after rotation depends on m − n only);
// the relation between the layouts; the errors. The float64 finite-difference checks are in
// test_gradcheck_ops.cpp.
#include "expect_error.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace minitrain;
using test::expect_error;

namespace {

const char* layout_name(RotaryLayout layout) { return layout == RotaryLayout::Halves ? "halves" : "interleaved"; }

// A (T, W) table reshaped so that it broadcasts against a tensor of `nd` dims whose dim `sd` is the
// sequence and whose last dim has W entries (all other dims 1).
Tensor table_for(const Tensor& table, int64_t nd, int64_t sd) {
  Shape s(static_cast<std::size_t>(nd), 1);
  s[static_cast<std::size_t>(sd)] = table.size(0);
  s.back() = table.size(1);
  return table.reshape(s);
}

// The reference, op by op. Halves: x·cos + rotate_half(x)·sin with the tables duplicated to (T, D).
// Interleaved: x as (..., D/2, 2) pairs (u, v) -> (u·cos − v·sin, u·sin + v·cos).
Tensor composed_rotary(const Tensor& x, const Tensor& cos, const Tensor& sin, RotaryLayout layout, int64_t seq_dim) {
  const int64_t nd = x.dim(), sd = seq_dim < 0 ? seq_dim + nd : seq_dim, d = x.size(-1), h = d / 2;
  if (layout == RotaryLayout::Halves) {
    const Tensor c = table_for(cat({cos, cos}, 1), nd, sd), s = table_for(cat({sin, sin}, 1), nd, sd);
    const Tensor rotated_half = cat({neg(x.narrow(-1, h, h)), x.narrow(-1, 0, h)}, -1);
    return add(mul(x, c), mul(rotated_half, s));
  }
  Shape pairs = x.shape();
  pairs.back() = h;
  pairs.push_back(2);
  const Tensor xp = x.reshape(pairs), u = xp.narrow(-1, 0, 1), v = xp.narrow(-1, 1, 1);
  const Tensor c = table_for(cos, nd, sd).unsqueeze(-1), s = table_for(sin, nd, sd).unsqueeze(-1);
  return cat({sub(mul(u, c), mul(v, s)), add(mul(u, s), mul(v, c))}, -1).reshape(x.shape());
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::fabs(v));
  return m;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const Tensor x = a.contiguous(), y = b.contiguous();
  const std::size_t bytes = static_cast<std::size_t>(x.numel()) * dtype_size(x.dtype());
  return a.dtype() == DType::Float64 ? std::memcmp(x.data<double>(), y.data<double>(), bytes) == 0
                                     : std::memcmp(x.data<float>(), y.data<float>(), bytes) == 0;
}

}  // namespace

TEST(RotaryEmbedding, FusedEqualsComposedForwardAndBackward) {
  struct Case {
    Shape shape;
    int64_t seq_dim;
  };
  // (B, H, T, D) with seq_dim -2; (B, T, H, D) with -3 and its positive form 1; (T, D) alone; T = 1.
  const std::vector<Case> cases = {{{3, 5, 7, 8}, -2}, {{3, 7, 5, 16}, -3}, {{2, 7, 3, 6}, 1}, {{9, 10}, 0}, {{2, 3, 1, 4}, -2}};
  uint64_t seed = 10;
  for (DType dtype : {DType::Float64, DType::Float32})
    for (RotaryLayout layout : {RotaryLayout::Halves, RotaryLayout::Interleaved})
      for (const Case& c : cases) {
        const int64_t nd = static_cast<int64_t>(c.shape.size());
        const int64_t t = c.shape[static_cast<std::size_t>(c.seq_dim < 0 ? c.seq_dim + nd : c.seq_dim)];
        const auto [cos, sin] = rotary_tables(c.shape.back(), 3, t, 10000.0, dtype);
        Generator g(++seed);
        const Tensor x0 = randn(c.shape, g, dtype), up = randn(c.shape, g, dtype);
        Tensor xf = x0.clone().set_requires_grad(true), xc = x0.clone().set_requires_grad(true);
        const Tensor yf = rotary_embedding(xf, cos, sin, layout, c.seq_dim);
        const Tensor yc = composed_rotary(xc, cos, sin, layout, c.seq_dim);
        yf.backward(up);
        yc.backward(up);
        const double limit = dtype == DType::Float64 ? 1e-14 : 1e-6;
        const std::string what = std::string(layout_name(layout)) + " " + shape_str(c.shape) + " seq_dim " +
                                 std::to_string(c.seq_dim) + " " + dtype_name(dtype);
        EXPECT_EQ(yf.shape(), c.shape) << what;
        EXPECT_LT(max_abs_diff(yf, yc), limit * max_abs(yc)) << what << " y";
        EXPECT_LT(max_abs_diff(xf.grad(), xc.grad()), limit * max_abs(xc.grad())) << what << " dx";
      }
}

TEST(RotaryEmbedding, NonContiguousInputIsReadInItsLogicalOrder) {
  // (B, T, H, D) transposed to a (B, H, T, D) view: the kernel copies it, and positions follow dim -2.
  Generator g(5);
  const Tensor x = randn({2, 7, 3, 8}, g, DType::Float64).transpose(1, 2);
  const auto [cos, sin] = rotary_tables(8, 0, 7, 10000.0, DType::Float64);
  for (RotaryLayout layout : {RotaryLayout::Halves, RotaryLayout::Interleaved})
    EXPECT_LT(max_abs_diff(rotary_embedding(x, cos, sin, layout), rotary_embedding(x.contiguous(), cos, sin, layout)), 1e-15);
}

TEST(RotaryEmbedding, WorkedValues) {
  // D = 2: one pair with frequency theta^0 = 1, so position p rotates (1, 0) by p radians.
  const auto [cos, sin] = rotary_tables(2, 0, 3, 10000.0, DType::Float64);
  const Tensor x = from_vector(std::vector<double>{1, 0, 1, 0, 0, 1}, {3, 2});
  const Tensor y = rotary_embedding(x, cos, sin, RotaryLayout::Halves, 0);
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{1, 0, std::cos(1.0), std::sin(1.0), -std::sin(2.0), std::cos(2.0)}));
  // D = 4, theta 100: frequencies 1 and 100^(-1/2) = 0.1; position 5 -> angles 5 and 0.5.
  const auto [c4, s4] = rotary_tables(4, 5, 1, 100.0, DType::Float64);
  EXPECT_NEAR(c4.at({0, 0}), std::cos(5.0), 1e-15);
  EXPECT_NEAR(s4.at({0, 1}), std::sin(0.5), 1e-15);
  // Interleaved pairs (x0, x1), (x2, x3); halves pairs (x0, x2), (x1, x3).
  const Tensor v = from_vector(std::vector<double>{1, 2, 3, 4}, {1, 4});
  const std::vector<double> inter = rotary_embedding(v, c4, s4, RotaryLayout::Interleaved, 0).to_vector<double>();
  EXPECT_NEAR(inter[0], 1 * std::cos(5.0) - 2 * std::sin(5.0), 1e-14);
  EXPECT_NEAR(inter[3], 3 * std::sin(0.5) + 4 * std::cos(0.5), 1e-14);
  const std::vector<double> halves = rotary_embedding(v, c4, s4, RotaryLayout::Halves, 0).to_vector<double>();
  EXPECT_NEAR(halves[0], 1 * std::cos(5.0) - 3 * std::sin(5.0), 1e-14);
  EXPECT_NEAR(halves[3], 2 * std::sin(0.5) + 4 * std::cos(0.5), 1e-14);
}

TEST(RotaryEmbedding, InterleavedIsHalvesOnPermutedChannels) {
  // Moving the even channels to the first half and the odd ones to the second turns interleaved pairs into
  // halves pairs: the permutation Hugging Face applies to Meta's q/k weights when converting checkpoints.
  Generator g(6);
  const int64_t d = 12;
  const Tensor x = randn({2, 4, 5, d}, g, DType::Float64);
  const auto [cos, sin] = rotary_tables(d, 0, 5, 500000.0, DType::Float64);
  std::vector<int64_t> to_halves;
  for (int64_t i = 0; i < d; i += 2) to_halves.push_back(i);
  for (int64_t i = 1; i < d; i += 2) to_halves.push_back(i);
  const Tensor idx = from_vector(to_halves, {d});
  const Tensor a = index_select(rotary_embedding(x, cos, sin, RotaryLayout::Interleaved), -1, idx);
  const Tensor b = rotary_embedding(index_select(x, -1, idx), cos, sin, RotaryLayout::Halves);
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
}

TEST(RotaryEmbedding, SliceAtStartPositionEqualsSliceOfTheWholeSequence) {
  // What a KV cache relies on: rotating tokens p..p+k-1 alone, with tables from start_position p, gives
  // the very bits those positions get when the whole sequence is rotated at once.
  for (DType dtype : {DType::Float64, DType::Float32})
    for (RotaryLayout layout : {RotaryLayout::Halves, RotaryLayout::Interleaved})
      for (int64_t seq_dim : {-2, -3}) {
        Generator g(7);
        const int64_t length = 11;
        const Shape shape = seq_dim == -2 ? Shape{2, 3, length, 8} : Shape{2, length, 3, 8};
        const Tensor x = randn(shape, g, dtype);
        const auto [cos, sin] = rotary_tables(8, 0, length, 10000.0, dtype);
        const Tensor whole = rotary_embedding(x, cos, sin, layout, seq_dim);
        for (auto [p, k] : std::vector<std::pair<int64_t, int64_t>>{{0, 4}, {4, 1}, {5, 6}, {10, 1}}) {
          const auto [c, s] = rotary_tables(8, p, k, 10000.0, dtype);
          const Tensor part = rotary_embedding(x.narrow(seq_dim, p, k), c, s, layout, seq_dim);
          EXPECT_TRUE(same_bits(part, whole.narrow(seq_dim, p, k)))
              << layout_name(layout) << " seq_dim " << seq_dim << " " << dtype_name(dtype) << " p=" << p << " k=" << k;
        }
      }
}

TEST(RotaryEmbedding, DotProductDependsOnlyOnRelativePosition) {
  // <R(m)q, R(n)k> = <q, R(n − m)k>: only the offset m − n matters, at any absolute position, including
  // positions far past any training context.
  Generator g(8);
  const int64_t d = 16;
  const Tensor q = randn({1, d}, g, DType::Float64), k = randn({1, d}, g, DType::Float64);
  for (RotaryLayout layout : {RotaryLayout::Halves, RotaryLayout::Interleaved}) {
    auto score = [&](int64_t m, int64_t n) {
      const auto [cm, sm] = rotary_tables(d, m, 1, 10000.0, DType::Float64);
      const auto [cn, sn] = rotary_tables(d, n, 1, 10000.0, DType::Float64);
      return sum(mul(rotary_embedding(q, cm, sm, layout, 0), rotary_embedding(k, cn, sn, layout, 0))).item();
    };
    for (int64_t offset : {0, 1, 3, 17}) {
      const double reference = score(offset, 0);
      for (int64_t n : {1, 5, 100, 4096, 1000000}) {
        // The angles reach n·1 radians: cos/sin of a double near 1e6 carry ~1e-10 of absolute error.
        const double tolerance = 1e-13 * static_cast<double>(n + offset) + 1e-13;
        EXPECT_NEAR(score(n + offset, n), reference, tolerance) << layout_name(layout) << " offset " << offset << " n " << n;
      }
    }
    // And it does depend on the offset (otherwise the loop above would prove nothing).
    EXPECT_GT(std::fabs(score(3, 0) - score(0, 0)), 1e-3) << layout_name(layout);
  }
}

TEST(RotaryEmbedding, TablesAreComputedInDoubleAtAnyPosition) {
  // float32 tables are the float64 ones rounded: the angle is never formed in float32 (at position 1e6 a
  // float32 angle would be off by up to 0.03 radians).
  const auto [c64, s64] = rotary_tables(8, 1000000, 3, 10000.0, DType::Float64);
  const auto [c32, s32] = rotary_tables(8, 1000000, 3, 10000.0, DType::Float32);
  EXPECT_EQ(c32.dtype(), DType::Float32);
  EXPECT_EQ(c32.shape(), (Shape{3, 4}));
  EXPECT_TRUE(same_bits(c32, c64.to(DType::Float32)));
  EXPECT_TRUE(same_bits(s32, s64.to(DType::Float32)));
  EXPECT_NEAR(c64.at({2, 1}), std::cos(1000002.0 * std::pow(10000.0, -0.25)), 1e-9);
  EXPECT_EQ(rotary_tables(8, 0, 0, 10000.0, DType::Float64).first.shape(), (Shape{0, 4}));
}

TEST(RotaryEmbedding, TablesGetNoGradientAndOnlyXDoes) {
  const auto [cos, sin] = rotary_tables(4, 0, 3, 10000.0, DType::Float64);
  Tensor x = ones({3, 4}, DType::Float64).set_requires_grad(true);
  sum(rotary_embedding(x, cos, sin, RotaryLayout::Halves, 0)).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(cos.requires_grad());
}

TEST(RotaryEmbedding, BadInputIsOneLineNamingTheOpAndTheShapes) {
  const auto [cos, sin] = rotary_tables(8, 0, 5, 10000.0, DType::Float32);
  const Tensor x = zeros({2, 3, 5, 8});
  expect_error([&] { rotary_embedding(zeros({2, 3, 5, 7}), cos, sin, RotaryLayout::Halves); },
               {"rotary_embedding", "[2,3,5,7]", "even", "7"});
  expect_error([&] { rotary_embedding(x, cos.narrow(0, 0, 4), sin, RotaryLayout::Halves); },
               {"rotary_embedding", "cos of shape [4,4]", "(T, D/2) = [5,4]", "[2,3,5,8]"});
  expect_error([&] { rotary_embedding(x, cos, zeros({5, 8}), RotaryLayout::Interleaved); },
               {"rotary_embedding", "sin of shape [5,8]", "[5,4]"});
  expect_error([&] { rotary_embedding(x, cos, sin, RotaryLayout::Halves, -3); },  // dim -3 has 3 entries, not 5
               {"rotary_embedding", "cos of shape [5,4]", "[3,4]"});
  expect_error([&] { rotary_embedding(x.to(DType::Float64), cos, sin, RotaryLayout::Halves); },
               {"rotary_embedding", "cos [5,4] is float32", "input [2,3,5,8] is float64"});
  for (int64_t bad : {-1, 3, 4, -5})
    expect_error([&] { rotary_embedding(x, cos, sin, RotaryLayout::Halves, bad); },
                 {"rotary_embedding", "seq_dim " + std::to_string(bad), "[2,3,5,8]", "-4..-2 or 0..2"});
  expect_error([&] { rotary_embedding(zeros({8}), cos, sin, RotaryLayout::Halves); }, {"rotary_embedding", "[8]", "sequence dim"});
  expect_error([&] { rotary_embedding(x, cos.clone().set_requires_grad(true), sin, RotaryLayout::Halves); },
               {"rotary_embedding", "cos [5,4] requires grad", "constants"});
  expect_error([&] { rotary_embedding(zeros({5, 8}, DType::Int64), cos, sin, RotaryLayout::Halves); }, {"rotary_embedding", "int64"});
  expect_error([] { rotary_tables(7, 0, 4, 10000.0, DType::Float32); }, {"rotary_tables", "head_dim", "even", "7"});
  expect_error([] { rotary_tables(0, 0, 4, 10000.0, DType::Float32); }, {"rotary_tables", "head_dim", "0"});
  expect_error([] { rotary_tables(8, -1, 4, 10000.0, DType::Float32); }, {"rotary_tables", "start_position", "-1"});
  expect_error([] { rotary_tables(8, 0, -2, 10000.0, DType::Float32); }, {"rotary_tables", "length", "-2"});
  expect_error([] { rotary_tables(8, 0, 4, 0.0, DType::Float32); }, {"rotary_tables", "theta", "0"});
  expect_error([] { rotary_tables(8, 0, 4, INFINITY, DType::Float32); }, {"rotary_tables", "theta", "inf"});
  expect_error([] { rotary_tables(8, 0, 4, 10000.0, DType::Int64); }, {"rotary_tables", "dtype", "int64"});
  expect_error([] { rotary_tables(8, INT64_MAX - 1, 4, 10000.0, DType::Float32); }, {"rotary_tables", "overflows"});
}
