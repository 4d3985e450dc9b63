#include <minitrain/train/nanogpt_io.h>

#include <minitrain/core/safetensors.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/gpt_config_io.h>

#include "config_json.h"
#include "ends_with.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <stdexcept>

namespace minitrain::train {

using nlohmann::json;

using detail::ends_with;

namespace {

const char* kWte = "transformer.wte.weight";
const char* kHead = "lm_head.weight";

// Why a model cannot be written in nanoGPT's layout, or "" if it can.
std::string architecture_mismatch(const nn::GPTConfig& c) {
  if (c.activation != nn::Activation::Gelu) return "nanoGPT's MLP uses GELU in its erf form, this model does not";
  if (c.positional != nn::PositionalEncoding::Learned) return "nanoGPT learns its position embeddings (wpe), this model does not";
  if (c.norm != nn::NormType::LayerNorm || c.norm_eps != 1e-5) return "nanoGPT normalises with LayerNorm (eps 1e-5), this model does not";
  if (c.gated_mlp || c.mlp_hidden_size() != 4 * c.n_embd) return "nanoGPT's MLP is ungated with 4 x n_embd hidden units, this model's is not";
  if (c.kv_heads() != c.n_head) return "nanoGPT has as many key/value heads as query heads, this model uses grouped-query attention";
  if (c.qk_norm) return "nanoGPT has no QK-norm, this model does";
  if (!c.tie_embeddings) return "nanoGPT ties its LM head to the token embedding, this model does not";
  if (c.logit_softcap != 0) return "nanoGPT does not soft-cap its logits, this model does";
  const double standard = 1.0 / std::sqrt(static_cast<double>(c.n_embd / c.n_head));
  if (!std::isnan(c.attention_scale) && c.attention_scale != standard)
    return "nanoGPT scales attention by 1/sqrt(head size) = " + std::to_string(standard) + ", this model by " +
           std::to_string(c.attention_scale);
  return "";
}

// The config read off the tensors' shapes (nanoGPT's state dict does not carry n_head).
nn::GPTConfig infer_config(const nn::StateDict& t, int64_t n_head, const std::string& source) {
  if (n_head <= 0)
    throw std::invalid_argument(source + ": no \"config\" in the metadata; give n_head (the shapes do not tell it)");
  auto shape_of = [&](const std::string& name) -> const Shape& {
    auto it = t.find(name);
    if (it == t.end()) throw std::invalid_argument(source + ": missing tensor '" + name + "'");
    if (it->second.dim() != 2) throw std::invalid_argument(source + ": '" + name + "' is not a matrix");
    return it->second.shape();
  };
  nn::GPTConfig c;
  c.vocab_size = shape_of(kWte)[0];
  c.n_embd = shape_of(kWte)[1];
  c.block_size = shape_of("transformer.wpe.weight")[0];
  c.n_head = n_head;
  c.n_layer = 0;
  while (t.count("transformer.h." + std::to_string(c.n_layer) + ".ln_1.weight")) ++c.n_layer;
  c.bias = t.count("transformer.ln_f.bias") > 0;
  c.dropout = 0.0;
  return c;
}

}  // namespace

std::string nanogpt_config_to_json(const nn::GPTConfig& c) {
  const std::string why = architecture_mismatch(c);
  if (!why.empty()) throw std::invalid_argument("nanoGPT export: " + why);
  json j;
  detail::write_nanogpt_fields(c, j);
  return j.dump();
}

nn::GPTConfig nanogpt_config_from_json(const std::string& text) {
  const json j = detail::parse_config_object(text, "nanoGPT config");
  nn::GPTConfig c;
  detail::read_nanogpt_fields(j, c, "nanoGPT config");
  c.activation = nn::Activation::Gelu;
  c.positional = nn::PositionalEncoding::Learned;
  c.validate();
  return c;
}

nn::StateDict nanogpt_state_dict(const nn::GPT& model) {
  nn::StateDict out;
  for (const auto& [name, t] : model.state_dict()) out[name] = t.detach().to(DType::Float32).contiguous();
  return out;
}

void export_nanogpt(const std::string& path, const nn::GPT& model,
                    const std::map<std::string, std::string>& extra_metadata) {
  std::map<std::string, std::string> metadata = extra_metadata;
  metadata["format"] = "pt";  // what PyTorch writers put here; some readers look for it
  metadata["config"] = nanogpt_config_to_json(model.config());
  metadata["minitrain.gpt_config"] = gpt_config_to_json(model.config());
  save_safetensors(path, nanogpt_state_dict(model), metadata);
}

std::unique_ptr<nn::GPT> gpt_from_nanogpt(const nn::StateDict& tensors, const std::string& config_json,
                                          int64_t n_head, const std::string& source) {
  check_finite_tensors(tensors, source);
  nn::StateDict state;
  for (const auto& [name, t] : tensors)
    if (!(ends_with(name, ".attn.bias") && t.dim() == 4)) state[name] = t;  // nanoGPT's causal-mask buffers
  // minitrain ties lm_head to wte (one tensor), as nanoGPT does: either name may carry it.
  const bool has_wte = state.count(kWte) > 0, has_head = state.count(kHead) > 0;
  if (!has_wte && !has_head) throw std::invalid_argument(source + ": missing tensor '" + std::string(kWte) + "'");
  if (!has_wte) state[kWte] = state[kHead];
  if (!has_head) state[kHead] = state[kWte];
  if (state[kWte].shape() != state[kHead].shape() ||
      state[kWte].to_vector<double>() != state[kHead].to_vector<double>())
    throw std::invalid_argument(source + ": '" + std::string(kHead) + "' differs from '" + kWte +
                                "'; minitrain's GPT ties them, as nanoGPT does");
  try {
    const nn::GPTConfig config =
        config_json.empty() ? infer_config(state, n_head, source) : nanogpt_config_from_json(config_json);
    check_config_matches_tensors(config, state, source);  // before the model is allocated
    auto model = std::make_unique<nn::GPT>(config);
    model->to(state[kWte].dtype());
    model->load_state_dict(state, /*strict=*/true);
    return model;
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    if (what.compare(0, source.size(), source) == 0) throw;
    throw std::invalid_argument(source + ": " + what);
  }
}

ImportedGPT import_nanogpt(const std::string& path, int64_t n_head) {
  SafeTensors file = load_safetensors(path);
  auto it = file.metadata.find("config");
  ImportedGPT out;
  out.model = gpt_from_nanogpt(file.tensors, it == file.metadata.end() ? "" : it->second, n_head, path);
  out.metadata = std::move(file.metadata);
  return out;
}

}  // namespace minitrain::train
