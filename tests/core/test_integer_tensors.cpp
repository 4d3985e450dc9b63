// int64 and bool tensors: creation, conversion, printing, their place in autograd (none), and the ops that
// take them (embedding, cross_entropy, masked_fill, where), with the errors a float op gives an integer
// tensor and the reverse.
#include "expect_error.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

using namespace minitrain;

using test::expect_error;

namespace {

Tensor ids(std::vector<int64_t> values, const Shape& shape) { return from_vector(values, shape); }

}  // namespace

TEST(IntegerTensors, DtypeFacts) {
  EXPECT_STREQ(dtype_name(DType::Int64), "int64");
  EXPECT_STREQ(dtype_name(DType::Bool), "bool");
  EXPECT_EQ(dtype_size(DType::Int64), 8u);
  EXPECT_EQ(dtype_size(DType::Bool), 1u);
  EXPECT_TRUE(is_floating_point(DType::Float32));
  EXPECT_FALSE(is_floating_point(DType::Int64));
  EXPECT_FALSE(is_floating_point(DType::Bool));
}

TEST(IntegerTensors, FactoriesHoldExactValues) {
  // 2^53 + 1 is not a double: only an int64 path keeps it.
  const int64_t odd = 9007199254740993;
  const Tensor t = ids({odd, -3, std::numeric_limits<int64_t>::min()}, {3});
  EXPECT_EQ(t.dtype(), DType::Int64);
  EXPECT_EQ(t.to_vector<int64_t>(), (std::vector<int64_t>{odd, -3, std::numeric_limits<int64_t>::min()}));
  EXPECT_EQ(t.narrow(0, 0, 1).item<int64_t>(), odd);
  EXPECT_EQ(arange(0, 5, 1, DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(6, 0, -2, DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{6, 4, 2}));
  EXPECT_EQ(full({2}, 7, DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{7, 7}));
  EXPECT_EQ(zeros({3}, DType::Bool).to_vector<bool>(), (std::vector<bool>{false, false, false}));
  EXPECT_EQ(full({2}, -0.5, DType::Bool).to_vector<bool>(), (std::vector<bool>{true, true}));
  expect_error([] { full({2}, 2.5, DType::Int64); }, {"full", "int64", "2.5"});
  expect_error([] { arange(0, 1, 0.5, DType::Int64); }, {"arange", "int64", "0.5"});
  expect_error([] { arange(0, 2, 1, DType::Bool); }, {"arange", "bool"});
  Generator gen(1);
  expect_error([&] { randn({2}, gen, DType::Int64); }, {"floating-point", "int64"});
}

TEST(IntegerTensors, SetAcceptsOnlyWhatTheDtypeHolds) {
  Tensor t = zeros({2}, DType::Int64);
  t.set({1}, -12);
  EXPECT_EQ(t.to_vector<int64_t>(), (std::vector<int64_t>{0, -12}));
  expect_error([&] { t.set({0}, 0.5); }, {"set", "int64", "0.5"});
  expect_error([&] { t.set({0}, std::nan("")); }, {"set", "int64"});
  Tensor b = zeros({2}, DType::Bool);
  b.set({0}, 3);
  EXPECT_EQ(b.to_vector<bool>(), (std::vector<bool>{true, false}));
}

TEST(IntegerTensors, ConversionsFollowStaticCastAndRefuseWhatDoesNotFit) {
  const Tensor x = from_vector(std::vector<float>{-2.7f, 0.0f, 3.9f, 0.25f}, {4});
  EXPECT_EQ(x.to(DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{-2, 0, 3, 0}));  // toward zero
  EXPECT_EQ(x.to(DType::Bool).to_vector<bool>(), (std::vector<bool>{true, false, true, true}));
  EXPECT_EQ(ids({-1, 0, 5}, {3}).to(DType::Float64).to_vector<double>(), (std::vector<double>{-1, 0, 5}));
  EXPECT_EQ(ids({-1, 0, 5}, {3}).to(DType::Bool).to_vector<bool>(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(from_vector(std::vector<bool>{true, false}, {2}).to(DType::Float32).to_vector<float>(),
            (std::vector<float>{1, 0}));
  // NaN, infinity and values beyond int64 have no int64 value: static_cast would be undefined behaviour.
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(), 1e19, -1e19}) {
    expect_error([bad] { from_vector(std::vector<double>{1, bad}, {2}).to(DType::Int64); }, {"int64"});
  }
  // A strided view converts element by element in its own order.
  const Tensor m = ids({1, 2, 3, 4, 5, 6}, {2, 3}).transpose(0, 1);
  EXPECT_EQ(m.to(DType::Float32).to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(m.contiguous().to_vector<int64_t>(), (std::vector<int64_t>{1, 4, 2, 5, 3, 6}));
}

TEST(IntegerTensors, ShapeOpsWorkOnEveryDtype) {
  const Tensor a = ids({0, 1, 2, 3, 4, 5}, {2, 3});
  EXPECT_EQ(a.view({3, 2}).to_vector<int64_t>(), a.to_vector<int64_t>());
  EXPECT_EQ(a.narrow(1, 1, 2).contiguous().to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 4, 5}));
  EXPECT_EQ(cat({a, a.narrow(0, 0, 1)}, 0).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 0, 1, 2}));
  EXPECT_EQ(stack({a, a}, 0).shape(), (Shape{2, 2, 3}));
  const Tensor m = from_vector(std::vector<bool>{true, false, false, true}, {2, 2});
  EXPECT_EQ(m.transpose(0, 1).contiguous().to_vector<bool>(), (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(m.unsqueeze(0).expand({3, 2, 2}).clone().numel(), 12);
}

TEST(IntegerTensors, NeverTakePartInAutograd) {
  Tensor i = ids({1, 2}, {2});
  expect_error([&] { i.set_requires_grad(true); }, {"set_requires_grad", "floating-point", "int64"});
  Tensor b = zeros({2}, DType::Bool);
  expect_error([&] { b.set_requires_grad(true); }, {"set_requires_grad", "bool"});
  Tensor w = ones({2}).set_requires_grad(true);
  const Tensor converted = w.to(DType::Int64);  // a conversion to integers carries no gradient
  EXPECT_FALSE(converted.requires_grad());
  Tensor p = zeros({2}).set_requires_grad(true);
  expect_error([&] { p.set_data(ids({1, 2}, {2})); }, {"set_data", "requires grad", "int64"});
}

TEST(IntegerTensors, PrintAsIntegersAndBooleans) {
  EXPECT_EQ(ids({1, -20, 9007199254740993}, {3}).str(), "tensor([1, -20, 9007199254740993], shape=[3], dtype=int64)");
  EXPECT_EQ(from_vector(std::vector<bool>{true, false}, {2}).str(), "tensor([true, false], shape=[2], dtype=bool)");
}

TEST(IntegerTensors, FloatOpsNameTheOpAndTheDtypes) {
  const Tensor i = ids({1, 2, 3}, {3});
  const Tensor f = zeros({3});
  expect_error([&] { exp(i); }, {"exp", "floating-point", "int64"});
  expect_error([&] { add(f, i); }, {"add", "float32", "int64"});
  expect_error([&] { add(i, i); }, {"add", "floating-point", "int64"});
  expect_error([&] { mul(i, 2.0); }, {"mul", "int64"});
  expect_error([&] { sum(i); }, {"sum", "int64"});
  expect_error([&] { softmax(from_vector(std::vector<bool>{true}, {1})); }, {"softmax", "bool"});
  expect_error([&] { matmul(ids({1, 2, 3, 4}, {2, 2}), ids({1, 2, 3, 4}, {2, 2})); }, {"matmul", "int64"});
  expect_error([&] { layer_norm(i, Tensor(), Tensor()); }, {"layer_norm", "int64"});
  expect_error([&] { gelu(i); }, {"gelu", "int64"});
  // ...and the reverse: ids and targets must be integers.
  expect_error([] { embedding(zeros({5, 3}), zeros({2})); }, {"embedding", "ids", "int64", "float32"});
  expect_error([] { embedding(ids({0}, {1}).reshape({1, 1}), ids({0}, {1})); }, {"embedding", "weight", "int64"});
  expect_error([] { cross_entropy(zeros({2, 3}), zeros({2})); }, {"cross_entropy", "targets", "int64", "float32"});
}

TEST(IntegerTensors, EmbeddingAndCrossEntropyTakeInt64Tensors) {
  Tensor w = from_vector(std::vector<double>{0, 1, 10, 11, 20, 21}, {3, 2}).set_requires_grad(true);
  const Tensor idx = ids({2, 0, 2}, {3, 1}).transpose(0, 1);  // a strided view of ids is fine
  const Tensor out = embedding(w, idx);
  EXPECT_EQ(out.shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{20, 21, 0, 1, 20, 21}));
  sum(out).backward();
  EXPECT_EQ(w.grad().to_vector<double>(), (std::vector<double>{1, 1, 0, 0, 2, 2}));

  Tensor logits = zeros({2, 4}, DType::Float64).set_requires_grad(true);
  const Tensor loss = cross_entropy(logits, ids({3, -100}, {2}));
  EXPECT_NEAR(loss.item(), std::log(4.0), 1e-15);
  loss.backward();
  EXPECT_NEAR(logits.grad().at({0, 3}), 0.25 - 1.0, 1e-15);
  EXPECT_EQ(logits.grad().at({1, 3}), 0.0);  // the ignored row
}

// The backward of embedding and cross_entropy reads the ids: editing them in place before backward
// would send gradients to other rows, so it is refused like any other saved tensor.
TEST(IntegerTensors, EditingSavedIdsBeforeBackwardIsRefused) {
  Tensor w = ones({4, 2}, DType::Float64).set_requires_grad(true);
  Tensor idx = ids({1, 2}, {2});
  Tensor out = sum(embedding(w, idx));
  idx.set({0}, 3);
  EXPECT_THROW(out.backward(), std::runtime_error);

  Tensor logits = zeros({2, 3}, DType::Float64).set_requires_grad(true);
  Tensor targets = ids({0, 2}, {2});
  Tensor loss = cross_entropy(logits, targets);
  targets.set({1}, 1);
  EXPECT_THROW(loss.backward(), std::runtime_error);
}

TEST(IntegerTensors, MasksAndConditionsAreBool) {
  const Tensor x = from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2});
  const Tensor mask = from_vector(std::vector<bool>{false, true}, {2});  // broadcast over rows
  EXPECT_EQ(masked_fill(x, mask, -1).to_vector<double>(), (std::vector<double>{1, -1, 3, -1}));
  EXPECT_EQ(masked_fill(x, mask, -1).to_vector<double>(), masked_fill(x, mask.to(DType::Float64), -1).to_vector<double>());
  const Tensor cond = from_vector(std::vector<bool>{true, false, false, true}, {2, 2});
  EXPECT_EQ(where(cond, x, zeros_like(x)).to_vector<double>(), (std::vector<double>{1, 0, 0, 4}));
  expect_error([&] { masked_fill(ids({1, 2}, {2}), mask, 0); }, {"masked_fill", "int64"});
  expect_error([&] { where(cond, ids({1, 2, 3, 4}, {2, 2}), ids({1, 2, 3, 4}, {2, 2})); }, {"where", "int64"});
}
