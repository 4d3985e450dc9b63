// nn::RMSNorm and nn::RotaryEmbedding: parameters and their initialisation, torch's default eps per dtype,
// gradients (float64 finite differences for the parameters and the input), forward hooks, the rotary
// tables' cache (grown on demand, per dtype, never changing a result) and token-by-token use with a KV
// cache, errors and the summary line.
#include "test_util.h"

#include <minitrain/nn/layers.h>
#include <minitrain/nn/rotary.h>

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <stdexcept>
#include <string>

using namespace minitrain;
using namespace minitrain::nn_test;

namespace {

void expect_invalid(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning '" << fragments.front() << "'";
  } catch (const std::invalid_argument& e) {
    for (const std::string& frag : fragments) EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(RMSNorm, WeightIsOneAndResetDrawsNothing) {
  nn::RMSNorm norm(5);
  ASSERT_EQ(norm.named_parameters().size(), 1u);
  EXPECT_EQ(norm.named_parameters()[0].first, "weight");
  EXPECT_EQ(norm.weight.shape(), (Shape{5}));
  EXPECT_EQ(norm.weight.to_vector<double>(), std::vector<double>(5, 1.0));
  perturb_parameters(norm, 1, 0.5);
  Generator g(9), untouched(9);
  norm.reset_parameters(g);
  EXPECT_EQ(norm.weight.to_vector<double>(), std::vector<double>(5, 1.0));
  EXPECT_EQ(g.next_u64(), untouched.next_u64());  // no draw
  nn::RMSNorm plain(5, 1e-5, false);
  EXPECT_TRUE(plain.parameters().empty());
  EXPECT_FALSE(plain.weight.defined());
  EXPECT_EQ(plain.num_parameters(), 0);
}

TEST(RMSNorm, DefaultEpsIsTheMachineEpsilonOfTheInputDtype) {
  nn::RMSNorm norm(6);
  EXPECT_EQ(norm.eps_for(DType::Float64), std::ldexp(1.0, -52));
  EXPECT_EQ(norm.eps_for(DType::Float32), std::ldexp(1.0, -23));
  EXPECT_EQ(nn::RMSNorm(6, 1e-5).eps_for(DType::Float64), 1e-5);
  // Rows whose mean square is of the size of eps, where the value of eps shows in the output.
  for (DType dtype : {DType::Float32, DType::Float64}) {
    norm.to(dtype);
    const double eps = norm.eps_for(dtype);
    const Tensor x = rnd({3, 6}, 2, std::sqrt(eps), dtype);
    const Tensor y = norm(x);
    EXPECT_EQ(y.to_vector<double>(), rms_norm(x, norm.weight, eps).to_vector<double>()) << dtype_name(dtype);
    EXPECT_GT(max_abs_diff(y, rms_norm(x, norm.weight, 0.0)), 0.05) << dtype_name(dtype);
  }
}

TEST(RMSNorm, GradientsOfWeightAndInput) {
  for (bool affine : {true, false}) {
    nn::RMSNorm norm(7, std::nullopt, affine);
    norm.to(DType::Float64);
    perturb_parameters(norm, 3, 0.5);
    const Tensor x = rnd({2, 3, 7}, 4);
    const std::string what = affine ? "RMSNorm" : "RMSNorm(no affine)";
    if (affine) {
      ModuleCheckResult r = module_gradcheck(norm, [&](auto in) { return norm(in[0]); }, {x});
      std::cout << "[module_gradcheck] " << what << ": " << r.summary() << "\n";
      EXPECT_TRUE(r.passed) << r.summary();
      EXPECT_EQ(r.parameters_checked, 1);
      EXPECT_GT(r.min_param_grad_scale, 1e-4);
    }
    GradcheckResult r = gradcheck([&](auto in) { return norm(in[0]); }, {x});
    std::cout << "[gradcheck input] " << what << ": " << r.summary() << "\n";
    EXPECT_TRUE(r.passed) << what << ": " << r.summary();
  }
}

TEST(RMSNorm, RunsForwardHooksAndDescribesItself) {
  nn::RMSNorm norm(4, 1e-6);
  int calls = 0;
  norm.register_forward_hook([&](nn::Module& m, const std::vector<Tensor>& in, const Tensor& out) {
    ++calls;
    EXPECT_EQ(&m, &norm);
    EXPECT_EQ(in.size(), 1u);
    EXPECT_EQ(out.shape(), (Shape{2, 4}));
  });
  norm(zeros({2, 4}));
  EXPECT_EQ(calls, 1);
  EXPECT_NE(norm.summary().find("RMSNorm(4, eps=1e-06, elementwise_affine=true)"), std::string::npos) << norm.summary();
  EXPECT_NE(nn::RMSNorm(3, std::nullopt, false).summary().find("RMSNorm(3, eps=None, elementwise_affine=false)"),
            std::string::npos);
}

TEST(RMSNorm, BadArgumentsAndInputs) {
  expect_invalid([] { nn::RMSNorm(0); }, {"RMSNorm", "dim", "0"});
  expect_invalid([] { nn::RMSNorm(4, -1.0); }, {"RMSNorm", "eps", "-1"});
  // Without a weight, the op alone could not see the mismatch: the module checks the last dim.
  expect_invalid([] { nn::RMSNorm(4, std::nullopt, false)(zeros({2, 5})); }, {"RMSNorm", "[2,5]", "dim 4"});
  expect_invalid([] { nn::RMSNorm(4)(zeros({2, 5})); }, {"RMSNorm", "[2,5]", "dim 4"});
  expect_invalid([] { nn::RMSNorm(4)(zeros({2, 4}, DType::Float64)); }, {"rms_norm", "float32", "float64"});
}

TEST(RotaryEmbedding, HasNoParametersAndAppliesTheOp) {
  nn::RotaryEmbedding rope(8, 500000.0, RotaryLayout::Interleaved);
  EXPECT_TRUE(rope.parameters().empty());
  EXPECT_EQ(rope.head_dim(), 8);
  EXPECT_EQ(rope.theta(), 500000.0);
  EXPECT_EQ(rope.layout(), RotaryLayout::Interleaved);
  EXPECT_NE(rope.summary().find("RotaryEmbedding(head_dim=8, theta=500000, layout=interleaved)"), std::string::npos)
      << rope.summary();
  const Tensor x = rnd({2, 3, 5, 8}, 5);
  const auto [c, s] = rotary_tables(8, 4, 5, 500000.0, DType::Float64);
  EXPECT_TRUE(bit_identical(rope(x, 4), rotary_embedding(x, c, s, RotaryLayout::Interleaved)));
  const Tensor bthd = rnd({2, 5, 3, 8}, 6);
  EXPECT_TRUE(bit_identical(rope(bthd, 4, -3), rotary_embedding(bthd, c, s, RotaryLayout::Interleaved, -3)));
  nn::RotaryEmbedding defaults(4);
  EXPECT_EQ(defaults.theta(), 10000.0);
  EXPECT_EQ(defaults.layout(), RotaryLayout::Halves);
}

TEST(RotaryEmbedding, CacheGrowsPerDtypeAndNeverChangesAResult) {
  nn::RotaryEmbedding used(8);
  EXPECT_EQ(used.cached_positions(DType::Float32), 0);
  const Tensor x = rnd({1, 2, 3, 8}, 7, 1.0, DType::Float32);
  const Tensor first = used(x, 0);
  EXPECT_EQ(used.cached_positions(DType::Float32), 3);
  used(x, 1);  // positions 1..3: doubled to 6
  EXPECT_EQ(used.cached_positions(DType::Float32), 6);
  used(x, 100);  // far ahead: exactly what is needed
  EXPECT_EQ(used.cached_positions(DType::Float32), 103);
  EXPECT_EQ(used.cached_positions(DType::Float64), 0);
  used(x.to(DType::Float64), 0);
  EXPECT_EQ(used.cached_positions(DType::Float64), 3);
  // After all that growing, the same call gives the same bits, and a fresh module agrees at every position.
  EXPECT_TRUE(bit_identical(used(x, 0), first));
  for (int64_t start : {0, 1, 50, 100}) EXPECT_TRUE(bit_identical(used(x, start), nn::RotaryEmbedding(8)(x, start))) << start;
}

TEST(RotaryEmbedding, TokenByTokenWithStartPositionsEqualsTheWholeSequence) {
  // A KV cache feeds the prompt, then one token at a time at start_position = tokens seen so far.
  for (RotaryLayout layout : {RotaryLayout::Halves, RotaryLayout::Interleaved}) {
    nn::RotaryEmbedding whole_rope(16, 10000.0, layout), step_rope(16, 10000.0, layout);
    const Tensor q = rnd({2, 4, 9, 16}, 8, 1.0, DType::Float32);
    const Tensor whole = whole_rope(q, 0);
    EXPECT_TRUE(bit_identical(step_rope(q.narrow(2, 0, 5), 0), whole.narrow(2, 0, 5)));
    for (int64_t t = 5; t < 9; ++t) EXPECT_TRUE(bit_identical(step_rope(q.narrow(2, t, 1), t), whole.narrow(2, t, 1))) << t;
  }
}

TEST(RotaryEmbedding, InputGradientThroughTheModule) {
  nn::RotaryEmbedding rope(6, 100.0);
  for (int64_t seq_dim : {-2, -3}) {
    GradcheckResult r = gradcheck([&](auto in) { return rope(in[0], 3, seq_dim); }, {rnd({2, 4, 3, 6}, 9)});
    std::cout << "[gradcheck input] RotaryEmbedding seq_dim " << seq_dim << ": " << r.summary() << "\n";
    EXPECT_TRUE(r.passed) << r.summary();
  }
}

TEST(RotaryEmbedding, BadArgumentsAndInputs) {
  expect_invalid([] { nn::RotaryEmbedding(7); }, {"RotaryEmbedding", "head_dim", "even", "7"});
  expect_invalid([] { nn::RotaryEmbedding(0); }, {"RotaryEmbedding", "head_dim", "0"});
  expect_invalid([] { nn::RotaryEmbedding(8, -1.0); }, {"RotaryEmbedding", "theta", "-1"});
  nn::RotaryEmbedding rope(8);
  expect_invalid([&] { rope(zeros({2, 3, 6}), 0); }, {"RotaryEmbedding", "[2,3,6]", "head_dim 8"});
  expect_invalid([&] { rope(zeros({8}), 0); }, {"RotaryEmbedding", "[8]", "at least 2 dims"});
  expect_invalid([&] { rope(zeros({2, 3, 8}), -1); }, {"RotaryEmbedding", "start_position", "-1"});
  expect_invalid([&] { rope(zeros({2, 3, 8}), 0, 2); }, {"RotaryEmbedding", "seq_dim 2", "[2,3,8]"});
  expect_invalid([&] { rope(zeros({2, 3, 8}), 0, -1); }, {"RotaryEmbedding", "seq_dim -1", "[2,3,8]"});
  expect_invalid([&] { rope(zeros({2, 3, 8}, DType::Int64), 0); }, {"RotaryEmbedding", "int64"});
  EXPECT_EQ(rope.cached_positions(DType::Float32), 0);  // nothing was built for refused calls
}
