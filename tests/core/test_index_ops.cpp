// Comparisons, logical ops, argmax/argmin, gather, index_select, topk and one_hot: values by hand, the
// conventions at ties and NaN, and the errors. Gradients are in test_gradcheck_ops.cpp, PyTorch's values
// in tests/parity/test_index_ops_parity.cpp.
#include "expect_error.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

using namespace minitrain;

using test::expect_error;

namespace {

Tensor f64(std::vector<double> v, const Shape& s) { return from_vector(v, s); }
Tensor i64(std::vector<int64_t> v, const Shape& s) { return from_vector(v, s); }
Tensor b8(std::vector<bool> v, const Shape& s) { return from_vector(v, s); }
std::vector<bool> bools(const Tensor& t) { return t.to_vector<bool>(); }
std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }

const double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

TEST(Compare, ElementwiseWithBroadcastingGivesBool) {
  const Tensor a = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = f64({2, 2, 7}, {3});
  const Tensor e = eq(a, b);
  EXPECT_EQ(e.dtype(), DType::Bool);
  EXPECT_EQ(e.shape(), (Shape{2, 3}));
  EXPECT_EQ(bools(e), (std::vector<bool>{false, true, false, false, false, false}));
  EXPECT_EQ(bools(ne(a, b)), (std::vector<bool>{true, false, true, true, true, true}));
  EXPECT_EQ(bools(lt(a, b)), (std::vector<bool>{true, false, true, false, false, true}));
  EXPECT_EQ(bools(le(a, b)), (std::vector<bool>{true, true, true, false, false, true}));
  EXPECT_EQ(bools(gt(a, b)), (std::vector<bool>{false, false, false, true, true, false}));
  EXPECT_EQ(bools(ge(a, b)), (std::vector<bool>{false, true, false, true, true, false}));
  EXPECT_EQ(bools(gt(a.transpose(0, 1), 3.5)), (std::vector<bool>{false, true, false, true, false, true}));
}

TEST(Compare, NaNIsUnequalToEverything) {
  const Tensor a = f64({kNaN, 1}, {2});
  EXPECT_EQ(bools(eq(a, a)), (std::vector<bool>{false, true}));
  EXPECT_EQ(bools(ne(a, a)), (std::vector<bool>{true, false}));
  EXPECT_EQ(bools(le(a, 5.0)), (std::vector<bool>{false, true}));
}

TEST(Compare, IntegerAndBoolOperands) {
  const Tensor ids = i64({3, 9007199254740993, -1}, {3});
  EXPECT_EQ(bools(eq(ids, i64({3, 9007199254740992, -1}, {3}))), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(bools(ge(ids, 0)), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(bools(eq(b8({true, false}, {2}), 1)), (std::vector<bool>{true, false}));
  expect_error([&] { eq(ids, 2.5); }, {"eq", "int64", "2.5"});
  expect_error([&] { eq(ids, f64({3, 1, 1}, {3})); }, {"eq", "int64", "float64"});
  expect_error([&] { lt(f64({1, 2}, {2}), f64({1, 2, 3}, {3})); }, {"lt", "do not broadcast"});
}

TEST(Logical, AndOrNotOnBoolsAndOnNonzeroValues) {
  const Tensor a = b8({true, true, false, false}, {4});
  const Tensor b = b8({true, false, true, false}, {4});
  EXPECT_EQ(bools(logical_and(a, b)), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(bools(logical_or(a, b)), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(bools(logical_not(a)), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(bools(logical_and(f64({0.5, 0, -2, 0}, {4}), a)), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(bools(logical_not(i64({0, 7}, {2}))), (std::vector<bool>{true, false}));
  EXPECT_EQ(logical_or(b8({true}, {1}), b8({false, false}, {2, 1})).shape(), (Shape{2, 1}));
}

TEST(ArgExtreme, FirstOfEqualsAlongADimWithKeepdim) {
  const Tensor x = f64({1, 5, 5, 0,
                        7, 2, 7, 7}, {2, 4});
  const Tensor am = argmax(x, 1);
  EXPECT_EQ(am.dtype(), DType::Int64);
  EXPECT_EQ(am.shape(), (Shape{2}));
  EXPECT_EQ(ints(am), (std::vector<int64_t>{1, 0}));  // ties: the first maximal index
  EXPECT_EQ(ints(argmin(x, 1)), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(argmax(x, 0, true).shape(), (Shape{1, 4}));
  EXPECT_EQ(ints(argmax(x, 0, true)), (std::vector<int64_t>{1, 0, 1, 1}));
  EXPECT_EQ(ints(argmax(x, -1)), ints(argmax(x, 1)));
  EXPECT_EQ(argmax(x).item<int64_t>(), 4);  // flattened: the first 7
  EXPECT_EQ(argmin(x).item<int64_t>(), 3);
  EXPECT_EQ(ints(argmax(i64({4, 9, 9}, {3}), 0)), (std::vector<int64_t>{1}));
}

TEST(ArgExtreme, NaNCountsAsTheExtreme) {
  const Tensor x = f64({1, kNaN, 3, kNaN}, {4});
  EXPECT_EQ(argmax(x).item<int64_t>(), 1);
  EXPECT_EQ(argmin(x).item<int64_t>(), 1);
}

TEST(ArgExtreme, Errors) {
  expect_error([] { argmax(f64({1, 2}, {2}), 1); }, {"argmax", "dim 1", "out of range"});
  expect_error([] { argmin(zeros({2, 0}), 1); }, {"argmin", "empty"});
}

TEST(Gather, ReadsAlongTheDimAndChecksItsIndex) {
  const Tensor x = f64({0, 1, 2,
                        10, 11, 12}, {2, 3});
  EXPECT_EQ(gather(x, 1, i64({2, 2, 0, 1}, {2, 2})).to_vector<double>(), (std::vector<double>{2, 2, 10, 11}));
  EXPECT_EQ(gather(x, 0, i64({1, 0, 1}, {1, 3})).to_vector<double>(), (std::vector<double>{10, 1, 12}));
  expect_error([&] { gather(x, 1, i64({3}, {1, 1})); }, {"gather", "index 3", "[0, 3)"});
  expect_error([&] { gather(x, 1, i64({0, 0}, {2})); }, {"gather", "as many dims", "[2]"});
  expect_error([&] { gather(x, 1, i64({0, 0, 0}, {3, 1})); }, {"gather", "larger than input", "dim 0"});
  expect_error([&] { gather(x, 1, f64({0}, {1, 1})); }, {"gather", "index", "int64", "float64"});
}

TEST(IndexSelect, PicksSlicesAndRepeatsAddUpInTheGradient) {
  Tensor x = f64({0, 1, 2, 3, 4, 5}, {3, 2}).set_requires_grad(true);
  const Tensor y = index_select(x, 0, i64({2, 2, 0}, {3}));
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{4, 5, 4, 5, 0, 1}));
  sum(y).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 1, 0, 0, 2, 2}));
  expect_error([&] { index_select(x, 0, i64({0, 1}, {1, 2})); }, {"index_select", "1-D"});
  expect_error([&] { index_select(x, 1, i64({-1}, {1})); }, {"index_select", "index -1", "[0, 2)"});
}

TEST(TopK, SortedValuesAndIndicesWithTiesInIndexOrder) {
  const Tensor x = f64({3, 1, 4, 1, 5,
                        9, 2, 6, 5, 3}, {2, 5});
  auto [values, indices] = topk(x, 3);
  EXPECT_EQ(values.to_vector<double>(), (std::vector<double>{5, 4, 3, 9, 6, 5}));
  EXPECT_EQ(ints(indices), (std::vector<int64_t>{4, 2, 0, 0, 2, 3}));
  auto [low, low_idx] = topk(x, 2, 1, false);
  EXPECT_EQ(low.to_vector<double>(), (std::vector<double>{1, 1, 2, 3}));
  EXPECT_EQ(ints(low_idx), (std::vector<int64_t>{1, 3, 1, 4}));  // equal 1s: index order
  auto [col, col_idx] = topk(x, 1, 0);
  EXPECT_EQ(col.shape(), (Shape{1, 5}));
  EXPECT_EQ(ints(col_idx), (std::vector<int64_t>{1, 1, 1, 1, 0}));
  EXPECT_EQ(ints(topk(f64({1, kNaN, 2}, {3}), 2).second), (std::vector<int64_t>{1, 2}));  // NaN first
  expect_error([&] { topk(x, 6); }, {"topk", "k = 6", "[0, 5]"});
}

TEST(TopK, GradientGoesToTheChosenEntries) {
  Tensor x = f64({3, 1, 4, 1, 5}, {5}).set_requires_grad(true);
  const Tensor v = topk(x, 2).first;
  sum(mul(v, f64({10, 100}, {2}))).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0, 100, 0, 10}));
}

TEST(OneHot, OnesAtTheIdsAndClassCountInferred) {
  const Tensor h = one_hot(i64({2, 0, 1}, {3}), 4);
  EXPECT_EQ(h.dtype(), DType::Int64);
  EXPECT_EQ(h.shape(), (Shape{3, 4}));
  EXPECT_EQ(ints(h), (std::vector<int64_t>{0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0}));
  EXPECT_EQ(one_hot(i64({0, 3}, {1, 2})).shape(), (Shape{1, 2, 4}));
  expect_error([] { one_hot(i64({4}, {1}), 4); }, {"one_hot", "index 4", "[0, 4)"});
  expect_error([] { one_hot(i64({}, {0})); }, {"one_hot", "empty"});
  expect_error([] { one_hot(f64({1}, {1}), 2); }, {"one_hot", "int64", "float64"});
}

// Accuracy the way PyTorch users write it: argmax over the classes, eq against the targets, mean.
TEST(IndexOps, AccuracyFromArgmaxAndEq) {
  const Tensor logits = f64({0.1, 2.0, -1.0,
                             3.0, 0.0, 0.5,
                             0.2, 0.1, 0.9}, {3, 3});
  const Tensor targets = i64({1, 2, 2}, {3});
  const Tensor accuracy = mean(eq(argmax(logits, -1), targets).to(DType::Float64));
  EXPECT_DOUBLE_EQ(accuracy.item(), 2.0 / 3.0);
}
