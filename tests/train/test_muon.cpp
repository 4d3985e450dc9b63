// Muon and MuonWithAdamW: what Newton-Schulz does to the singular values, the refusals, the state round
// trip, the combined optimizer against its two halves, the schedule's scale_lr and split_for_muon on a GPT.
// The step's arithmetic against torch.optim.Muon is tests/parity/test_muon_parity.cpp.
#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/core/random.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/optimizer.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

using namespace minitrain;
using namespace minitrain::train;

namespace {

Tensor random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  Generator gen(seed);
  return randn({rows, cols}, gen, DType::Float64);
}

// Eigenvalues of a symmetric matrix by cyclic Jacobi rotations (written out here, independent of the
// library): the singular values of X are the square roots of those of XᵀX.
std::vector<double> symmetric_eigenvalues(const Tensor& s) {
  const auto n = static_cast<std::size_t>(s.size(0));
  std::vector<double> a = s.to_vector<double>();
  auto at = [&](std::size_t i, std::size_t j) -> double& { return a[i * n + j]; };
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = i + 1; j < n; ++j) off += at(i, j) * at(i, j);
    if (off < 1e-28) break;
    for (std::size_t p = 0; p < n; ++p)
      for (std::size_t q = p + 1; q < n; ++q) {
        if (at(p, q) == 0) continue;
        const double theta = (at(q, q) - at(p, p)) / (2 * at(p, q));
        const double t = (theta >= 0 ? 1 : -1) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), sn = t * c;
        for (std::size_t k = 0; k < n; ++k) {  // A <- A J (columns p, q)
          const double akp = at(k, p), akq = at(k, q);
          at(k, p) = c * akp - sn * akq;
          at(k, q) = sn * akp + c * akq;
        }
        for (std::size_t k = 0; k < n; ++k) {  // A <- Jᵀ A (rows p, q)
          const double apk = at(p, k), aqk = at(q, k);
          at(p, k) = c * apk - sn * aqk;
          at(q, k) = sn * apk + c * aqk;
        }
      }
  }
  std::vector<double> eig(n);
  for (std::size_t i = 0; i < n; ++i) eig[i] = at(i, i);
  std::sort(eig.begin(), eig.end());
  return eig;
}

std::vector<double> singular_values(const Tensor& x) {
  const Tensor gram = x.size(0) >= x.size(1) ? matmul(x.transpose(0, 1), x) : matmul(x, x.transpose(0, 1));
  std::vector<double> s = symmetric_eigenvalues(gram);
  for (double& v : s) v = std::sqrt(std::max(v, 0.0));
  return s;
}

void set_grad(Tensor& p, const Tensor& g) {
  p.zero_grad();
  sum(mul(p, g)).backward();  // d/dp sum(p * g) = g
}

}  // namespace

TEST(NewtonSchulz, DefaultCoefficientsBringEverySingularValueNearOne) {
  // Singular values spread over more than a factor 30: the input is far from orthogonal. (Five steps lift a singular
  // value by at most 3.4445^5 ≈ 500 from its start, σ/‖m‖_F: those below about 1/500 of the Frobenius norm
  // stay below 1; gradients' spectra are not that wide in practice.)
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{16, 6}, {6, 16}, {8, 8}}) {
    Tensor m = random_matrix(rows, cols, 7);
    Tensor scales = from_vector(std::vector<double>{0.1, 0.2, 0.5, 1, 2, 3, 5, 10}, {8}).narrow(0, 0, std::min(rows, cols));
    m = rows >= cols ? mul(m, scales) : mul(m, scales.reshape({std::min(rows, cols), 1}));
    const std::vector<double> before = singular_values(m);
    ASSERT_GT(before.back() / before.front(), 30.0);
    const Tensor o = newton_schulz(m, {3.4445, -4.775, 2.0315}, 5, 1e-7);
    ASSERT_EQ(o.shape(), m.shape());
    // Keller Jordan's coefficients trade exactness for speed: about U(0.5, 1.5) rather than 1 (torch's
    // docstring); here 0.65 to 1.13.
    for (double s : singular_values(o)) {
      EXPECT_GT(s, 0.5) << rows << "x" << cols;
      EXPECT_LT(s, 1.5) << rows << "x" << cols;
    }
  }
}

TEST(NewtonSchulz, CubicIterationConvergesToThePolarFactor) {
  // X <- 1.5X - 0.5XXᵀX converges to UVᵀ for singular values in (0, √3): the result is orthogonal and
  // Oᵀm = VΣVᵀ is symmetric positive definite.
  const Tensor m = random_matrix(9, 4, 3);
  const Tensor o = newton_schulz(m, {1.5, -0.5, 0.0}, 60, 1e-7);
  const std::vector<double> otO = matmul(o.transpose(0, 1), o).to_vector<double>();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(otO[i * 4 + j], i == j ? 1.0 : 0.0, 1e-10) << i << "," << j;
  const Tensor p = matmul(o.transpose(0, 1), m);
  const std::vector<double> pv = p.to_vector<double>();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(pv[i * 4 + j], pv[j * 4 + i], 1e-10);
  for (double e : symmetric_eigenvalues(p)) EXPECT_GT(e, 0.0);
}

TEST(NewtonSchulz, RefusesWhatIsNotAFloatMatrix) {
  EXPECT_THROW(newton_schulz(zeros({2, 3, 4}, DType::Float64), {3.4445, -4.775, 2.0315}, 5, 1e-7), std::invalid_argument);
  EXPECT_THROW(newton_schulz(zeros({2, 3}, DType::Int64), {3.4445, -4.775, 2.0315}, 5, 1e-7), std::invalid_argument);
  // A zero matrix stays zero (the norm is clamped at eps, nothing is divided by zero).
  for (double v : newton_schulz(zeros({2, 3}, DType::Float64), {3.4445, -4.775, 2.0315}, 5, 1e-7).to_vector<double>())
    EXPECT_EQ(v, 0.0);
}

TEST(Muon, AdjustedLearningRateByShape) {
  EXPECT_DOUBLE_EQ(muon_adjusted_lr(0.02, MuonLrAdjustment::Original, 12, 3), 0.02 * 2);
  EXPECT_DOUBLE_EQ(muon_adjusted_lr(0.02, MuonLrAdjustment::Original, 3, 12), 0.02);
  EXPECT_DOUBLE_EQ(muon_adjusted_lr(0.02, MuonLrAdjustment::MatchRmsAdamW, 3, 16), 0.02 * 0.2 * 4);
  EXPECT_DOUBLE_EQ(muon_adjusted_lr(0.02, MuonLrAdjustment::SpectralUnclamped, 3, 12), 0.02 * 0.5);
}

TEST(Muon, OptionsHaveTorchsDefaults) {
  const MuonOptions o;
  EXPECT_EQ(o.lr(), 1e-3);
  EXPECT_EQ(o.momentum(), 0.95);
  EXPECT_TRUE(o.nesterov());
  EXPECT_EQ(o.weight_decay(), 0.1);
  EXPECT_EQ(o.eps(), 1e-7);
  EXPECT_EQ(o.ns_steps(), 5);
  EXPECT_EQ(o.ns_coefficients(), (MuonOptions::Coefficients{3.4445, -4.775, 2.0315}));
  EXPECT_EQ(o.adjust_lr_fn(), MuonLrAdjustment::Original);
}

TEST(Muon, RefusesParametersThatAreNotMatricesNamingThem) {
  Tensor w = zeros({3, 4}).set_requires_grad(true), b = zeros({4}).set_requires_grad(true);
  try {
    Muon opt({{"fc.weight", w}, {"fc.bias", b}});
    FAIL() << "a vector was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "Muon: parameter 'fc.bias' has shape [4]; Muon takes matrices (2-D) only: give it to "
                           "AdamW (split_for_muon, MuonWithAdamW)");
  }
  Tensor conv = zeros({2, 3, 4}).set_requires_grad(true);
  EXPECT_THROW(Muon({{"conv", conv}}), std::invalid_argument);
  EXPECT_THROW(Muon({{"w", w}}, MuonOptions().momentum(1.0)), std::invalid_argument);
  EXPECT_THROW(Muon({{"w", w}}, MuonOptions().ns_steps(100)), std::invalid_argument);
  EXPECT_THROW(Muon({{"w", w}}, MuonOptions(-1.0)), std::invalid_argument);
}

TEST(Muon, StateDictRoundTripContinuesBitForBit) {
  Tensor a = random_matrix(6, 4, 1).set_requires_grad(true), b = a.detach().clone().set_requires_grad(true);
  Muon first({{"w", a}}, MuonOptions(0.02));
  for (uint64_t step = 0; step < 3; ++step) {
    set_grad(a, random_matrix(6, 4, 10 + step));
    first.step();
  }
  // A second optimizer on a copy of the weights, from the first one's state, takes the same next steps.
  b.set_data(a.detach().clone());
  Muon second({{"w", b}}, MuonOptions(0.02));
  const auto state = first.state_dict();
  ASSERT_EQ(state.size(), 1u);
  ASSERT_TRUE(state.count("w.momentum_buffer"));
  second.load_state_dict(state, first.steps());
  EXPECT_EQ(second.steps(), 3);
  for (uint64_t step = 3; step < 5; ++step) {
    set_grad(a, random_matrix(6, 4, 10 + step));
    set_grad(b, random_matrix(6, 4, 10 + step));
    first.step();
    second.step();
  }
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
  // Without the state, the continuation differs: the buffer matters.
  Tensor c = random_matrix(6, 4, 1).set_requires_grad(true);
  Muon fresh({{"w", c}}, MuonOptions(0.02));
  EXPECT_THROW(fresh.load_state_dict({}, 3), std::invalid_argument);
}

TEST(Muon, SkipsParametersWithoutGradientAndBumpsVersions) {
  Tensor w = random_matrix(3, 3, 2).set_requires_grad(true), v = random_matrix(3, 3, 4).set_requires_grad(true);
  const std::vector<double> v0 = v.to_vector<double>();
  Muon opt({{"w", w}, {"v", v}});
  Tensor stale = sum(mul(w, w));
  sum(mul(w, w)).backward();
  const uint64_t before = w.version();
  opt.step();
  EXPECT_GT(w.version(), before);
  EXPECT_THROW(stale.backward(), std::runtime_error);
  EXPECT_EQ(v.to_vector<double>(), v0);
}

TEST(MuonWithAdamW, StepsEachGroupAsItsOwnOptimizerWould) {
  Tensor w1 = random_matrix(5, 3, 1).set_requires_grad(true), b1 = zeros({3}, DType::Float64).set_requires_grad(true);
  Tensor w2 = w1.detach().clone().set_requires_grad(true), b2 = b1.detach().clone().set_requires_grad(true);
  const auto muon = MuonOptions(0.02).weight_decay(0.01);
  const auto adamw = AdamWOptions(1e-3).betas({0.9, 0.99}).weight_decay(0.1);
  MuonWithAdamW both({ParamGroup({{"w", w1}}, muon), ParamGroup({{"b", b1}}, adamw)});
  Muon alone_muon({{"w", w2}}, muon);
  AdamW alone_adamw({{"b", b2}}, adamw);
  for (uint64_t step = 0; step < 4; ++step) {
    const Tensor gw = random_matrix(5, 3, 20 + step), gb = random_matrix(1, 3, 40 + step).reshape({3});
    // The schedule: both groups scaled by the same factor; the AdamW group, made with the peak, exactly.
    const double lr = 1e-3 * (1 - 0.2 * static_cast<double>(step));
    both.scale_lr(lr, 1e-3);
    alone_muon.set_lr(0.02 / 1e-3 * lr);
    alone_adamw.set_lr(lr);
    EXPECT_EQ(both.param_groups()[1].options().get_lr(), lr);
    set_grad(w1, gw), set_grad(w2, gw), set_grad(b1, gb), set_grad(b2, gb);
    both.step();
    alone_muon.step();
    alone_adamw.step();
    EXPECT_EQ(w1.to_vector<double>(), w2.to_vector<double>()) << step;
    EXPECT_EQ(b1.to_vector<double>(), b2.to_vector<double>()) << step;
  }
  const auto state = both.state_dict();
  EXPECT_EQ(state.size(), 3u);  // w.momentum_buffer, b.exp_avg, b.exp_avg_sq
  EXPECT_EQ(state.at("w.momentum_buffer").to_vector<double>(), alone_muon.state_dict().at("w.momentum_buffer").to_vector<double>());
  EXPECT_EQ(state.at("b.exp_avg_sq").to_vector<double>(), alone_adamw.state_dict().at("b.exp_avg_sq").to_vector<double>());
  EXPECT_EQ(both.steps(), 4);
}

TEST(MuonWithAdamW, StateDictRoundTripContinuesBitForBit) {
  Tensor w1 = random_matrix(4, 6, 1).set_requires_grad(true), b1 = zeros({6}, DType::Float64).set_requires_grad(true);
  auto make = [](Tensor& w, Tensor& b) {
    return std::make_unique<MuonWithAdamW>(
        std::vector<ParamGroup>{ParamGroup({{"w", w}}, MuonOptions(0.02)), ParamGroup({{"b", b}}, AdamWOptions(1e-3))});
  };
  auto first = make(w1, b1);
  auto grads = [](uint64_t step) { return std::pair{random_matrix(4, 6, 50 + step), random_matrix(1, 6, 70 + step).reshape({6})}; };
  for (uint64_t step = 0; step < 3; ++step) {
    auto [gw, gb] = grads(step);
    set_grad(w1, gw), set_grad(b1, gb);
    first->step();
  }
  Tensor w2 = w1.detach().clone().set_requires_grad(true), b2 = b1.detach().clone().set_requires_grad(true);
  auto second = make(w2, b2);
  second->load_state_dict(first->state_dict(), first->steps());
  for (uint64_t step = 3; step < 6; ++step) {
    auto [gw, gb] = grads(step);
    set_grad(w1, gw), set_grad(b1, gb), set_grad(w2, gw), set_grad(b2, gb);
    first->step();
    second->step();
  }
  EXPECT_EQ(w1.to_vector<double>(), w2.to_vector<double>());
  EXPECT_EQ(b1.to_vector<double>(), b2.to_vector<double>());  // AdamW's bias correction saw the same step count
}

TEST(MuonWithAdamW, RefusesGroupsWithoutMuonOrAdamWOptions) {
  Tensor w = zeros({3, 4}).set_requires_grad(true), b = zeros({4}).set_requires_grad(true);
  EXPECT_THROW(MuonWithAdamW({ParamGroup({{"w", w}}), ParamGroup({{"b", b}}, AdamWOptions())}), std::invalid_argument);
  EXPECT_THROW(MuonWithAdamW({ParamGroup({{"w", w}}, SGDOptions())}), std::invalid_argument);
  // A vector in the Muon group: Muon's refusal, naming it.
  try {
    MuonWithAdamW opt({ParamGroup({{"w", w}, {"b", b}}, MuonOptions())});
    FAIL() << "a vector was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'b' has shape [4]"), std::string::npos) << e.what();
  }
}

TEST(Optimizer, ScaleLrKeepsTheGroupsRatiosAndGivesThePeakGroupTheLrExactly) {
  Tensor w = zeros({2, 2}).set_requires_grad(true), b = zeros({2}).set_requires_grad(true);
  AdamW opt({ParamGroup({{"w", w}}, AdamWOptions(3e-3)), ParamGroup({{"b", b}}, AdamWOptions(6e-2))});
  for (double lr : {3e-3 * 0.123456789, 1e-4, 0.0, 3e-3}) {
    opt.scale_lr(lr, 3e-3);
    EXPECT_EQ(opt.param_groups()[0].options().get_lr(), lr);
    EXPECT_DOUBLE_EQ(opt.param_groups()[1].options().get_lr(), 20 * lr);
  }
  EXPECT_EQ(opt.initial_lr(1), 6e-2);  // set by construction, not by the schedule
  opt.scale_lr(0.5, 0.0);              // no peak: every group gets the lr
  EXPECT_EQ(opt.param_groups()[1].options().get_lr(), 0.5);
}

TEST(SplitForMuon, HiddenMatricesOfTheGPTAndTheRest) {
  nn::GPTConfig c;
  c.vocab_size = 11, c.block_size = 8, c.n_layer = 2, c.n_head = 2, c.n_embd = 8, c.bias = true;
  nn::GPT model(c);
  auto [hidden, rest] = split_for_muon(model.named_parameters());
  std::vector<std::string> names;
  for (const auto& [name, p] : hidden) names.push_back(name);
  // Per block: the attention's qkv and output projections, the MLP's two layers.
  EXPECT_EQ(names, (std::vector<std::string>{"transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
                                             "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight",
                                             "transformer.h.1.attn.c_attn.weight", "transformer.h.1.attn.c_proj.weight",
                                             "transformer.h.1.mlp.c_fc.weight", "transformer.h.1.mlp.c_proj.weight"}));
  bool has_wte = false, has_wpe = false;
  for (const auto& [name, p] : rest) {
    has_wte |= name == "transformer.wte.weight";
    has_wpe |= name == "transformer.wpe.weight";
    EXPECT_TRUE(p.dim() != 2 || name == "transformer.wte.weight" || name == "transformer.wpe.weight" ||
                name == "lm_head.weight")
        << name;
  }
  EXPECT_TRUE(has_wte && has_wpe);
  EXPECT_EQ(hidden.size() + rest.size(), model.named_parameters().size());
  // The whole model in one optimizer: Muon takes every hidden matrix, AdamW the rest.
  auto opt = make_muon_with_adamw(model.named_parameters(), MuonOptions(0.02), AdamWOptions(1e-3));
  EXPECT_EQ(opt->param_groups()[0].params().size(), 8u);
  EXPECT_EQ(opt->parameters().size(), model.named_parameters().size());
}
