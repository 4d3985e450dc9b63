// The GPT architecture flags shared by the example programs: a preset (nanoGPT's 2022 decoder or a
// Llama-style one) and each part on its own, a flag given on the command line overriding the preset.
//
//   train_gpt --preset llama --qk_norm true --n_kv_head 2
//
// Flags are parsed into optionals, so after parsing it is known which ones the user gave; apply() builds
// the config from the preset and then those.
#pragma once

#include "cli_checks.h"

#include <minitrain/nn/gpt.h>

#include <CLI/CLI.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace minitrain::examples {

class ArchitectureFlags {
 public:
  void add_to(CLI::App& app) {
    app.add_option("--preset", preset_, "architecture: nanogpt (LayerNorm, learned positions, GELU, tied head) or "
                                        "llama (RMSNorm, rotary positions, SwiGLU, no biases, untied head)")
        ->transform(CLI::IsMember({"nanogpt", "llama"}))
        ->capture_default_str();
    app.add_option("--norm", norm_, "layer_norm or rms_norm")->transform(CLI::IsMember(names(norms())));
    app.add_option("--positional", positional_, "learned, sinusoidal, rotary or none")
        ->transform(CLI::IsMember(names(positionals())));
    app.add_option("--activation", activation_, "MLP activation: gelu, gelu_tanh, relu, relu_squared or silu")
        ->transform(CLI::IsMember(names(activations())));
    app.add_option("--gated_mlp", gated_mlp_, "gated MLP (with silu: SwiGLU)");
    app.add_option("--mlp_hidden", mlp_hidden_, "MLP hidden width (0: 4 x n_embd, gated 8/3 x n_embd rounded up to 64)")
        ->check(integer_in(0, int64_t{1} << 24));
    app.add_option("--n_kv_head", n_kv_head_, "key/value heads for grouped-query attention (0: n_head; 1: multi-query)")
        ->check(integer_in(0, int64_t{1} << 24));
    app.add_option("--qk_norm", qk_norm_, "RMSNorm on each head of q and k before the scores");
    app.add_option("--rope_theta", rope_theta_, "rotary base")->check(number_in(1e-3, 1e12));
    app.add_option("--rope_layout", rope_layout_, "rotary pairs: halves (HF's rotate_half) or interleaved (Meta's)")
        ->transform(CLI::IsMember({"halves", "interleaved"}));
    app.add_option("--tie_embeddings", tie_embeddings_, "the LM head reuses the token embedding");
    app.add_option("--logit_softcap", logit_softcap_, "cap * tanh(logits / cap) on the output logits (0: off)")
        ->check(number_in(0, 1e6));
  }

  // The preset applied to `sizes`, then every architecture flag the user gave.
  nn::GPTConfig apply(nn::GPTConfig sizes) const {
    nn::GPTConfig c = preset_ == "llama" ? nn::llama_style(sizes) : sizes;
    if (norm_) c.norm = norms().at(*norm_);
    if (positional_) c.positional = positionals().at(*positional_);
    if (activation_) c.activation = activations().at(*activation_);
    if (gated_mlp_) c.gated_mlp = *gated_mlp_;
    if (mlp_hidden_) c.mlp_hidden = *mlp_hidden_;
    if (n_kv_head_) c.n_kv_head = *n_kv_head_;
    if (qk_norm_) c.qk_norm = *qk_norm_;
    if (rope_theta_) c.rope_theta = *rope_theta_;
    if (rope_layout_) c.rope_layout = *rope_layout_ == "interleaved" ? RotaryLayout::Interleaved : RotaryLayout::Halves;
    if (tie_embeddings_) c.tie_embeddings = *tie_embeddings_;
    if (logit_softcap_) c.logit_softcap = *logit_softcap_;
    return c;
  }

  // The flags given on the command line, for refusing them where the architecture comes from a checkpoint.
  std::vector<std::string> given(const CLI::App& app) const {
    std::vector<std::string> out;
    for (const char* flag : {"--preset", "--norm", "--positional", "--activation", "--gated_mlp", "--mlp_hidden",
                             "--n_kv_head", "--qk_norm", "--rope_theta", "--rope_layout", "--tie_embeddings",
                             "--logit_softcap"})
      if (app.count(flag) > 0) out.push_back(flag);
    return out;
  }

 private:
  template <class E>
  static std::vector<std::string> names(const std::map<std::string, E>& table) {
    std::vector<std::string> out;
    for (const auto& entry : table) out.push_back(entry.first);
    return out;
  }
  static const std::map<std::string, nn::NormType>& norms() {
    static const std::map<std::string, nn::NormType> t{{"layer_norm", nn::NormType::LayerNorm},
                                                       {"rms_norm", nn::NormType::RMSNorm}};
    return t;
  }
  static const std::map<std::string, nn::PositionalEncoding>& positionals() {
    static const std::map<std::string, nn::PositionalEncoding> t{{"learned", nn::PositionalEncoding::Learned},
                                                                 {"sinusoidal", nn::PositionalEncoding::Sinusoidal},
                                                                 {"rotary", nn::PositionalEncoding::Rotary},
                                                                 {"none", nn::PositionalEncoding::None}};
    return t;
  }
  static const std::map<std::string, nn::Activation>& activations() {
    static const std::map<std::string, nn::Activation> t{{"gelu", nn::Activation::Gelu},
                                                         {"gelu_tanh", nn::Activation::GeluTanh},
                                                         {"relu", nn::Activation::Relu},
                                                         {"relu_squared", nn::Activation::ReluSquared},
                                                         {"silu", nn::Activation::Silu}};
    return t;
  }

  std::string preset_ = "nanogpt";
  std::optional<std::string> norm_, positional_, activation_, rope_layout_;
  std::optional<bool> gated_mlp_, qk_norm_, tie_embeddings_;
  std::optional<int64_t> mlp_hidden_, n_kv_head_;
  std::optional<double> rope_theta_, logit_softcap_;
};

}  // namespace minitrain::examples
