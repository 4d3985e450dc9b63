// AdamW with nanoGPT's loop pieces against torch.optim.AdamW (tests/reference/fixtures_adamw.py): ten
// steps on a decayed matrix `w` and an undecayed vector `b`, with the fixture's gradients, the warmup +
// cosine schedule and global grad-norm clipping; parameters after every step and the final moments.
#include "parity.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/train/optimizer.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace minitrain;
using parity::Fixture;

namespace {

void check_adamw(const std::string& file) {
  const Fixture f(file);
  parity::Report report(f.name(), parity::limit_for(f.dtype()));
  const nlohmann::json h = nlohmann::json::parse(f.meta("hparams"));
  Tensor w = f.at("init.w").clone().set_requires_grad(true);
  Tensor b = f.at("init.b").clone().set_requires_grad(true);
  const auto o = train::AdamWOptions(h["learning_rate"].get<double>())
                     .betas({h["beta1"].get<double>(), h["beta2"].get<double>()})
                     .eps(h["eps"].get<double>())
                     .weight_decay(h["weight_decay"].get<double>());
  train::AdamW opt({{"w", w}, {"b", b}}, o);
  ASSERT_TRUE(train::default_decay_rule("w", w));
  ASSERT_FALSE(train::default_decay_rule("b", b));

  const int64_t steps = h["steps"];
  std::vector<double> lrs, norms;
  for (int64_t step = 0; step < steps; ++step) {
    const std::string k = "step." + std::to_string(step);
    lrs.push_back(train::cosine_lr(step, h["warmup_iters"], h["lr_decay_iters"], h["learning_rate"], h["min_lr"]));
    opt.set_lr(lrs.back());
    opt.zero_grad();
    // d/dp sum(p ⊙ G) = G exactly: the fixture's gradient, delivered through autograd.
    add(sum(mul(w, f.at(k + ".grad.w"))), sum(mul(b, f.at(k + ".grad.b")))).backward();
    norms.push_back(train::clip_grad_norm({w, b}, h["grad_clip"]));
    opt.step();
    report.check(k, "w", w, f.at(k + ".w"));
    report.check(k, "b", b, f.at(k + ".b"));
  }
  auto as_tensor = [&](const std::vector<double>& v) { return from_vector(v, {steps}).to(f.dtype()); };
  report.check("schedule", "lr", as_tensor(lrs), f.at("lr"));
  report.check("clipping", "grad_norm", as_tensor(norms), f.at("grad_norm"));
  const auto state = opt.state_dict();
  for (const char* p : {"w", "b"}) {
    report.check("moments", std::string("exp_avg.") + p, state.at(std::string(p) + ".exp_avg"), f.at(std::string("final.exp_avg.") + p));
    report.check("moments", std::string("exp_avg_sq.") + p, state.at(std::string(p) + ".exp_avg_sq"),
                 f.at(std::string("final.exp_avg_sq.") + p));
  }
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

}  // namespace

TEST(AdamWParity, Float64MatchesTorch) { check_adamw("adamw_f64.safetensors"); }
TEST(AdamWParity, Float32MatchesTorch) { check_adamw("adamw_f32.safetensors"); }
