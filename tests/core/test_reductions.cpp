// What each reduction averages over what, checked directly against loops written out here in double.
//
// A gradient check cannot see these bugs: when forward and backward share a wrong count (a mean that
// divides by every element instead of the reduced ones, a cross-entropy that counts ignored targets,
// a variance that drops Bessel's correction, a GELU constant mistyped in both), the analytic gradient
// still matches finite differences of the wrong function. Before these tests the PyTorch fixtures
// (tests/parity) were the only guard of each; a tie in max was guarded by nothing.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

using namespace minitrain;

namespace {

Tensor random_leaf(const Shape& shape, uint64_t seed, double scale = 1.0) {
  Generator gen(seed);
  return mul(randn(shape, gen, DType::Float64), scale).detach().set_requires_grad(true);
}

// logsumexp(row) - row[target], and d/d(row) = softmax(row) - onehot(target), written out plainly.
double row_loss(const std::vector<double>& x, std::size_t offset, int64_t classes, int64_t target) {
  double mx = x[offset];
  for (int64_t c = 1; c < classes; ++c) mx = std::max(mx, x[offset + c]);
  double total = 0;
  for (int64_t c = 0; c < classes; ++c) total += std::exp(x[offset + c] - mx);
  return mx + std::log(total) - x[offset + target];
}
std::vector<double> row_grad(const std::vector<double>& x, std::size_t offset, int64_t classes, int64_t target) {
  const double lse = row_loss(x, offset, classes, target) + x[offset + target];
  std::vector<double> g(static_cast<std::size_t>(classes));
  for (int64_t c = 0; c < classes; ++c) g[c] = std::exp(x[offset + c] - lse) - (c == target ? 1.0 : 0.0);
  return g;
}

// Cross-entropy of (rows, classes) logits, checked value and gradient against the mean over the rows
// whose target is not `ignore`, with every ignored row's gradient exactly zero.
void expect_mean_over_counted_rows(const Tensor& logits, const Tensor& targets, int64_t ignore) {
  Tensor loss = cross_entropy(logits, targets, ignore);
  loss.backward();
  const int64_t classes = logits.size(-1), rows = targets.numel();
  const std::vector<double> x = logits.to_vector<double>(), dx = logits.grad().to_vector<double>();
  const std::vector<int64_t> target = targets.to_vector<int64_t>();
  double total = 0;
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r)
    if (target[r] != ignore) {
      total += row_loss(x, r * classes, classes, target[r]);
      ++counted;
    }
  ASSERT_GT(counted, 0);
  ASSERT_LT(counted, rows) << "the case must have ignored targets";
  EXPECT_NEAR(loss.item(), total / counted, 1e-12) << "the mean is over the " << counted << " counted targets";
  for (int64_t r = 0; r < rows; ++r) {
    const bool ignored = target[r] == ignore;
    const std::vector<double> g = ignored ? std::vector<double>(classes, 0.0)
                                          : row_grad(x, r * classes, classes, target[r]);
    for (int64_t c = 0; c < classes; ++c) {
      const double expected = ignored ? 0.0 : g[c] / counted;
      if (ignored)
        EXPECT_EQ(dx[r * classes + c], 0.0) << "ignored row " << r;
      else
        EXPECT_NEAR(dx[r * classes + c], expected, 1e-12) << "row " << r << " class " << c;
    }
  }
}

}  // namespace

// Mutation killed: counting every row (ignored ones too) in the denominator, forward and backward alike.
TEST(Reductions, CrossEntropyAveragesOverTheTargetsThatAreNotIgnored) {
  // (B, T, C) = (2, 3, 5) logits with padding (-100) at the ends of both sequences.
  expect_mean_over_counted_rows(random_leaf({2, 3, 5}, 1, 2.0), from_vector(std::vector<int64_t>{4, 0, -100, 2, -100, -100}, {2, 3}), -100);
  // Another ignore_index, a class id used as padding: rows with target 0 are left out, not only -100.
  expect_mean_over_counted_rows(random_leaf({6, 4}, 2, 2.0), from_vector(std::vector<int64_t>{0, 3, 0, 1, 2, 0}, {6}), 0);
}

TEST(Reductions, CrossEntropyOfOnlyIgnoredTargetsIsZeroWithZeroGradient) {
  // The documented rule (ops.h, cross_entropy.cpp): 0 and a zero gradient where torch gives NaN.
  Tensor logits = random_leaf({3, 4}, 3);
  Tensor loss = cross_entropy(logits, from_vector(std::vector<int64_t>{-100, -100, -100}, {3}));
  loss.backward();
  EXPECT_EQ(loss.item(), 0.0);
  for (double g : logits.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
}

// Mutation killed: mean dividing by x.numel() instead of the product of the reduced dims.
TEST(Reductions, MeanDividesByTheReducedElementsOnly) {
  Tensor x = random_leaf({2, 3, 4}, 4);
  const std::vector<double> v = x.to_vector<double>();
  Tensor m = mean(x, {0, 2});  // (3): each entry averages 2 x 4 elements
  ASSERT_EQ(m.shape(), (Shape{3}));
  for (int64_t j = 0; j < 3; ++j) {
    double s = 0;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t k = 0; k < 4; ++k) s += v[(i * 3 + j) * 4 + k];
    EXPECT_NEAR(m.at({j}), s / 8.0, 1e-14) << j;
  }
  sum(m).backward();
  for (double g : x.grad().to_vector<double>()) EXPECT_DOUBLE_EQ(g, 1.0 / 8.0);
  double all = 0;
  for (double e : v) all += e;
  EXPECT_NEAR(mean(x).item(), all / 24.0, 1e-14);
  EXPECT_EQ(mean(x, {-1}, true).shape(), (Shape{2, 3, 1}));
}

// Mutation killed: var dividing by n whatever the correction (or by n - 1 whatever it).
TEST(Reductions, VarianceDividesByCountMinusCorrection) {
  Tensor x = random_leaf({3, 5}, 5);
  const std::vector<double> v = x.to_vector<double>();
  for (int64_t correction : {0, 1, 2}) {
    Tensor s = var(x, {1}, false, correction);  // (3): each row's 5 elements
    for (int64_t r = 0; r < 3; ++r) {
      double m = 0, ss = 0;
      for (int64_t c = 0; c < 5; ++c) m += v[r * 5 + c] / 5.0;
      for (int64_t c = 0; c < 5; ++c) ss += (v[r * 5 + c] - m) * (v[r * 5 + c] - m);
      EXPECT_NEAR(s.at({r}), ss / static_cast<double>(5 - correction), 1e-13) << "row " << r << " correction " << correction;
    }
  }
  // The default is Bessel's correction (torch.var): over all 15 elements, divided by 14.
  double m = 0, ss = 0;
  for (double e : v) m += e / 15.0;
  for (double e : v) ss += (e - m) * (e - m);
  EXPECT_NEAR(var(x).item(), ss / 14.0, 1e-13);
}

// Mutation killed: '>=' instead of '>' in the scan, which sends the gradient to the last of equal maxima.
// Random inputs never tie, so neither the gradient check nor the fixtures see it.
TEST(Reductions, MaxSendsTheGradientToTheFirstOfEqualMaxima) {
  const std::vector<double> v{1, 3, 3, 2,   // a tie in the middle
                              5, 5, 5, 5,   // all equal
                              0, 7, -1, 7};
  Tensor x = from_vector(v, {3, 4}).set_requires_grad(true);
  Tensor m = max(x, 1);
  sum(m).backward();
  const std::vector<double> g = x.grad().to_vector<double>();
  for (int64_t r = 0; r < 3; ++r) {
    int64_t first = 0;
    for (int64_t c = 1; c < 4; ++c)
      if (v[r * 4 + c] > v[r * 4 + first]) first = c;
    EXPECT_EQ(m.at({r}), v[r * 4 + first]);
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(g[r * 4 + c], c == first ? 1.0 : 0.0) << "row " << r << " col " << c;
  }
  // Along dim 0, the same rule: column 0 ties (4, 4) and its gradient goes to row 0.
  Tensor y = from_vector(std::vector<double>{4, 1, 4, 2}, {2, 2}).set_requires_grad(true);
  sum(max(y, 0)).backward();
  EXPECT_EQ(y.grad().to_vector<double>(), (std::vector<double>{1, 0, 0, 1}));
}

// Mutations killed: amax sending the whole gradient to the first of equal maxima (max's rule), or to each
// of them (so a tie of two doubles it). Random inputs never tie, so neither the gradient check sees it.
TEST(Reductions, AmaxAndAminShareTheGradientAmongTies) {
  Tensor x = from_vector(std::vector<double>{1, 3, 3,  // a tie of two
                                             2, 2, 2,  // all equal
                                             0, 5, -1},
                         {3, 3}).set_requires_grad(true);
  Tensor m = amax(x, {1});
  EXPECT_EQ(m.to_vector<double>(), (std::vector<double>{3, 2, 5}));
  sum(m).backward();
  const std::vector<double> g = x.grad().to_vector<double>();
  const std::vector<double> expected{0, 0.5, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0, 1, 0};
  for (std::size_t i = 0; i < g.size(); ++i) EXPECT_DOUBLE_EQ(g[i], expected[i]) << i;
  // amin over all dims of the same tensor: one minimum (-1), whatever the ties elsewhere.
  Tensor y = x.detach().clone().set_requires_grad(true);
  amin(y).backward();
  EXPECT_EQ(y.grad().to_vector<double>(), (std::vector<double>{0, 0, 0, 0, 0, 0, 0, 0, 1}));
}

// min mirrors max: the gradient goes to the first of equal minima.
TEST(Reductions, MinSendsTheGradientToTheFirstOfEqualMinima) {
  Tensor x = from_vector(std::vector<double>{3, 1, 1, 2, 2, 2}, {2, 3}).set_requires_grad(true);
  Tensor m = min(x, 1);
  EXPECT_EQ(m.to_vector<double>(), (std::vector<double>{1, 2}));
  sum(m).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 1, 0, 1, 0, 0}));
}

// Mutation killed: std's backward without the zero mask (0 · ∞ = NaN where a row is constant).
TEST(Reductions, StdOfAConstantRowIsZeroWithZeroGradient) {
  Tensor x = from_vector(std::vector<double>{1.5, 1.5, 1.5, 1, 2, 3}, {2, 3}).set_requires_grad(true);
  Tensor s = minitrain::std(x, {1});
  EXPECT_EQ(s.at({0}), 0.0);
  EXPECT_DOUBLE_EQ(s.at({1}), 1.0);  // deviations -1, 0, 1 over n - 1 = 2
  sum(s).backward();
  const std::vector<double> g = x.grad().to_vector<double>();
  for (int k = 0; k < 3; ++k) EXPECT_EQ(g[k], 0.0) << k;
  EXPECT_DOUBLE_EQ(g[3], -0.5);
  EXPECT_DOUBLE_EQ(g[5], 0.5);
}

// cumsum against running sums written out, along the first and the last dim.
TEST(Reductions, CumsumIsTheRunningSum) {
  const std::vector<double> v{1, 2, 3, 4, 5, 6};
  const Tensor x = from_vector(v, {2, 3});
  EXPECT_EQ(cumsum(x, 1).to_vector<double>(), (std::vector<double>{1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(cumsum(x, 0).to_vector<double>(), (std::vector<double>{1, 2, 3, 5, 7, 9}));
  // x[j] feeds out[j..n-1]: with upstream weights w, its gradient is w[j] + ... + w[n-1].
  Tensor leaf = x.clone().set_requires_grad(true);
  cumsum(leaf, 1).backward(from_vector(std::vector<double>{1, 10, 100, 0, 0, 1}, {2, 3}));
  EXPECT_EQ(leaf.grad().to_vector<double>(), (std::vector<double>{111, 110, 100, 1, 1, 1}));
}

// norm against the formula written out, and its rule at 0: no NaN for a zero row, for any p.
TEST(Reductions, NormOfRowsAndOfAZeroRow) {
  Tensor x = from_vector(std::vector<double>{3, -4, 0, 0, 0, 0}, {2, 3}).set_requires_grad(true);
  EXPECT_EQ(norm(x, 2, {1}).to_vector<double>(), (std::vector<double>{5, 0}));
  EXPECT_EQ(norm(x, 1, {1}).to_vector<double>(), (std::vector<double>{7, 0}));
  EXPECT_EQ(norm(x, std::numeric_limits<double>::infinity(), {1}).to_vector<double>(), (std::vector<double>{4, 0}));
  EXPECT_NEAR(norm(x, 3, {1}).at({0}), std::cbrt(27.0 + 64.0), 1e-14);
  for (double p : {1.0, 1.5, 2.0, 3.0, std::numeric_limits<double>::infinity()}) {
    x.zero_grad();
    sum(norm(x, p, {1})).backward();
    const std::vector<double> g = x.grad().to_vector<double>();
    for (std::size_t k = 2; k < 6; ++k) EXPECT_EQ(g[k], 0.0) << "p " << p << " entry " << k;
  }
}
