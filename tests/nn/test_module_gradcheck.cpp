// gradcheck_module: parameters' gradients against finite differences on a float64 copy, sampled entries,
// the worst entry per parameter, and a module with a wrong gradient reported by name.
#include "test_util.h"

#include <minitrain/core/factory.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/nn/gradcheck.h>
#include <minitrain/nn/layers.h>

#include <gtest/gtest.h>

using namespace minitrain;
using namespace minitrain::nn_test;

namespace {

struct Net : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::LayerNorm> norm;
  Net() : Module("Net") {
    Generator g(2);
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(5, 48, true, &g));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(48));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(48, 3, true, &g));
  }
  Tensor forward(const Tensor& x) { return fc2->forward(tanh(norm->forward(fc1->forward(x)))); }
};

// `scale`'s gradient is half what it should be: half of the product goes through a detached copy, so
// backward misses that term (as a backward that drops a term would).
struct WrongGradient : nn::Module {
  Tensor weight, scale;
  WrongGradient() : Module("WrongGradient") {
    weight = register_parameter("weight", from_vector(std::vector<float>{0.5f, -1.0f, 2.0f}, {3}));
    scale = register_parameter("scale", from_vector(std::vector<float>{1.5f, 0.7f, -0.3f}, {3}));
  }
  Tensor forward(const Tensor& x) {
    const Tensor y = mul(x, weight);
    return add(mul(mul(y, scale), 0.5), mul(mul(y, scale.detach()), 0.5));
  }
};

Tensor batch() {
  Generator g(9);
  return randn({4, 5}, g);
}

}  // namespace

TEST(ModuleGradcheck, PassesOnLayersAndLeavesTheModuleAsItWas) {
  Net net;
  const Tensor x = batch();
  const auto before = net.state_dict();
  std::map<std::string, Tensor> copies;
  for (const auto& [name, t] : before) copies[name] = t.clone();
  auto r = nn::gradcheck_module(net, [&](const std::vector<Tensor>& in) { return net.forward(in[0]); }, {x});
  EXPECT_TRUE(r.passed) << r.summary();
  ASSERT_EQ(r.tensors.size(), net.named_parameters().size());  // x does not require grad: not checked
  EXPECT_EQ(r.tensors[0].name, "fc1.weight");
  EXPECT_EQ(r.tensors[0].numel, 240);
  EXPECT_EQ(r.tensors[0].entries_checked, 64);  // sampled: more than max_entries
  EXPECT_EQ(r.tensors[1].entries_checked, 48);  // fc1.bias: every entry
  EXPECT_EQ(net.dtype(), DType::Float32);
  for (const auto& [name, t] : net.state_dict()) {
    EXPECT_EQ(t.dtype(), DType::Float32) << name;
    EXPECT_TRUE(bit_identical(t, copies.at(name))) << name;
  }
  for (const Tensor& p : net.parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(ModuleGradcheck, SampledEntriesAreDeterministicGivenTheSeed) {
  Net net;
  const Tensor x = batch();
  auto f = [&](const std::vector<Tensor>& in) { return net.forward(in[0]); };
  nn::ModuleGradcheckOptions o;
  o.max_entries = 5;
  auto a = nn::gradcheck_module(net, f, {x}, o), b = nn::gradcheck_module(net, f, {x}, o);
  o.max_entries = 0;  // every entry
  auto all = nn::gradcheck_module(net, f, {x}, o);
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].index, b.tensors[i].index) << a.tensors[i].name;
    EXPECT_EQ(a.tensors[i].analytic, b.tensors[i].analytic) << a.tensors[i].name;
    EXPECT_EQ(a.tensors[i].entries_checked, std::min<int64_t>(5, a.tensors[i].numel));
    EXPECT_EQ(all.tensors[i].entries_checked, all.tensors[i].numel);
    EXPECT_LE(a.tensors[i].ratio, all.tensors[i].ratio) << a.tensors[i].name;  // a subset's worst
  }
}

TEST(ModuleGradcheck, ReportsTheParameterWhoseGradientIsWrong) {
  WrongGradient m;
  const Tensor x = from_vector(std::vector<float>{1.0f, 2.0f, -0.5f}, {3});
  auto r = nn::gradcheck_module(m, [&](const std::vector<Tensor>& in) { return m.forward(in[0]); }, {x});
  EXPECT_FALSE(r.passed);
  ASSERT_EQ(r.tensors.size(), 2u);
  EXPECT_TRUE(r.tensors[0].passed) << r.summary();  // weight's gradient is right
  EXPECT_FALSE(r.tensors[1].passed);
  EXPECT_EQ(r.worst().name, "scale");
  EXPECT_NEAR(r.worst().analytic, 0.5 * r.worst().numeric, 1e-6);
  EXPECT_NE(r.summary().find("FAIL scale"), std::string::npos) << r.summary();
}

TEST(ModuleGradcheck, ChecksInputsThatRequireGrad) {
  Net net;
  Tensor x = batch().set_requires_grad(true);
  auto r = nn::gradcheck_module(net, [&](const std::vector<Tensor>& in) { return net.forward(in[0]); }, {x});
  EXPECT_TRUE(r.passed) << r.summary();
  EXPECT_EQ(r.tensors.back().name, "input 0");
  EXPECT_EQ(r.tensors.back().entries_checked, 20);
}

TEST(ModuleGradcheck, PassesOnAGPTWithTokenIds) {
  nn::GPTConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.vocab_size = 11;
  c.block_size = 6;
  nn::GPT gpt(c);
  const Tensor idx = from_vector(std::vector<int64_t>{1, 4, 2, 9, 0, 3, 3, 7}, {2, 4});
  const Tensor targets = from_vector(std::vector<int64_t>{4, 2, 9, 0, 3, 3, 7, 1}, {2, 4});
  nn::ModuleGradcheckOptions o;
  o.max_entries = 8;
  auto r = nn::gradcheck_module(gpt, [&](const std::vector<Tensor>& in) { return gpt.loss(in[0], in[1]); }, {idx, targets}, o);
  EXPECT_TRUE(r.passed) << r.summary();
  EXPECT_EQ(r.tensors.size(), gpt.named_parameters().size());
}

TEST(ModuleGradcheck, RefusesAFunctionThatIsNotDeterministic) {
  auto drop = std::make_shared<nn::Dropout>(0.5);
  Net net;
  const Tensor x = batch();
  EXPECT_THROW(nn::gradcheck_module(net, [&](const std::vector<Tensor>& in) { return drop->forward(net.forward(in[0])); }, {x}),
               std::invalid_argument);
  EXPECT_EQ(net.dtype(), DType::Float32);  // converted back although it threw
}
