// In-place edits of tensors that a backward still needs are refused (version counters, as in PyTorch).
// Before: y = exp(w); y.set({0}, 100); sum(y).backward() gave w.grad = [100, 2.718] (exp's backward reads
// its output), and y.detach().copy_(zeros) silently zeroed exp's gradient. One test per way of writing in
// place; each fails when the engine skips the version check (the mutation tried: check_saved_versions
// returning at once) or when that entry point does not bump the version.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace minitrain;

namespace {

Tensor leaf(std::vector<double> values) {
  const int64_t n = static_cast<int64_t>(values.size());
  return from_vector(values, {n}).set_requires_grad(true);
}

// backward() of `loss` must throw a message containing every piece of `parts`.
void expect_refused(const Tensor& loss, const std::vector<std::string>& parts) {
  try {
    loss.backward();
    ADD_FAILURE() << "backward ran after an in-place edit of a saved tensor";
  } catch (const std::runtime_error& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(InPlaceVersions, SetOnASavedOutputIsRefused) {
  Tensor w = leaf({0.5, 1.0});
  Tensor y = exp(w);
  const uint64_t before = y.version();
  y.set({0}, 100);
  EXPECT_EQ(y.version(), before + 1);
  expect_refused(sum(y), {"its output (shape [2]) of 'exp' was modified in place", "version 0, now 1"});
  EXPECT_FALSE(w.grad().defined());  // refused before any gradient was computed
}

TEST(InPlaceVersions, CopyIntoADetachedAliasIsRefused) {
  Tensor w = leaf({0.5, 1.0});
  Tensor y = exp(w);
  y.detach().copy_(zeros({2}));  // detach() shares y's buffer
  expect_refused(sum(y), {"'exp'"});
}

TEST(InPlaceVersions, CopyIntoAViewIsRefused) {
  Tensor w = leaf({0.5, 1.0, 2.0});
  Tensor y = tanh(w);
  y.detach().narrow(0, 1, 1).copy_(zeros({1}));  // a view of part of the buffer
  expect_refused(sum(y), {"'tanh'"});
}

TEST(InPlaceVersions, EditingASavedInputIsRefusedNamingIt) {
  Tensor a = leaf({1, 2}), b = from_vector(std::vector<double>{3, 4}, {2});
  Tensor y = mul(a, b);  // mul's backward reads both inputs
  b.set({1}, 0);
  expect_refused(sum(y), {"its input 1 (shape [2]) of 'mul'"});
}

TEST(InPlaceVersions, SetDataOnASavedInputIsRefused) {
  Tensor a = leaf({1, 2}), b = from_vector(std::vector<double>{3, 4}, {2});
  Tensor y = mul(a, b);
  b.set_data(from_vector(std::vector<double>{7, 8}, {2}));
  expect_refused(sum(y), {"its input 1", "set_data"});
}

TEST(InPlaceVersions, AManualRawWriteTakesPartThroughBumpVersion) {
  Tensor w = leaf({0.5, 1.0});
  Tensor y = sigmoid(w);
  y.detach().data<double>()[0] = 9;  // raw writes are invisible...
  y.detach().bump_version();         // ...until the writer says so
  expect_refused(sum(y), {"'sigmoid'"});
}

// What the ops record: for each, editing what its backward reads (the input, or for the softmax family
// the output) after the op ran refuses backward.
TEST(InPlaceVersions, EveryOpThatReadsATensorInBackwardRecordsIt) {
  struct Case {
    const char* op;
    std::function<Tensor(const Tensor&)> f;  // x: (2, 4) float64 leaf
    bool reads_output = false;               // edit the output instead of x
  };
  const Tensor w = from_vector(std::vector<double>{1, -2, 3, 0.5, -1, 2, 0.25, 4}, {2, 4});
  const std::vector<Case> cases = {
      {"matmul", [&](const Tensor& x) { return matmul(x, w.transpose(0, 1)); }},
      {"linear", [&](const Tensor& x) { return linear(x, w, Tensor()); }},
      {"softmax", [](const Tensor& x) { return softmax(x, -1); }, true},
      {"log_softmax", [](const Tensor& x) { return log_softmax(x, -1); }, true},
      {"layer_norm", [](const Tensor& x) { return layer_norm(x, ones({4}, DType::Float64), zeros({4}, DType::Float64)); }},
      {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"div", [&](const Tensor& x) { return div(w, x); }},
      {"cross_entropy", [](const Tensor& x) { return cross_entropy(x, from_vector(std::vector<int64_t>{1, 3}, {2})); }},
      {"scaled_dot_product_attention", [](const Tensor& x) {
         const Tensor q = x.reshape({1, 2, 4});
         return scaled_dot_product_attention(q, q, q, 0.5, /*causal=*/true);
       }},
  };
  for (const Case& c : cases) {
    Tensor x = from_vector(std::vector<double>{0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8}, {2, 4}).set_requires_grad(true);
    Tensor y = c.f(x);
    (c.reads_output ? y : x).detach().set({0, 1}, 5);
    SCOPED_TRACE(c.op);
    expect_refused(sum(y), {std::string("'") + c.op + "'"});
  }
}

// Edits that backward does not depend on stay allowed, and clone() is the way out.
TEST(InPlaceVersions, EditsBackwardDoesNotReadAreAllowed) {
  Tensor a = leaf({1, 2}), b = leaf({3, 4});
  Tensor y = add(a, b);  // add's backward reads no values
  b.detach().set({0}, 10);
  sum(y).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{1, 1}));

  Tensor w = leaf({0.5, 1.0});
  Tensor e = exp(w);
  Tensor edited = e.detach().clone();
  edited.set({0}, 100);  // a copy: e itself is untouched
  sum(e).backward();
  EXPECT_NEAR(w.grad().to_vector<double>()[0], std::exp(0.5), 1e-15);
}
