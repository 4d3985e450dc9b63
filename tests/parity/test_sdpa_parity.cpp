// Attention with masks against torch >= 2.0: scaled_dot_product_attention (fused kernel and composed ops)
// against F.scaled_dot_product_attention, and MultiHeadAttention's cross-attention with a key padding mask
// and an attn_mask against torch.nn.MultiheadAttention, from tests/reference/fixtures/sdpa_*.safetensors
// (written by tests/reference/fixtures_sdpa.py under /opt/torch-current; the torch version is in the
// file's metadata). Fully masked query rows are zeros in the fixture (see the script) and must be here.
#include "parity.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>
#include <minitrain/nn/attention.h>

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

using namespace minitrain;
using parity::Fixture;

namespace {

bool all_finite(const Tensor& t) {
  for (double v : t.to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}

void check_sdpa_case(const Fixture& f, const std::string& name, bool fused, parity::Report& report) {
  std::vector<Tensor> in;
  for (int k = 0; f.has(name + ".in." + std::to_string(k)); ++k)
    in.push_back(f.at(name + ".in." + std::to_string(k)).clone().set_requires_grad(true));
  ASSERT_GE(in.size(), 3u);
  const Tensor mask = in.size() == 4 ? in[3] : f.has(name + ".mask") ? f.at(name + ".mask") : Tensor();
  const double scale = std::stod(f.meta(name + ".scale"));
  const bool causal = f.meta(name + ".causal") == "1";
  Tensor out = fused ? scaled_dot_product_attention(in[0], in[1], in[2], mask, scale, causal)
                     : nn::composed_attention(in[0], in[1], in[2], mask, scale, causal);
  out.backward(f.at(name + ".grad_out"));
  const std::string item = name + (fused ? " fused" : " composed");
  EXPECT_TRUE(all_finite(out)) << item;
  report.check(item, "out", out, f.at(name + ".out"));
  for (std::size_t k = 0; k < in.size(); ++k) {
    const std::string key = "grad_in." + std::to_string(k);
    const Tensor grad = in[k].grad().defined() ? in[k].grad() : zeros_like(in[k]);
    EXPECT_TRUE(all_finite(grad)) << item << " " << key;
    report.check(item, key, grad, f.at(name + "." + key));
  }
  report.end_item();
}

void check_mha_case(const Fixture& f, const std::string& name, nn::AttentionPath path, parity::Report& report) {
  const Tensor query = f.at(name + ".query").clone().set_requires_grad(true);
  const Tensor memory = f.at(name + ".memory").clone().set_requires_grad(true);
  nn::AttentionOptions o;
  o.n_embd = query.size(2);
  o.n_head = std::stoll(f.meta(name + ".n_head"));
  nn::MultiHeadAttention m(o);
  m.path = path;
  m.to(query.dtype());
  {
    NoGradGuard no_grad;
    for (auto& [pname, p] : m.named_parameters()) p.copy_(f.at(name + ".param." + pname));
  }
  nn::AttentionMasks masks;
  masks.key_padding_mask = f.at(name + ".key_padding_mask");  // true = padding, as torch's
  masks.attn_mask = f.at(name + ".attn_mask");                // true = take part, as SDPA's
  Tensor out = m.forward(query, memory, memory, masks);
  out.backward(f.at(name + ".grad_out"));
  const std::string item = name + (path == nn::AttentionPath::Fused ? " fused" : " composed");
  report.check(item, "out", out, f.at(name + ".out"));
  report.check(item, "grad.query", query.grad(), f.at(name + ".grad.query"));
  report.check(item, "grad.memory", memory.grad(), f.at(name + ".grad.memory"));
  for (auto& [pname, p] : m.named_parameters()) report.check(item, "grad." + pname, p.grad(), f.at(name + ".grad.param." + pname));
  report.end_item();
}

void check_all(const std::string& file) {
  const Fixture f(file);
  std::cout << "[parity] " << f.name() << " written by torch " << f.meta("torch") << "\n";
  parity::Report report(f.name(), parity::limit_for(f.dtype()));
  const std::vector<std::string> cases = f.names("", ".out");
  int sdpa = 0, mha = 0, dead = 0;
  for (const std::string& name : cases) {
    SCOPED_TRACE(name);
    if (name.rfind("mha_", 0) == 0) {
      for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed}) check_mha_case(f, name, path, report);
      ++mha;
      continue;
    }
    check_sdpa_case(f, name, true, report);
    check_sdpa_case(f, name, false, report);
    dead += std::stoi(f.meta(name + ".dead_rows"));
    ++sdpa;
  }
  EXPECT_GE(sdpa, 10);
  EXPECT_GE(mha, 1);
  EXPECT_GT(dead, 0) << "the fixture must contain fully masked rows";
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

}  // namespace

TEST(SdpaParity, Float64MatchesTorch) { check_all("sdpa_f64.safetensors"); }
TEST(SdpaParity, Float32MatchesTorch) { check_all("sdpa_f32.safetensors"); }
