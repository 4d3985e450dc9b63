// Optimizers, schedule and clipping against formulas written out independently here.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/train/optimizer.h>

#include <gtest/gtest.h>

#include <cmath>
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

TEST(AdamW, MatchesTheAlgorithmStepByStepWithDecayOnMatricesOnly) {
  Tensor w = param({0.5, -1.0, 2.0, 0.1}, {2, 2});  // dim 2: decayed
  Tensor b = param({0.3, -0.2}, {2});               // dim 1: not decayed
  AdamWOptions o{0.1, 0.9, 0.95, 1e-8, 0.5};
  AdamW opt({{"w", w}, {"b", b}}, o);
  std::vector<double> ref_w = w.to_vector<double>(), ref_b = b.to_vector<double>();
  std::vector<double> mw(4, 0), vw(4, 0), mb(2, 0), vb(2, 0);
  const std::vector<std::vector<double>> grads_w{{0.1, -0.2, 0.3, 0.0}, {-0.5, 0.4, 0.1, 1.0}, {0.2, 0.2, -0.3, 0.5}};
  const std::vector<std::vector<double>> grads_b{{1.0, -1.0}, {0.5, 0.25}, {-0.1, 0.3}};
  for (int t = 1; t <= 3; ++t) {
    set_grad(w, grads_w[t - 1]);
    set_grad(b, grads_b[t - 1]);
    opt.step();
    auto update = [&](std::vector<double>& p, std::vector<double>& m, std::vector<double>& v,
                      const std::vector<double>& g, bool decay) {
      for (std::size_t i = 0; i < p.size(); ++i) {
        if (decay) p[i] -= o.lr * o.weight_decay * p[i];
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[i];
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * g[i] * g[i];
        const double mhat = m[i] / (1 - std::pow(o.beta1, t)), vhat = v[i] / (1 - std::pow(o.beta2, t));
        p[i] -= o.lr * mhat / (std::sqrt(vhat) + o.eps);
      }
    };
    update(ref_w, mw, vw, grads_w[t - 1], true);
    update(ref_b, mb, vb, grads_b[t - 1], false);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(w.to_vector<double>()[i], ref_w[i], 1e-12) << "step " << t;
    for (int i = 0; i < 2; ++i) EXPECT_NEAR(b.to_vector<double>()[i], ref_b[i], 1e-12) << "step " << t;
  }
  EXPECT_EQ(opt.steps(), 3);
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  Tensor w = param({1.0, 2.0}, {1, 2});
  AdamW opt({{"w", w}}, {});
  opt.step();
  EXPECT_EQ(w.to_vector<double>(), (std::vector<double>{1.0, 2.0}));
}

TEST(SGD, MomentumFollowsPyTorch) {
  Tensor p = param({1.0, -1.0}, {2});
  SGD opt({{"p", p}}, {0.1, 0.9, 0.0});
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
      opt = std::make_unique<AdamW>(NamedParameters{{"w", w}}, AdamWOptions{});
    else
      opt = std::make_unique<SGD>(NamedParameters{{"w", w}}, SGDOptions{});
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
    if (which == 0) return std::make_unique<AdamW>(NamedParameters{{"w", w}}, AdamWOptions{0.1, 0.9, 0.99, 1e-8, 0.1});
    return std::make_unique<SGD>(NamedParameters{{"w", w}}, SGDOptions{0.1, 0.9, 0.0});
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
