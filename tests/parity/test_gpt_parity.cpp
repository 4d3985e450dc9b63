// A 2-layer GPT in nanoGPT's architecture against PyTorch (tests/reference/fixtures_gpt.py): the weights
// come in through the nanoGPT import (names, tied lm_head), then logits, loss and the gradient of every
// parameter are compared, on both attention paths.
#include "parity.h"

#include <minitrain/core/ops.h>
#include <minitrain/train/nanogpt_io.h>

#include <gtest/gtest.h>

using namespace minitrain;
using parity::Fixture;

namespace {

nn::StateDict weights(const Fixture& f, const std::string& prefix) {
  nn::StateDict w;
  for (const std::string& name : f.names(prefix)) w[name] = f.at(prefix + name);
  return w;
}

void check_gpt(const std::string& file, nn::AttentionPath path) {
  const Fixture f(file);
  const std::string suffix = path == nn::AttentionPath::Fused ? "[fused]" : "[composed]";
  parity::Report report(f.name() + suffix, parity::limit_for(f.dtype()));
  auto model = train::gpt_from_nanogpt(weights(f, "param."), f.meta("config"), 0, f.name());
  ASSERT_EQ(model->dtype(), f.dtype());
  model->set_attention_path(path);

  Tensor logits = model->forward(f.ids("idx"));
  Tensor loss = cross_entropy(logits, f.ids("targets"));
  loss.backward();
  report.check("forward", "logits", logits, f.at("logits"));
  report.check("forward", "loss", loss, f.at("loss"));
  const nn::StateDict params = model->state_dict();  // lm_head.weight and wte share one gradient
  EXPECT_EQ(params.size(), f.names("grad.").size());
  for (const std::string& name : f.names("grad.")) {
    auto it = params.find(name);
    if (it == params.end()) {
      ADD_FAILURE() << "minitrain's GPT has no parameter '" << name << "'";
      continue;
    }
    ASSERT_TRUE(it->second.grad().defined()) << name;
    report.check(name, "grad", it->second.grad(), f.at("grad." + name));
  }
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

}  // namespace

TEST(GPTParity, Float64MatchesTorch) {
  check_gpt("gpt_f64.safetensors", nn::AttentionPath::Fused);
  check_gpt("gpt_f64.safetensors", nn::AttentionPath::Composed);
}
TEST(GPTParity, Float32MatchesTorch) {
  check_gpt("gpt_f32.safetensors", nn::AttentionPath::Fused);
  check_gpt("gpt_f32.safetensors", nn::AttentionPath::Composed);
}
