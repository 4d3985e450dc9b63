// Today's decoder in minitrain's GPT against a plain PyTorch decoder (tests/reference/fixtures_decoder.py):
// RMSNorm, rotary positions in both layouts, SwiGLU and ReLU² MLPs, grouped- and multi-query attention,
// QK-norm with a free scale, logit soft-capping, tied and untied heads. The config comes from the fixture's
// checkpoint JSON, the weights through load_state_dict; logits, loss and every gradient are compared on both
// attention paths.
#include "parity.h"

#include <minitrain/core/ops.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/gpt_config_io.h>

#include <gtest/gtest.h>

using namespace minitrain;
using parity::Fixture;

namespace {

void check_decoder(const std::string& file, const std::string& model_name, nn::AttentionPath path) {
  const Fixture f(file);
  const std::string suffix = path == nn::AttentionPath::Fused ? "[fused]" : "[composed]";
  parity::Report report(f.name() + ":" + model_name + suffix, parity::limit_for(f.dtype()));
  const nn::GPTConfig config = train::gpt_config_from_json(f.meta(model_name + ".config"));
  nn::StateDict weights;
  for (const std::string& name : f.names(model_name + ".param.")) weights[name] = f.at(model_name + ".param." + name);
  if (config.tie_embeddings) weights["lm_head.weight"] = weights.at("transformer.wte.weight");
  train::check_config_matches_tensors(config, weights, f.name());
  nn::GPT model(config);
  model.to(f.dtype());
  model.load_state_dict(weights, /*strict=*/true);
  model.set_attention_path(path);

  const Tensor logits = model.forward(f.at(model_name + ".idx"));
  const Tensor loss = cross_entropy(logits, f.at(model_name + ".targets"));
  loss.backward();
  report.check("forward", "logits", logits, f.at(model_name + ".logits"));
  report.check("forward", "loss", loss, f.at(model_name + ".loss"));
  const nn::StateDict params = model.state_dict();
  const std::vector<std::string> grads = f.names(model_name + ".grad.");
  EXPECT_EQ(grads.size(), model.named_parameters().size());
  for (const std::string& name : grads) {
    ASSERT_TRUE(params.count(name)) << "minitrain's GPT has no parameter '" << name << "'";
    ASSERT_TRUE(params.at(name).grad().defined()) << name;
    report.check(name, "grad", params.at(name).grad(), f.at(model_name + ".grad." + name));
  }
  for (const std::string& failure : report.failures()) ADD_FAILURE() << failure;
}

}  // namespace

TEST(DecoderParity, LlamaStyleFloat64) {
  for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed}) check_decoder("decoder_f64.safetensors", "llama", path);
}
TEST(DecoderParity, LlamaStyleFloat32) {
  for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed}) check_decoder("decoder_f32.safetensors", "llama", path);
}
TEST(DecoderParity, QkNormSoftcapFloat64) {
  for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed})
    check_decoder("decoder_f64.safetensors", "qk_softcap", path);
}
TEST(DecoderParity, QkNormSoftcapFloat32) {
  for (auto path : {nn::AttentionPath::Fused, nn::AttentionPath::Composed})
    check_decoder("decoder_f32.safetensors", "qk_softcap", path);
}
