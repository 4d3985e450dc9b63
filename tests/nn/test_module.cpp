// Module API: registration, dotted names, uniqueness of tied parameters, modes, dtype conversion,
// state dicts (round trip, strict and non-strict loading), counts, summary and the containers.
#include "test_util.h"

#include <minitrain/nn/containers.h>
#include <minitrain/nn/init.h>
#include <minitrain/nn/layers.h>

#include <gtest/gtest.h>

#include <set>

using namespace minitrain;
using namespace minitrain::nn_test;

namespace {

// The example from module.h, with an extra own parameter so that "own before children" is visible.
struct TwoLayer : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  Tensor gain;
  explicit TwoLayer(uint64_t seed) : Module("TwoLayer") {
    Generator g(seed);
    gain = register_parameter("gain", full({1}, 1.5));
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8, true, &g));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 1, true, &g));
  }
  Tensor forward(const Tensor& x) { return mul(fc2->forward(tanh(fc1->forward(x))), gain); }
};

// Two levels of nesting: Outer -> inner (TwoLayer) -> fc1 (Linear).
struct Outer : nn::Module {
  std::shared_ptr<TwoLayer> inner;
  std::shared_ptr<nn::LayerNorm> norm;
  explicit Outer(uint64_t seed) : Module("Outer") {
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(4));
    inner = register_module("inner", std::make_shared<TwoLayer>(seed));
  }
  Tensor forward(const Tensor& x) { return inner->forward(norm->forward(x)); }
};

// A module with one tensor under two names (weight tying).
struct Tied : nn::Module {
  std::shared_ptr<nn::Embedding> emb;
  std::shared_ptr<nn::Linear> head;
  Tied() : Module("Tied") {
    Generator g(3);
    emb = register_module("emb", std::make_shared<nn::Embedding>(5, 3, &g));
    head = register_module("head", std::make_shared<nn::Linear>(3, 5, false, &g));
    head->weight = head->register_parameter("weight", emb->weight);
  }
};

std::vector<std::string> names_of(const nn::Module& m) {
  std::vector<std::string> out;
  for (auto& [name, t] : m.named_parameters()) out.push_back(name);
  return out;
}

std::vector<std::vector<double>> snapshot(const nn::Module& m) {
  std::vector<std::vector<double>> out;
  for (const Tensor& p : m.parameters()) out.push_back(p.to_vector<double>());
  return out;
}

Tensor input(uint64_t seed, DType dtype = DType::Float32) { return rnd({3, 4}, seed, 1.0, dtype); }

}  // namespace

TEST(Module, RegisterParameterReturnsTheRegisteredLeaf) {
  nn::Module m("Plain");
  Tensor t = zeros({2, 3});
  Tensor r = m.register_parameter("w", t);
  EXPECT_EQ(r.impl(), t.impl());  // the same tensor, not a copy
  EXPECT_TRUE(r.requires_grad());
  EXPECT_TRUE(r.is_leaf());
  ASSERT_EQ(m.named_parameters().size(), 1u);
  EXPECT_EQ(m.named_parameters()[0].first, "w");
  EXPECT_EQ(m.named_parameters()[0].second.impl(), r.impl());
  Tensor frozen = m.register_parameter("frozen", ones({2}), /*requires_grad=*/false);
  EXPECT_FALSE(frozen.requires_grad());
}

TEST(Module, RegisterModuleReturnsTheRegisteredModuleTyped) {
  nn::Module m("Plain");
  auto lin = std::make_shared<nn::Linear>(2, 3);
  std::shared_ptr<nn::Linear> r = m.register_module("lin", lin);
  EXPECT_EQ(r.get(), lin.get());
  ASSERT_EQ(m.children().size(), 1u);
  EXPECT_EQ(m.children()[0].get(), lin.get());
  EXPECT_EQ(m.named_children()[0].first, "lin");
}

TEST(Module, RegistrationRejectsBadNames) {
  nn::Module m("Plain");
  EXPECT_THROW(m.register_parameter("a.b", zeros({1})), std::invalid_argument);
  EXPECT_THROW(m.register_parameter("", zeros({1})), std::invalid_argument);
  EXPECT_THROW(m.register_parameter("undefined", Tensor()), std::invalid_argument);
  EXPECT_THROW(m.register_module("x.y", std::make_shared<nn::Linear>(1, 1)), std::invalid_argument);
}

TEST(Module, NamedParametersAreDottedOwnFirstThenChildren) {
  Outer m(1);
  const std::vector<std::string> expected = {"norm.weight",          "norm.bias",         "inner.gain",
                                             "inner.fc1.weight",     "inner.fc1.bias",    "inner.fc2.weight",
                                             "inner.fc2.bias"};
  EXPECT_EQ(names_of(m), expected);
  // The named tensors are the members themselves.
  for (auto& [name, t] : m.named_parameters())
    if (name == "inner.fc1.weight") {
      EXPECT_EQ(t.impl(), m.inner->fc1->weight.impl());
    }
  EXPECT_EQ(m.parameters().size(), expected.size());
}

TEST(Module, TiedParameterListedOnceButInStateDictTwice) {
  Tied m;
  ASSERT_EQ(m.head->weight.impl(), m.emb->weight.impl());
  EXPECT_EQ(names_of(m), std::vector<std::string>{"emb.weight"});
  std::vector<Tensor> ps = m.parameters();
  std::set<const void*> unique;
  for (const Tensor& p : ps) unique.insert(p.impl());
  EXPECT_EQ(unique.size(), ps.size());
  EXPECT_EQ(ps.size(), 1u);
  EXPECT_EQ(m.num_parameters(), 15);
  nn::StateDict sd = m.state_dict();
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_EQ(sd.at("emb.weight").impl(), sd.at("head.weight").impl());
}

TEST(Module, TrainAndEvalAreRecursive) {
  Outer m(1);
  EXPECT_TRUE(m.inner->fc1->is_training());
  m.eval();
  EXPECT_FALSE(m.is_training());
  EXPECT_FALSE(m.inner->is_training());
  EXPECT_FALSE(m.inner->fc1->is_training());  // grandchild
  EXPECT_FALSE(m.norm->is_training());
  m.train();
  EXPECT_TRUE(m.inner->fc2->is_training());
  m.inner->train(false);  // only the subtree
  EXPECT_TRUE(m.is_training());
  EXPECT_FALSE(m.inner->fc2->is_training());
}

TEST(Module, ZeroGradClearsEveryGradient) {
  Outer m(1);
  sum(m.forward(input(2))).backward();
  int with_grad = 0;
  for (const Tensor& p : m.parameters()) with_grad += p.grad().defined() ? 1 : 0;
  ASSERT_EQ(with_grad, static_cast<int>(m.parameters().size()));
  m.zero_grad();
  for (auto& [name, p] : m.named_parameters()) {
    if (!p.grad().defined()) continue;
    for (double g : p.grad().to_vector<double>()) EXPECT_EQ(g, 0.0) << name;
  }
  // And the next backward starts from zero, not from the old gradient.
  Tensor x = input(2);
  sum(m.forward(x)).backward();
  std::vector<double> once = m.inner->fc1->weight.grad().to_vector<double>();
  m.zero_grad();
  sum(m.forward(x)).backward();
  EXPECT_EQ(m.inner->fc1->weight.grad().to_vector<double>(), once);
}

TEST(Module, ToFloat64ConvertsInPlaceAndMembersSeeIt) {
  Outer m(1);
  const auto before = snapshot(m);
  Tensor held = m.inner->fc1->weight;  // a handle taken before the conversion
  m.to(DType::Float64);
  EXPECT_EQ(m.dtype(), DType::Float64);
  for (auto& [name, p] : m.named_parameters()) EXPECT_EQ(p.dtype(), DType::Float64) << name;
  EXPECT_EQ(m.inner->fc1->weight.dtype(), DType::Float64);
  EXPECT_EQ(m.norm->bias.dtype(), DType::Float64);
  EXPECT_EQ(held.dtype(), DType::Float64);
  EXPECT_EQ(held.impl(), m.inner->fc1->weight.impl());
  EXPECT_TRUE(m.inner->fc1->weight.requires_grad());
  EXPECT_EQ(snapshot(m), before);  // float32 values are exact in float64
  // Forward and backward work in float64 through the member handles.
  Tensor y = m.forward(input(5, DType::Float64));
  EXPECT_EQ(y.dtype(), DType::Float64);
  sum(y).backward();
  ASSERT_TRUE(held.grad().defined());
  EXPECT_EQ(held.grad().dtype(), DType::Float64);
  // Back to float32.
  m.to(DType::Float32);
  EXPECT_EQ(held.dtype(), DType::Float32);
}

TEST(Module, TiedWeightsStayTiedThroughTo) {
  Tied m;
  m.to(DType::Float64);
  EXPECT_EQ(m.head->weight.impl(), m.emb->weight.impl());
  EXPECT_EQ(m.head->weight.dtype(), DType::Float64);
}

TEST(Module, StateDictRoundTripGivesIdenticalOutputs) {
  Outer a(1), b(2);
  perturb_parameters(a, 10, 0.3);  // LayerNorm values differ from the fresh model's 1 and 0 as well
  const Tensor x = input(3);
  ASSERT_GT(max_abs_diff(a.forward(x), b.forward(x)), 1e-3);
  b.load_state_dict(a.state_dict());
  EXPECT_TRUE(bit_identical(a.forward(x), b.forward(x)));
  EXPECT_EQ(snapshot(a), snapshot(b));
  // The values were copied, not aliased: changing a afterwards leaves b alone.
  a.inner->fc1->weight.set({0, 0}, 100.0);
  EXPECT_NE(b.inner->fc1->weight.at({0, 0}), 100.0);
  for (auto& [name, t] : b.state_dict()) EXPECT_NE(t.impl(), a.state_dict().at(name).impl()) << name;
}

TEST(Module, LoadStateDictConvertsDtype) {
  Outer a(1), b(2);
  a.to(DType::Float64);
  b.load_state_dict(a.state_dict());
  EXPECT_EQ(b.dtype(), DType::Float32);
  const Tensor x = input(3);
  EXPECT_LT(max_abs_diff(b.forward(x), a.forward(x.to(DType::Float64))), 1e-5);
}

TEST(Module, StrictLoadNamesEveryBadKeyAndChangesNothing) {
  Outer target(1), source(2);
  const auto before = snapshot(target);
  nn::StateDict sd = source.state_dict();
  sd.erase("inner.fc1.bias");                               // missing
  sd["inner.extra.weight"] = zeros({2, 2});                 // unexpected
  sd["norm.weight"] = ones({5});                            // mis-shaped (model has [4])
  try {
    target.load_state_dict(sd);
    FAIL() << "strict load accepted a bad state dict";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("inner.fc1.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("inner.extra.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("norm.weight"), std::string::npos) << msg;
  }
  EXPECT_EQ(snapshot(target), before);  // the good entries were not copied either

  // Each problem alone is enough.
  for (int which = 0; which < 3; ++which) {
    nn::StateDict one = source.state_dict();
    const char* key = which == 0 ? "inner.fc2.weight" : which == 1 ? "surprise" : "inner.fc2.bias";
    if (which == 0) one.erase(key);
    if (which == 1) one[key] = zeros({1});
    if (which == 2) one[key] = zeros({2});
    try {
      target.load_state_dict(one);
      ADD_FAILURE() << "accepted with bad key " << key;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
    EXPECT_EQ(snapshot(target), before) << key;
  }
}

TEST(Module, NonStrictLoadIgnoresMissingAndUnexpected) {
  Outer target(1), source(2);
  const std::vector<double> kept_bias = target.inner->fc1->bias.to_vector<double>();
  nn::StateDict sd = source.state_dict();
  sd.erase("inner.fc1.bias");
  sd["inner.extra.weight"] = zeros({2, 2});
  EXPECT_NO_THROW(target.load_state_dict(sd, /*strict=*/false));
  EXPECT_EQ(target.inner->fc1->bias.to_vector<double>(), kept_bias);  // missing: untouched
  EXPECT_EQ(target.inner->fc1->weight.to_vector<double>(), source.inner->fc1->weight.to_vector<double>());
  EXPECT_EQ(target.inner->fc2->weight.to_vector<double>(), source.inner->fc2->weight.to_vector<double>());
  EXPECT_THROW(target.load_state_dict(sd, /*strict=*/true), std::invalid_argument);
}

TEST(Module, NumParametersCountsElements) {
  Outer m(1);
  // norm 4 + 4, gain 1, fc1 4*8 + 8, fc2 8*1 + 1
  EXPECT_EQ(m.num_parameters(), 4 + 4 + 1 + 32 + 8 + 8 + 1);
  nn::Linear no_bias(7, 3, false);
  EXPECT_EQ(no_bias.num_parameters(), 21);
  EXPECT_FALSE(no_bias.bias.defined());
}

TEST(Module, SummaryShowsNamesShapesAndTotal) {
  Outer m(1);
  const std::string s = m.summary();
  for (const char* needle : {"Outer", "inner", "fc1", "fc2", "norm", "gain", "weight", "bias", "TwoLayer", "Linear",
                             "LayerNorm", "[8,4]", "[1,8]", "[4]", "[8]"})
    EXPECT_NE(s.find(needle), std::string::npos) << "summary lacks '" << needle << "':\n" << s;
  EXPECT_NE(s.find(std::to_string(m.num_parameters())), std::string::npos) << s;
  EXPECT_NE(s.find("total: 58"), std::string::npos) << s;
}

TEST(Containers, SequentialRunsModulesAndLambdasInOrder) {
  Generator g(7);
  auto l1 = std::make_shared<nn::Linear>(2, 16, true, &g);
  auto l2 = std::make_shared<nn::Linear>(16, 1, true, &g);
  int calls = 0;
  nn::Sequential net;
  net.add(l1).add([&calls](const Tensor& x) {
                ++calls;
                return relu(x);
              })
      .add(l2);
  EXPECT_EQ(net.size(), 3u);
  EXPECT_EQ(names_of(net), (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"}));
  EXPECT_EQ(net.named_children()[1].second.get(), l2.get());
  const Tensor x = rnd({5, 2}, 9, 1.0, DType::Float32);
  Tensor y = net.forward(x);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(bit_identical(y, l2->forward(relu(l1->forward(x)))));
  // Without the lambda the result differs (the relu matters for this input), so the step really ran.
  EXPECT_GT(max_abs_diff(y, l2->forward(l1->forward(x))), 1e-4);
  EXPECT_EQ(y.shape(), (Shape{5, 1}));
}

TEST(Containers, ModuleListNamesItemsByIndex) {
  nn::ModuleList<nn::LayerNorm> list;
  auto a = list.push_back(std::make_shared<nn::LayerNorm>(3));
  auto b = list.push_back(std::make_shared<nn::LayerNorm>(2, 1e-5, false));
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].get(), a.get());
  EXPECT_EQ(list[1].get(), b.get());
  EXPECT_EQ(names_of(list), (std::vector<std::string>{"0.weight", "0.bias", "1.weight"}));
  EXPECT_EQ(list.num_parameters(), 8);
  int n = 0;
  for (const auto& item : list) n += item ? 1 : 0;
  EXPECT_EQ(n, 2);
}

// Modules are callable as in PyTorch's C++ frontend: (*m)(x) is m->forward(x), for every library module.
TEST(Module, CallingAModuleIsItsForward) {
  nn::manual_seed(3);
  auto fc = std::make_shared<nn::Linear>(4, 3);
  auto norm = std::make_shared<nn::LayerNorm>(3);
  auto emb = std::make_shared<nn::Embedding>(5, 4);
  nn::Sequential seq;
  seq.add(fc).add(norm);
  const Tensor ids = from_vector(std::vector<int64_t>{1, 4}, {2});
  const Tensor x = (*emb)(ids);
  EXPECT_EQ(x.to_vector<float>(), emb->forward(ids).to_vector<float>());
  EXPECT_EQ((*fc)(x).to_vector<float>(), fc->forward(x).to_vector<float>());
  EXPECT_EQ((*norm)((*fc)(x)).to_vector<float>(), norm->forward(fc->forward(x)).to_vector<float>());
  EXPECT_EQ(seq(x).to_vector<float>(), seq.forward(x).to_vector<float>());
}

// reset_parameters: each layer draws its default initialisation again, into the tensors it already holds;
// a module without its own override resets its children in registration order.
TEST(Module, ResetParametersRedrawsEachLayerInPlace) {
  TwoLayer net(5);
  Tensor w = net.fc1->weight;
  for (Tensor& p : net.parameters()) nn::constant_(p, 7.0);
  Generator a(11), b(11);
  net.reset_parameters(a);
  EXPECT_EQ(w.impl(), net.fc1->weight.impl());  // the same handle, new values
  const double bound = 1.0 / std::sqrt(4.0);
  for (double x : net.fc1->weight.to_vector<double>()) ASSERT_LE(std::fabs(x), bound);
  for (double x : net.gain.to_vector<double>()) EXPECT_EQ(x, 7.0);  // an own raw parameter: no default
  // The same draws as the layers' own resets, in order.
  nn::Linear fc1(4, 8, true, &b), fc2(8, 1, true, &b);
  EXPECT_TRUE(bit_identical(fc1.weight, net.fc1->weight));
  EXPECT_TRUE(bit_identical(fc2.bias, net.fc2->bias));

  nn::LayerNorm norm(6);
  nn::Embedding emb(50, 40);
  nn::constant_(norm.weight, 0.0);
  nn::constant_(norm.bias, 2.0);
  norm.reset_parameters();
  for (double x : norm.weight.to_vector<double>()) ASSERT_EQ(x, 1.0);
  for (double x : norm.bias.to_vector<double>()) ASSERT_EQ(x, 0.0);
  nn::constant_(emb.weight, 0.0);
  emb.reset_parameters();
  double sq = 0;
  for (double x : emb.weight.to_vector<double>()) sq += x * x;
  EXPECT_NEAR(std::sqrt(sq / 2000.0), 1.0, 0.1);  // N(0, 1)
}
