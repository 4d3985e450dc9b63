// Optimizers, schedule and clipping against formulas written out independently here.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/train/optimizer.h>

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>

using namespace minitrain;
using namespace minitrain::train;

namespace {
Tensor param(std::vector<double> v, Shape s) { return from_vector(v, s).set_requires_grad(true); }
void set_grad(Tensor& p, std::vector<double> g) {
  p.zero_grad();
  sum(mul(p, from_vector(g, p.shape()))).backward();  // d/dp sum(p * g) = g
}
}  // namespace

// AdamW written out for one tensor: decoupled decay, then the bias-corrected moment update.
struct ReferenceAdamW {
  double lr, beta1, beta2, eps, weight_decay;
  bool decay;
  std::vector<double> p, m, v;
  void step(const std::vector<double>& g, int t) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (decay) p[i] -= lr * weight_decay * p[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      const double mhat = m[i] / (1 - std::pow(beta1, t)), vhat = v[i] / (1 - std::pow(beta2, t));
      p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
  static ReferenceAdamW of(const AdamWOptions& o, bool decay, const Tensor& p) {
    const std::vector<double> init = p.to_vector<double>();
    return {o.lr(), o.betas().first, o.betas().second, o.eps(), o.weight_decay(), decay,
            init, std::vector<double>(init.size(), 0.0), std::vector<double>(init.size(), 0.0)};
  }
};

const std::vector<std::vector<double>> kGradsW{{0.1, -0.2, 0.3, 0.0}, {-0.5, 0.4, 0.1, 1.0}, {0.2, 0.2, -0.3, 0.5}};
const std::vector<std::vector<double>> kGradsB{{1.0, -1.0}, {0.5, 0.25}, {-0.1, 0.3}};

// Three steps of `opt` on w (2x2) and b (2) against the references.
void expect_matches_reference(Optimizer& opt, Tensor& w, Tensor& b, ReferenceAdamW ref_w, ReferenceAdamW ref_b) {
  for (int t = 1; t <= 3; ++t) {
    set_grad(w, kGradsW[t - 1]);
    set_grad(b, kGradsB[t - 1]);
    opt.step();
    ref_w.step(kGradsW[t - 1], t);
    ref_b.step(kGradsB[t - 1], t);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(w.to_vector<double>()[i], ref_w.p[i], 1e-12) << "w, step " << t;
    for (int i = 0; i < 2; ++i) EXPECT_NEAR(b.to_vector<double>()[i], ref_b.p[i], 1e-12) << "b, step " << t;
  }
  EXPECT_EQ(opt.steps(), 3);
}

TEST(AdamW, MatchesTheAlgorithmStepByStepWithDecayOnMatricesOnly) {
  Tensor w = param({0.5, -1.0, 2.0, 0.1}, {2, 2});  // dim 2: decayed
  Tensor b = param({0.3, -0.2}, {2});               // dim 1: not decayed
  const auto o = AdamWOptions(0.1).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.5);
  AdamW opt({{"w", w}, {"b", b}}, o);
  expect_matches_reference(opt, w, b, ReferenceAdamW::of(o, true, w), ReferenceAdamW::of(o, false, b));
}

TEST(AdamWOptions, ChainedSettersSetAndGettersReadWithTorchDefaults) {
  const AdamWOptions d;
  EXPECT_EQ(d.lr(), 1e-3);
  EXPECT_EQ(d.betas(), (std::pair<double, double>{0.9, 0.999}));
  EXPECT_EQ(d.eps(), 1e-8);
  EXPECT_EQ(d.weight_decay(), 1e-2);
  const auto o = AdamWOptions(3e-3).weight_decay(0.1).betas({0.8, 0.95}).eps(1e-6).lr(4e-3);
  EXPECT_EQ(o.lr(), 4e-3);
  EXPECT_EQ(o.weight_decay(), 0.1);
  EXPECT_EQ(o.betas().second, 0.95);
  EXPECT_EQ(o.eps(), 1e-6);
  const auto s = SGDOptions(0.5).momentum(0.9).weight_decay(1e-4);
  EXPECT_EQ(s.lr(), 0.5);
  EXPECT_EQ(s.momentum(), 0.9);
  EXPECT_EQ(s.weight_decay(), 1e-4);
  // A bare learning rate converts, as in torch::optim (SGD(params, 0.01)).
  Tensor w = param({1, 2}, {2});
  EXPECT_EQ(dynamic_cast<const SGDOptions&>(SGD({{"w", w}}, {0.01}).param_groups()[0].options()).lr(), 0.01);
  EXPECT_EQ(AdamW({{"w", w}}, 3e-3).param_groups()[0].options().get_lr(), 3e-3);
}

// Each group runs with its own options: lr, betas and weight decay; the decay rule still applies within a
// group (the matrix in the second group is not decayed there because that group's decay is 0).
TEST(AdamW, ParamGroupsEachUseTheirOwnOptions) {
  Tensor w = param({0.5, -1.0, 2.0, 0.1}, {2, 2});
  Tensor b = param({0.3, -0.2}, {2});
  const auto ow = AdamWOptions(0.1).betas({0.9, 0.95}).weight_decay(0.5);
  const auto ob = AdamWOptions(0.02).betas({0.8, 0.9}).eps(1e-6).weight_decay(0.0);
  AdamW opt({ParamGroup({{"w", w}}, ow), ParamGroup({{"b", b}}, ob)});
  ASSERT_EQ(opt.param_groups().size(), 2u);
  expect_matches_reference(opt, w, b, ReferenceAdamW::of(ow, true, w), ReferenceAdamW::of(ob, false, b));
}

TEST(AdamW, GroupsWithoutOptionsTakeTheDefaults) {
  Tensor w = param({0.5, -1.0, 2.0, 0.1}, {2, 2});
  Tensor b = param({0.3, -0.2}, {2});
  const auto defaults = AdamWOptions(0.05).weight_decay(0.2);
  const auto ob = AdamWOptions(0.01);
  AdamW opt({ParamGroup({{"w", w}}), ParamGroup({{"b", b}}, ob)}, defaults);
  EXPECT_EQ(opt.param_groups()[0].options().get_lr(), 0.05);
  expect_matches_reference(opt, w, b, ReferenceAdamW::of(defaults, true, w), ReferenceAdamW::of(ob, false, b));
}

// The decay rule is an option: decay_all decays the vector too (torch.optim's behaviour), and a rule of
// your own can go by name.
TEST(AdamW, DecayRuleIsOverridable) {
  for (int rule = 0; rule < 2; ++rule) {
    Tensor w = param({0.5, -1.0, 2.0, 0.1}, {2, 2});
    Tensor b = param({0.3, -0.2}, {2});
    auto o = AdamWOptions(0.1).weight_decay(0.5);
    if (rule == 0)
      o.decay_rule(decay_all);
    else
      o.decay_rule([](const std::string& name, const Tensor&) { return name == "b"; });
    AdamW opt({{"w", w}, {"b", b}}, o);
    expect_matches_reference(opt, w, b, ReferenceAdamW::of(o, rule == 0, w), ReferenceAdamW::of(o, true, b));
  }
}

TEST(AdamW, SplitByDecayGivesNanoGPTsTwoGroups) {
  Tensor w = param({1, 2, 3, 4}, {2, 2}), b = param({1, 2}, {2}), e = param({1, 2, 3, 4, 5, 6}, {3, 2});
  auto [decay, no_decay] = split_by_decay({{"w", w}, {"b", b}, {"e", e}});
  ASSERT_EQ(decay.size(), 2u);
  EXPECT_EQ(decay[0].first, "w");
  EXPECT_EQ(decay[1].first, "e");
  ASSERT_EQ(no_decay.size(), 1u);
  EXPECT_EQ(no_decay[0].first, "b");
}

// A schedule sets every group's lr (as nanoGPT's loop and torch's schedulers do); one group's lr can be
// set on its own through param_groups().
TEST(Optimizer, SetLrSetsEveryGroupAndGroupsCanBeSetAlone) {
  Tensor w = param({1, 2, 3, 4}, {2, 2}), b = param({1, 2}, {2});
  AdamW opt({ParamGroup({{"w", w}}, AdamWOptions(0.1)), ParamGroup({{"b", b}}, AdamWOptions(0.2))});
  opt.set_lr(0.5);
  for (const auto& group : opt.param_groups()) EXPECT_EQ(group.options().get_lr(), 0.5);
  opt.param_groups()[1].options().set_lr(0.25);
  EXPECT_EQ(opt.param_groups()[0].options().get_lr(), 0.5);
  EXPECT_EQ(dynamic_cast<const AdamWOptions&>(opt.param_groups()[1].options()).lr(), 0.25);
  // SGD: the step uses each group's lr.
  Tensor p = param({1.0}, {1}), q = param({1.0}, {1});
  SGD sgd({ParamGroup({{"p", p}}, SGDOptions(0.1)), ParamGroup({{"q", q}}, SGDOptions(0.3))});
  set_grad(p, {1.0});
  set_grad(q, {1.0});
  sgd.step();
  EXPECT_NEAR(p.at({0}), 0.9, 1e-15);
  EXPECT_NEAR(q.at({0}), 0.7, 1e-15);
}

TEST(Optimizer, RefusesBadGroupsAndOptionsByName) {
  Tensor w = param({1, 2, 3, 4}, {2, 2}), b = param({1, 2}, {2});
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message([&] { AdamW({ParamGroup({{"w", w}}), ParamGroup({{"w2", w}})}); }).find("'w2' is the same tensor as 'w'"),
            std::string::npos);
  EXPECT_NE(message([&] { AdamW({ParamGroup({{"w", w}}), ParamGroup({{"w", b}})}); }).find("'w' is given twice"),
            std::string::npos);
  EXPECT_NE(message([&] { AdamW({ParamGroup({{"w", w}}, SGDOptions(0.1))}); }).find("group 0 was given another optimizer's options"),
            std::string::npos);
  EXPECT_NE(message([&] { AdamW({{"w", w}}, AdamWOptions(-1.0)); }).find("AdamW: parameter group 0: lr must be >= 0"),
            std::string::npos);
  EXPECT_NE(message([&] { AdamW({{"w", w}}, AdamWOptions().betas({0.9, 1.0})); }).find("betas.second"), std::string::npos);
  EXPECT_NE(message([&] { SGD({{"w", w}}, SGDOptions(0.1).momentum(-0.5)); }).find("SGD: parameter group 0: momentum"),
            std::string::npos);
}

// The state is keyed by parameter name: it loads into the same parameters grouped differently, and the
// next step is then the same as the uninterrupted optimizer's.
TEST(Optimizer, StateDictLoadsAcrossGroupings) {
  auto make_params = [] { return std::make_pair(param({0.5, -1.0, 2.0, 0.1}, {2, 2}), param({0.3, -0.2}, {2})); };
  auto [w, b] = make_params();
  const auto ow = AdamWOptions(0.1).weight_decay(0.5), ob = AdamWOptions(0.1).weight_decay(0.0);
  AdamW opt({ParamGroup({{"w", w}}, ow), ParamGroup({{"b", b}}, ob)});
  for (int t = 0; t < 2; ++t) {
    set_grad(w, kGradsW[t]);
    set_grad(b, kGradsB[t]);
    opt.step();
  }
  auto [w2, b2] = make_params();
  w2.copy_(w);
  b2.copy_(b);
  AdamW resumed({ParamGroup({{"b", b2}}, ob), ParamGroup({{"w", w2}}, ow)});  // other order
  resumed.load_state_dict(opt.state_dict(), opt.steps());
  for (Optimizer* o : std::vector<Optimizer*>{&opt, &resumed}) {
    set_grad(o == &opt ? w : w2, kGradsW[2]);
    set_grad(o == &opt ? b : b2, kGradsB[2]);
    o->step();
  }
  EXPECT_EQ(w.to_vector<double>(), w2.to_vector<double>());
  EXPECT_EQ(b.to_vector<double>(), b2.to_vector<double>());
  AdamW missing({ParamGroup({{"w", w2}}, ow)});
  std::map<std::string, Tensor> state = opt.state_dict();
  state.erase("w.exp_avg_sq");
  EXPECT_THROW(missing.load_state_dict(state, 2), std::invalid_argument);
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  Tensor w = param({1.0, 2.0}, {1, 2});
  AdamW opt({{"w", w}});
  opt.step();
  EXPECT_EQ(w.to_vector<double>(), (std::vector<double>{1.0, 2.0}));
}

TEST(SGD, MomentumFollowsPyTorch) {
  Tensor p = param({1.0, -1.0}, {2});
  SGD opt({{"p", p}}, SGDOptions(0.1).momentum(0.9));
  set_grad(p, {1.0, 2.0});
  opt.step();  // buf = g
  EXPECT_NEAR(p.at({0}), 1.0 - 0.1 * 1.0, 1e-15);
  set_grad(p, {0.5, 0.0});
  opt.step();  // buf = 0.9 * 1.0 + 0.5 = 1.4 ; 0.9 * 2 + 0 = 1.8
  EXPECT_NEAR(p.at({0}), 0.9 - 0.1 * 1.4, 1e-15);
  EXPECT_NEAR(p.at({1}), -1.0 - 0.1 * 2.0 - 0.1 * 1.8, 1e-15);
}

TEST(Schedule, WarmupCosineAndFloor) {
  const double lr = 1e-3, min_lr = 1e-4;
  EXPECT_DOUBLE_EQ(cosine_lr(0, 100, 2000, lr, min_lr), lr / 101);  // not 0: no wasted step
  EXPECT_DOUBLE_EQ(cosine_lr(99, 100, 2000, lr, min_lr), lr * 100 / 101);
  EXPECT_DOUBLE_EQ(cosine_lr(100, 100, 2000, lr, min_lr), lr);
  EXPECT_NEAR(cosine_lr(1050, 100, 2000, lr, min_lr), (lr + min_lr) / 2, 1e-15);
  EXPECT_DOUBLE_EQ(cosine_lr(2000, 100, 2000, lr, min_lr), min_lr);  // ends at min_lr, not 0
  EXPECT_DOUBLE_EQ(cosine_lr(5000, 100, 2000, lr, min_lr), min_lr);
  for (int it = 100; it < 2000; ++it) EXPECT_GE(cosine_lr(it, 100, 2000, lr, min_lr), cosine_lr(it + 1, 100, 2000, lr, min_lr));
}

TEST(ClipGradNorm, ReturnsTheNormAndScalesDown) {
  Tensor a = param({0, 0}, {2}), b = param({0}, {1});
  set_grad(a, {3.0, 0.0});
  set_grad(b, {4.0});
  EXPECT_DOUBLE_EQ(clip_grad_norm({a, b}, 10.0), 5.0);  // under the limit: untouched
  EXPECT_DOUBLE_EQ(a.grad().at({0}), 3.0);
  EXPECT_DOUBLE_EQ(clip_grad_norm({a, b}, 1.0), 5.0);
  EXPECT_NEAR(a.grad().at({0}), 0.6, 1e-6);
  EXPECT_NEAR(b.grad().at({0}), 0.8, 1e-6);
  EXPECT_NEAR(clip_grad_norm({a, b}, 0.0), 1.0, 1e-6);  // 0 = no clipping, norm still reported
}

// An optimizer step writes its parameters in place: a graph built before the step, whose backward reads
// the old values (mul saves its inputs), is refused rather than differentiated at the new values.
TEST(OptimizerStep, BumpsTheVersionOfWhatItUpdates) {
  for (int which = 0; which < 2; ++which) {
    Tensor w = from_vector(std::vector<double>{1, 2}, {2}).set_requires_grad(true);
    std::unique_ptr<Optimizer> opt;
    if (which == 0)
      opt = std::make_unique<AdamW>(NamedParameters{{"w", w}});
    else
      opt = std::make_unique<SGD>(NamedParameters{{"w", w}});
    Tensor first = sum(mul(w, w)), stale = sum(mul(w, w));
    first.backward();
    const uint64_t before = w.version();
    opt->step();
    EXPECT_GT(w.version(), before) << (which == 0 ? "AdamW" : "SGD");
    EXPECT_THROW(stale.backward(), std::runtime_error) << (which == 0 ? "AdamW" : "SGD");
  }
}

// Converting the model after making its optimizer (as Module::to does, with set_data) used to fail at the
// next step with "data: tensor is float32, not float64" from the moments; now they follow the parameters.
TEST(OptimizerStep, FollowsParametersConvertedToAnotherDtype) {
  auto make = [](int which, Tensor w) -> std::unique_ptr<Optimizer> {
    if (which == 0) return std::make_unique<AdamW>(NamedParameters{{"w", w}}, AdamWOptions(0.1).betas({0.9, 0.99}).weight_decay(0.1));
    return std::make_unique<SGD>(NamedParameters{{"w", w}}, SGDOptions(0.1).momentum(0.9));
  };
  auto train_step = [](Optimizer& opt, const Tensor& w) {
    sum(mul(w, w)).backward();
    opt.step();
    opt.zero_grad();
  };
  for (int which = 0; which < 2; ++which) {
    Tensor w = from_vector(std::vector<float>{1, -2, 0.5}, {3}).set_requires_grad(true);
    auto opt = make(which, w);
    train_step(*opt, w);
    w.set_data(w.detach().to(DType::Float64));
    ASSERT_NO_THROW(train_step(*opt, w)) << which;
    for (const auto& [name, state] : opt->state_dict()) EXPECT_EQ(state.dtype(), DType::Float64) << name;

    // The same two steps in float64 throughout: equal up to the first step's float32 rounding.
    Tensor ref = from_vector(std::vector<double>{1, -2, 0.5}, {3}).set_requires_grad(true);
    auto ref_opt = make(which, ref);
    train_step(*ref_opt, ref);
    train_step(*ref_opt, ref);
    const std::vector<double> got = w.to_vector<double>(), want = ref.to_vector<double>();
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << which << " element " << i;
  }
}
