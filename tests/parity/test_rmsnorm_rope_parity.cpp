// RMSNorm and rotary position embeddings against torch, from tests/reference/fixtures/rmsnorm_rope_*.safetensors
// (written by tests/reference/fixtures_rmsnorm_rope.py under /opt/torch-current; torch and transformers
// versions in the metadata):
// - nn::RMSNorm (through the fused rms_norm) against torch.nn.RMSNorm, with and without a weight, eps given
//   and eps None (torch's per-dtype default), output and gradients of input and weight;
// - rotary_embedding against transformers' apply_rotary_pos_emb (layout Halves) and Meta's complex-number
//   apply_rotary_emb (Interleaved), q and k, outputs and gradients, given the fixture's tables; the same
//   through nn::RotaryEmbedding, which builds its own tables; and rotary_tables against the fixture's tables.
#include "parity.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/nn/layers.h>
#include <minitrain/nn/rotary.h>

#include <gtest/gtest.h>

#include <functional>
#include <iostream>
#include <optional>

using namespace minitrain;
using parity::Fixture;

namespace {

void check_rms_case(const Fixture& f, const std::string& name, parity::Report& report) {
  const Tensor x = f.at(name + ".in").clone().set_requires_grad(true);
  const std::string eps_text = f.meta(name + ".eps");
  const std::optional<double> eps = eps_text == "none" ? std::nullopt : std::optional<double>(std::stod(eps_text));
  const bool affine = f.meta(name + ".affine") == "1";
  nn::RMSNorm norm(x.size(-1), eps, affine);
  norm.to(x.dtype());
  if (affine) {
    NoGradGuard no_grad;
    norm.weight.copy_(f.at(name + ".weight"));
  }
  Tensor y = norm(x);
  y.backward(f.at(name + ".grad_out"));
  report.check(name, "out", y, f.at(name + ".out"));
  report.check(name, "grad_in", x.grad(), f.at(name + ".grad_in"));
  if (affine) report.check(name, "grad_weight", norm.weight.grad(), f.at(name + ".grad_weight"));
  report.end_item();
}

RotaryLayout layout_of(const Fixture& f, const std::string& name) {
  const std::string layout = f.meta(name + ".layout");
  EXPECT_TRUE(layout == "halves" || layout == "interleaved") << name << ": layout " << layout;
  return layout == "halves" ? RotaryLayout::Halves : RotaryLayout::Interleaved;
}

// q and k through `rotate`, backward with the fixture's upstream gradients, compared with torch's.
void check_rope_outputs(const Fixture& f, const std::string& name, const std::string& item,
                        const std::function<Tensor(const Tensor&)>& rotate, parity::Report& report) {
  for (const char* part : {"q", "k"}) {
    const std::string p(part);
    const Tensor x = f.at(name + "." + p).clone().set_requires_grad(true);
    Tensor y = rotate(x);
    y.backward(f.at(name + "." + p + "_grad_out"));
    report.check(item, p + "_out", y, f.at(name + "." + p + "_out"));
    report.check(item, p + "_grad", x.grad(), f.at(name + "." + p + "_grad"));
  }
  report.end_item();
}

void check_rope_case(const Fixture& f, const std::string& name, parity::Report& report) {
  const RotaryLayout layout = layout_of(f, name);
  const int64_t seq_dim = std::stoll(f.meta(name + ".seq_dim"));
  const int64_t start = std::stoll(f.meta(name + ".start"));
  const double theta = std::stod(f.meta(name + ".theta"));
  const Tensor cos = f.at(name + ".cos"), sin = f.at(name + ".sin");
  const int64_t head_dim = f.at(name + ".q").size(-1);
  // The kernel on torch's tables.
  check_rope_outputs(f, name, name + " op", [&](const Tensor& x) { return rotary_embedding(x, cos, sin, layout, seq_dim); },
                     report);
  // The module on its own tables; and those tables.
  nn::RotaryEmbedding rope(head_dim, theta, layout);
  check_rope_outputs(f, name, name + " module", [&](const Tensor& x) { return rope(x, start, seq_dim); }, report);
  const auto [c, s] = rotary_tables(head_dim, start, cos.size(0), theta, cos.dtype());
  report.check(name + " tables", "cos", c, cos);
  report.check(name + " tables", "sin", s, sin);
  report.end_item();
}

void check_all(const std::string& file) {
  const Fixture f(file);
  std::cout << "[parity] " << f.name() << " written by torch " << f.meta("torch") << ", transformers "
            << f.meta("transformers") << "\n";
  parity::Report report(f.name(), parity::limit_for(f.dtype()));
  int rms = 0, eps_none = 0, halves = 0, interleaved = 0;
  for (const std::string& name : f.names("rms_", ".out")) {
    SCOPED_TRACE(name);
    check_rms_case(f, "rms_" + name, report);
    ++rms;
    eps_none += f.meta("rms_" + name + ".eps") == "none";
  }
  for (const std::string& name : f.names("rope_", ".q_out")) {
    SCOPED_TRACE(name);
    check_rope_case(f, "rope_" + name, report);
    (layout_of(f, "rope_" + name) == RotaryLayout::Halves ? halves : interleaved) += 1;
  }
  EXPECT_GE(rms, 6);
  EXPECT_GE(eps_none, 3) << "the fixture must exercise torch's default eps";
  EXPECT_GE(halves, 4);
  EXPECT_GE(interleaved, 4);
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

}  // namespace

TEST(RmsNormRopeParity, Float64MatchesTorch) { check_all("rmsnorm_rope_f64.safetensors"); }
TEST(RmsNormRopeParity, Float32MatchesTorch) { check_all("rmsnorm_rope_f32.safetensors"); }
