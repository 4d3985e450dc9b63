// GPT-2's Hugging Face layout: the only file that knows it (see hf_gpt2.h). What every HF format shares
// (reading config.json, opening model.safetensors, reading tensors into parameters, writing a directory)
// is in hf_directory.cpp.
#include <minitrain/train/hf_gpt2.h>

#include "config_json.h"
#include "ends_with.h"
#include "hf_directory.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

namespace minitrain::train {

using nlohmann::json;
using detail::FileLayout;
using detail::ends_with;

namespace {

const char* kModelType = "gpt2";
const char* kArchitecture = "GPT2LMHeadModel";
const char* kPrefix = "transformer.";  // minitrain's names and save_pretrained's start with it
const char* kHead = "lm_head.weight";
const double kLayerNormEps = 1e-5;      // GPT2Config's layer_norm_epsilon default
const int64_t kGpt2Vocabulary = 50257;  // GPT-2's BPE vocabulary; its last id is <|endoftext|>

// activation_function <-> Activation, read both ways; the first name of a kind is the one written.
const std::pair<nn::Activation, const char*> kActivations[] = {{nn::Activation::GeluTanh, "gelu_new"},
                                                               {nn::Activation::GeluTanh, "gelu_pytorch_tanh"},
                                                               {nn::Activation::Gelu, "gelu"},
                                                               {nn::Activation::Relu, "relu"}};

// One tensor of the layout: its name under the model (minitrain's, which is save_pretrained's) and how the
// file stores it.
struct Gpt2Tensor {
  std::string name;
  FileLayout layout;
};

// Every tensor save_pretrained writes for a GPT2LMHeadModel with a tied head, in its order. The four
// matrices of a block are Conv1D: (in, out) in the file.
std::vector<Gpt2Tensor> gpt2_layout(int64_t n_layer) {
  std::vector<Gpt2Tensor> out{{"transformer.wte.weight", FileLayout::AsIs}, {"transformer.wpe.weight", FileLayout::AsIs}};
  for (int64_t i = 0; i < n_layer; ++i) {
    const std::string block = "transformer.h." + std::to_string(i) + ".";
    for (const char* norm_or_bias : {"ln_1.weight", "ln_1.bias"}) out.push_back({block + norm_or_bias, FileLayout::AsIs});
    for (const char* conv1d : {"attn.c_attn", "attn.c_proj"}) {
      out.push_back({block + conv1d + ".weight", FileLayout::Transposed});
      out.push_back({block + conv1d + ".bias", FileLayout::AsIs});
    }
    for (const char* norm_or_bias : {"ln_2.weight", "ln_2.bias"}) out.push_back({block + norm_or_bias, FileLayout::AsIs});
    for (const char* conv1d : {"mlp.c_fc", "mlp.c_proj"}) {
      out.push_back({block + conv1d + ".weight", FileLayout::Transposed});
      out.push_back({block + conv1d + ".bias", FileLayout::AsIs});
    }
  }
  out.push_back({"transformer.ln_f.weight", FileLayout::AsIs});
  out.push_back({"transformer.ln_f.bias", FileLayout::AsIs});
  return out;
}

// The causal-mask buffers of older transformers (h.<i>.attn.bias, h.<i>.attn.masked_bias): not weights.
bool is_mask_buffer(const std::string& name) {
  return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias");
}

// Why GPT-2 cannot express `c`, or "".
std::string architecture_mismatch(const nn::GPTConfig& c) {
  if (!c.bias) return "GPT-2 has biases in every Linear and LayerNorm, this model has none (bias false)";
  if (c.positional != nn::PositionalEncoding::Learned)
    return std::string("GPT-2 learns its position embeddings (wpe), this model uses ") +
           (c.positional == nn::PositionalEncoding::Sinusoidal ? "sinusoidal ones"
            : c.positional == nn::PositionalEncoding::Rotary   ? "rotary ones"
                                                                : "none");
  if (c.norm != nn::NormType::LayerNorm) return "GPT-2 uses LayerNorm, this model RMSNorm (norm)";
  if (c.gated_mlp) return "GPT-2's MLP is not gated, this model's is (gated_mlp)";
  if (c.mlp_hidden_size() != 4 * c.n_embd)
    return "GPT-2's MLP is 4 * n_embd = " + std::to_string(4 * c.n_embd) + " wide, this model's " +
           std::to_string(c.mlp_hidden_size()) + " (mlp_hidden)";
  if (c.kv_heads() != c.n_head) return "GPT-2 has as many key/value heads as query heads, this model fewer (n_kv_head)";
  if (c.qk_norm) return "GPT-2 has no QK-norm (qk_norm)";
  if (c.logit_softcap != 0) return "GPT-2 does not soft-cap its logits (logit_softcap)";
  const double standard = 1.0 / std::sqrt(static_cast<double>(c.n_embd / c.n_head));
  if (!std::isnan(c.attention_scale) && c.attention_scale != standard && c.attention_scale != 1.0)
    return "GPT-2 scales attention by 1/sqrt(head size) = " + std::to_string(standard) +
           " (or by 1 with scale_attn_weights false), this model by " + std::to_string(c.attention_scale);
  return "";
}

// A field that may be absent (GPT2Config's default then applies, as in transformers).
template <class T, class Read>
T optional_field(const json& j, const char* key, T fallback, Read read) {
  return j.contains(key) ? read() : fallback;
}

nn::GPTConfig config_from_json(const json& j, const std::string& source) {
  const char* what = source.c_str();
  auto refuse = [&](const std::string& field, const std::string& why) {
    throw std::invalid_argument(source + ": '" + field + "' " + why);
  };
  const std::string model_type = detail::string_field(j, "model_type", what);
  if (model_type != kModelType)
    refuse("model_type", "is '" + model_type.substr(0, 40) + "'; this reader takes GPT-2 ('gpt2')");

  nn::GPTConfig c;
  c.n_embd = detail::int_field(j, "n_embd", what, 1, detail::kMaxConfigSize);
  c.n_layer = detail::int_field(j, "n_layer", what, 1, detail::kMaxConfigSize);
  c.n_head = detail::int_field(j, "n_head", what, 1, detail::kMaxConfigSize);
  c.block_size = detail::int_field(j, "n_positions", what, 1, detail::kMaxConfigSize);
  c.vocab_size = detail::int_field(j, "vocab_size", what, 1, detail::kMaxConfigSize);
  c.bias = true;
  c.positional = nn::PositionalEncoding::Learned;

  const std::string activation = optional_field<std::string>(
      j, "activation_function", "gelu_new", [&] { return detail::string_field(j, "activation_function", what); });
  bool known = false;
  std::string accepted;
  for (const auto& [value, name] : kActivations) {
    accepted += (accepted.empty() ? "" : ", ") + std::string(name);
    if (activation == name) {
      c.activation = value;
      known = true;
    }
  }
  if (!known) refuse("activation_function", "is '" + activation.substr(0, 40) + "'; accepted: " + accepted);

  if (j.contains("n_inner") && !j.at("n_inner").is_null()) {
    const int64_t n_inner = detail::int_field(j, "n_inner", what, 1, detail::kMaxConfigSize);
    if (n_inner != 4 * c.n_embd)
      refuse("n_inner", "is " + std::to_string(n_inner) + "; minitrain's MLP is 4 * n_embd = " +
                            std::to_string(4 * c.n_embd) + " wide");
  }
  c.norm_eps = optional_field(j, "layer_norm_epsilon", kLayerNormEps, [&] {
    return detail::number_field(j, "layer_norm_epsilon", what, std::numeric_limits<double>::min(), 1.0);
  });
  const std::pair<const char*, const char*> unsupported[] = {
      {"scale_attn_by_inverse_layer_idx", "is true; minitrain's GPT has one attention scale for every layer"},
      {"add_cross_attention", "is true; minitrain's GPT has no cross-attention"}};
  for (const auto& [field, why] : unsupported)
    if (optional_field(j, field, false, [&, f = field] { return detail::bool_field(j, f, what); })) refuse(field, why);
  // Only the order of float16 operations: the same function in float32.
  optional_field(j, "reorder_and_upcast_attn", false, [&] { return detail::bool_field(j, "reorder_and_upcast_attn", what); });
  c.tie_embeddings =
      optional_field(j, "tie_word_embeddings", true, [&] { return detail::bool_field(j, "tie_word_embeddings", what); });
  if (!optional_field(j, "scale_attn_weights", true, [&] { return detail::bool_field(j, "scale_attn_weights", what); }))
    c.attention_scale = 1.0;

  // GPT-2 has three dropout rates, minitrain one: they must agree.
  const double below_one = std::nextafter(1.0, 0.0);
  double rates[3];
  const char* rate_names[3] = {"resid_pdrop", "embd_pdrop", "attn_pdrop"};
  for (int i = 0; i < 3; ++i)
    rates[i] = optional_field(j, rate_names[i], 0.1, [&] { return detail::number_field(j, rate_names[i], what, 0.0, below_one); });
  for (int i = 1; i < 3; ++i)
    if (rates[i] != rates[0])
      refuse(rate_names[i], "is " + std::to_string(rates[i]) + " but resid_pdrop is " + std::to_string(rates[0]) +
                                "; minitrain's GPT has one dropout rate");
  c.dropout = rates[0];
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
  return c;
}

}  // namespace

nn::GPTConfig gpt2_config_from_hf(const std::string& config_json, const std::string& source) {
  return config_from_json(detail::parse_config_object(config_json, source.c_str()), source);
}

std::string gpt2_config_to_hf(const nn::GPTConfig& c) {
  const std::string why = architecture_mismatch(c);
  if (!why.empty()) throw std::invalid_argument("GPT-2 export: " + why);
  std::string activation;
  for (const auto& [value, name] : kActivations)
    if (value == c.activation && activation.empty()) activation = name;
  if (activation.empty()) throw std::invalid_argument("GPT-2 export: an activation without a GPT-2 name");
  json j;
  j["architectures"] = json::array({kArchitecture});
  j["model_type"] = kModelType;
  j["vocab_size"] = c.vocab_size;
  j["n_positions"] = c.block_size;
  j["n_embd"] = c.n_embd;
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["n_inner"] = nullptr;  // 4 * n_embd
  j["activation_function"] = activation;
  j["layer_norm_epsilon"] = c.norm_eps;
  j["resid_pdrop"] = j["embd_pdrop"] = j["attn_pdrop"] = c.dropout;
  j["scale_attn_weights"] = std::isnan(c.attention_scale) || c.attention_scale != 1.0;
  j["scale_attn_by_inverse_layer_idx"] = false;
  j["reorder_and_upcast_attn"] = false;
  j["add_cross_attention"] = false;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  j["torch_dtype"] = "float32";
  // GPT-2's <|endoftext|> is its last id; a vocabulary of another size (a character model) has no such
  // token, and transformers warns about ids outside the vocabulary.
  const json end_of_text = c.vocab_size == kGpt2Vocabulary ? json(kGpt2Vocabulary - 1) : json(nullptr);
  j["bos_token_id"] = end_of_text;
  j["eos_token_id"] = end_of_text;
  return j.dump();
}

ImportedGPT load_hf_gpt2(const std::string& dir, const ImportSettings& settings) {
  const json config_json = detail::read_hf_config(dir);
  const nn::GPTConfig config = detail::apply_import_settings(config_from_json(config_json, detail::hf_config_path(dir)), settings);
  SafeTensorsReader file = detail::open_hf_weights(dir);

  // save_pretrained writes "transformer.wte.weight", the hub's gpt2 "wte.weight": one or the other.
  const std::string prefix = file.contains("wte.weight") && !file.contains("transformer.wte.weight") ? "" : kPrefix;
  auto file_name = [&](const std::string& name) { return prefix + name.substr(std::string(kPrefix).size()); };

  // The layer count first, so that the list of expected tensors is only made for a model of the file's size.
  const std::set<int64_t> layers = detail::file_layer_indices(file, prefix + "h.");
  if (static_cast<int64_t>(layers.size()) != config.n_layer)
    throw std::invalid_argument(file.source() + ": holds " + std::to_string(layers.size()) +
                                " layers but config.json says n_layer " + std::to_string(config.n_layer));
  const std::vector<Gpt2Tensor> layout = gpt2_layout(config.n_layer);
  const std::map<std::string, Shape> shapes = nn::GPT::parameter_shapes(config);
  std::map<std::string, Shape> expected;
  for (const Gpt2Tensor& t : layout) expected[file_name(t.name)] = detail::file_shape(shapes.at(t.name), t.layout);
  // Tied, save_pretrained leaves lm_head.weight out (the hub's file has it); untied, it must be there.
  const bool has_head = file.contains(kHead) || !config.tie_embeddings;
  if (has_head) expected[kHead] = shapes.at(kHead);
  detail::check_file_tensors(file, expected, [](const std::string& name) { return is_mask_buffer(name); });

  // Every shape agrees: the model holds exactly the file's weights. Each is read into its parameter.
  ImportedGPT out;
  out.model = std::make_unique<nn::GPT>(config);
  const nn::StateDict params = out.model->state_dict();
  std::vector<detail::TensorPlacement> placements;
  for (const Gpt2Tensor& t : layout) placements.push_back({file_name(t.name), params.at(t.name), t.layout});
  if (!config.tie_embeddings) placements.push_back({kHead, params.at(kHead), FileLayout::AsIs});
  detail::read_placements(file, placements);
  if (has_head && config.tie_embeddings)
    detail::check_file_tensor_equals(file, kHead, params.at("transformer.wte.weight"), file_name("transformer.wte.weight"),
                                     "minitrain's GPT ties its head to the token embedding");
  out.metadata = file.metadata();
  return out;
}

void export_hf_gpt2(const nn::GPT& model, const std::string& dir,
                    const std::map<std::string, std::string>& extra_metadata) {
  const json config = json::parse(gpt2_config_to_hf(model.config()));
  const nn::StateDict params = model.state_dict();
  std::map<std::string, Tensor> tensors;
  for (const Gpt2Tensor& t : gpt2_layout(model.config().n_layer)) {
    Tensor p = params.at(t.name).detach().to(DType::Float32);
    tensors[t.name] = t.layout == FileLayout::Transposed ? p.transpose(0, 1).contiguous() : p.contiguous();
  }
  if (!model.config().tie_embeddings) tensors[kHead] = params.at(kHead).detach().to(DType::Float32).contiguous();
  std::map<std::string, std::string> metadata = extra_metadata;
  metadata["format"] = "pt";  // transformers refuses a safetensors file without it
  detail::write_hf_directory(dir, config, tensors, metadata);
}

}  // namespace minitrain::train
