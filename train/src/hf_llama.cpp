// Llama's Hugging Face layout: the only file that knows it (see hf_llama.h). What every HF format shares
// (reading config.json, opening model.safetensors, reading tensors into parameters, writing a directory)
// is in hf_directory.cpp.
#include <minitrain/train/hf_llama.h>

#include "config_json.h"
#include "ends_with.h"
#include "hf_directory.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>
#include <vector>

namespace minitrain::train {

using nlohmann::json;

using detail::ends_with;

namespace {

const char* kModelType = "llama";
const char* kArchitecture = "LlamaForCausalLM";
const char* kLayers = "model.layers.";
const char* kHead = "lm_head.weight";
const char* kEmbedding = "model.embed_tokens.weight";
const double kRmsNormEps = 1e-6;   // LlamaConfig's rms_norm_eps default
const double kRopeTheta = 10000.0;  // LlamaConfig's rotary base default

// One tensor of the file and where it lives in minitrain's GPT: rows [first_row, first_row + rows) of the
// parameter `param` (rows 0: the whole parameter). Llama keeps q/k/v and gate/up as separate matrices,
// minitrain stacks them into one (one GEMM each).
struct LlamaTensor {
  std::string file_name;
  std::string param;
  int64_t first_row = 0;
  int64_t rows = 0;
};

// Every tensor of a LlamaForCausalLM for `c` (lm_head.weight only when untied), in save_pretrained's order.
std::vector<LlamaTensor> llama_layout(const nn::GPTConfig& c) {
  const int64_t C = c.n_embd, KV = c.kv_heads() * (C / c.n_head), H = c.mlp_hidden_size();
  std::vector<LlamaTensor> out{{kEmbedding, "transformer.wte.weight", 0, 0}};
  // A projection and, with biases, its bias: the same rows of the weight and of the bias.
  auto projection = [&](const std::string& file, const std::string& param, int64_t first_row, int64_t rows) {
    out.push_back({file + ".weight", param + ".weight", first_row, rows});
    if (c.bias) out.push_back({file + ".bias", param + ".bias", first_row, rows});
  };
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string file = kLayers + std::to_string(i) + ".", param = "transformer.h." + std::to_string(i) + ".";
    out.push_back({file + "input_layernorm.weight", param + "ln_1.weight", 0, 0});
    projection(file + "self_attn.q_proj", param + "attn.c_attn", 0, C);
    projection(file + "self_attn.k_proj", param + "attn.c_attn", C, KV);
    projection(file + "self_attn.v_proj", param + "attn.c_attn", C + KV, KV);
    projection(file + "self_attn.o_proj", param + "attn.c_proj", 0, 0);
    out.push_back({file + "post_attention_layernorm.weight", param + "ln_2.weight", 0, 0});
    projection(file + "mlp.gate_proj", param + "mlp.c_fc", 0, H);
    projection(file + "mlp.up_proj", param + "mlp.c_fc", H, H);
    projection(file + "mlp.down_proj", param + "mlp.c_proj", 0, 0);
  }
  out.push_back({"model.norm.weight", "transformer.ln_f.weight", 0, 0});
  if (!c.tie_embeddings) out.push_back({kHead, kHead, 0, 0});
  return out;
}

// The part of `param` that `t` fills: a contiguous view of its rows (a row block of a contiguous tensor is
// contiguous), or the whole parameter.
Tensor destination(const Tensor& param, const LlamaTensor& t) {
  return t.rows == 0 ? param : param.narrow(0, t.first_row, t.rows);
}

Shape file_shape(const Shape& param_shape, const LlamaTensor& t) {
  Shape s = param_shape;
  if (t.rows != 0) s[0] = t.rows;
  return s;
}

// Older transformers saved each layer's rotary frequencies (self_attn.rotary_emb.inv_freq): not weights.
bool is_rotary_buffer(const std::string& name) { return ends_with(name, ".rotary_emb.inv_freq"); }

// Why Llama cannot express `c`, or "".
std::string architecture_mismatch(const nn::GPTConfig& c) {
  if (c.norm != nn::NormType::RMSNorm) return "Llama uses RMSNorm, this model LayerNorm (norm)";
  if (c.positional != nn::PositionalEncoding::Rotary) return "Llama uses rotary positions, this model does not (positional)";
  if (c.rope_layout != RotaryLayout::Halves)
    return "transformers' Llama rotates q/k in halves (rotate_half), this model interleaved (rope_layout)";
  if (!c.gated_mlp || c.activation != nn::Activation::Silu)
    return "Llama's MLP is SwiGLU (gated, silu), this model's is not (gated_mlp, activation)";
  if (c.qk_norm) return "Llama has no QK-norm (qk_norm)";
  if (c.logit_softcap != 0) return "Llama does not soft-cap its logits (logit_softcap)";
  const double standard = 1.0 / std::sqrt(static_cast<double>(c.n_embd / c.n_head));
  if (!std::isnan(c.attention_scale) && c.attention_scale != standard)
    return "Llama scales attention by 1/sqrt(head size) = " + std::to_string(standard) + ", this model by " +
           std::to_string(c.attention_scale) + " (attention_scale)";
  return "";
}

// A field that transformers fills with its default when absent or null.
bool given(const json& j, const char* key) { return j.contains(key) && !j.at(key).is_null(); }

// The rotary parameters: transformers 5 writes rope_parameters {rope_type, rope_theta}; earlier versions a
// top-level rope_theta and rope_scaling (null, or {type / rope_type, factor, ...}). Anything but the
// default (unscaled) rotation over the whole head is refused. Returns the base θ.
double read_rope_theta(const json& j, const std::string& source) {
  auto refuse = [&](const std::string& field, const std::string& why) {
    throw std::invalid_argument(source + ": '" + field + "' " + why);
  };
  const char* field = given(j, "rope_parameters") ? "rope_parameters" : given(j, "rope_scaling") ? "rope_scaling" : nullptr;
  double theta = given(j, "rope_theta")
                     ? detail::number_field(j, "rope_theta", source.c_str(), std::numeric_limits<double>::min(), 1e300)
                     : kRopeTheta;
  if (given(j, "partial_rotary_factor") &&
      detail::number_field(j, "partial_rotary_factor", source.c_str(), 0.0, 1.0) != 1.0)
    refuse("partial_rotary_factor", "is " + j.at("partial_rotary_factor").dump() + "; minitrain rotates the whole head");
  if (field == nullptr) return theta;
  const json& params = j.at(field);
  if (!params.is_object()) refuse(field, "must be an object or null");
  const std::string where = source + ": '" + field + "'";
  // The kind of rotation first: a scaled one names its type, whatever other keys it holds.
  for (const char* key : {"rope_type", "type"}) {
    if (!params.contains(key)) continue;
    const json& value = params.at(key);
    if (!value.is_string() || value.get<std::string>() != "default")
      refuse(std::string(field) + "." + key,
             "is " + value.dump().substr(0, 40) + "; minitrain's rotary has no scaling (only 'default')");
  }
  for (const auto& [key, value] : params.items()) {
    if (key == "rope_type" || key == "type") continue;
    if (key == "rope_theta") {
      theta = detail::number_field(params, "rope_theta", where.c_str(), std::numeric_limits<double>::min(), 1e300);
    } else if (key == "partial_rotary_factor") {
      if (detail::number_field(params, "partial_rotary_factor", where.c_str(), 0.0, 1.0) != 1.0)
        refuse(std::string(field) + ".partial_rotary_factor", "is " + value.dump() + "; minitrain rotates the whole head");
    } else {
      refuse(field, "holds '" + key.substr(0, 40) + "', which minitrain's rotary (default, unscaled) does not have");
    }
  }
  return theta;
}

nn::GPTConfig config_from_json(const json& j, const std::string& source) {
  const char* what = source.c_str();
  auto refuse = [&](const std::string& field, const std::string& why) {
    throw std::invalid_argument(source + ": '" + field + "' " + why);
  };
  const std::string model_type = detail::string_field(j, "model_type", what);
  if (model_type != kModelType)
    refuse("model_type", "is '" + model_type.substr(0, 40) + "'; this reader takes Llama ('llama')");

  nn::GPTConfig c = nn::llama_style(nn::GPTConfig{});
  c.n_embd = detail::int_field(j, "hidden_size", what, 1, detail::kMaxConfigSize);
  c.mlp_hidden = detail::int_field(j, "intermediate_size", what, 1, detail::kMaxConfigSize);
  c.n_layer = detail::int_field(j, "num_hidden_layers", what, 1, detail::kMaxConfigSize);
  c.n_head = detail::int_field(j, "num_attention_heads", what, 1, detail::kMaxConfigSize);
  c.block_size = detail::int_field(j, "max_position_embeddings", what, 1, detail::kMaxConfigSize);
  c.vocab_size = detail::int_field(j, "vocab_size", what, 1, detail::kMaxConfigSize);
  c.n_kv_head = given(j, "num_key_value_heads") ? detail::int_field(j, "num_key_value_heads", what, 1, c.n_head) : c.n_head;
  if (c.n_embd % c.n_head != 0)
    refuse("hidden_size", "is " + std::to_string(c.n_embd) + ", not divisible by num_attention_heads " +
                              std::to_string(c.n_head));
  if (given(j, "head_dim")) {
    const int64_t head_dim = detail::int_field(j, "head_dim", what, 1, detail::kMaxConfigSize);
    if (head_dim != c.n_embd / c.n_head)
      refuse("head_dim", "is " + std::to_string(head_dim) + "; minitrain's heads are hidden_size / num_attention_heads = " +
                             std::to_string(c.n_embd / c.n_head) + " wide");
  }
  c.norm_eps = given(j, "rms_norm_eps")
                   ? detail::number_field(j, "rms_norm_eps", what, std::numeric_limits<double>::min(), 1.0)
                   : kRmsNormEps;
  c.rope_theta = read_rope_theta(j, source);

  const std::string act = given(j, "hidden_act") ? detail::string_field(j, "hidden_act", what) : "silu";
  if (act != "silu" && act != "swish")
    refuse("hidden_act", "is '" + act.substr(0, 40) + "'; minitrain's Llama MLP is SwiGLU (silu)");
  auto flag = [&](const char* key, bool fallback) { return given(j, key) ? detail::bool_field(j, key, what) : fallback; };
  const bool attention_bias = flag("attention_bias", false), mlp_bias = flag("mlp_bias", false);
  if (attention_bias != mlp_bias)
    refuse("attention_bias", std::string("is ") + (attention_bias ? "true" : "false") + " but mlp_bias is " +
                                 (mlp_bias ? "true" : "false") +
                                 "; minitrain's bias option puts a bias in every projection or in none");
  c.bias = attention_bias;
  c.tie_embeddings = flag("tie_word_embeddings", false);
  c.dropout = given(j, "attention_dropout")
                  ? detail::number_field(j, "attention_dropout", what, 0.0, std::nextafter(1.0, 0.0))
                  : 0.0;
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
  return c;
}

}  // namespace

nn::GPTConfig llama_config_from_hf(const std::string& config_json, const std::string& source) {
  return config_from_json(detail::parse_config_object(config_json, source.c_str()), source);
}

std::string llama_config_to_hf(const nn::GPTConfig& c) {
  const std::string why = architecture_mismatch(c);
  if (!why.empty()) throw std::invalid_argument("Llama export: " + why);
  json j;
  j["architectures"] = json::array({kArchitecture});
  j["model_type"] = kModelType;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.n_embd;
  j["intermediate_size"] = c.mlp_hidden_size();
  j["num_hidden_layers"] = c.n_layer;
  j["num_attention_heads"] = c.n_head;
  j["num_key_value_heads"] = c.kv_heads();
  j["head_dim"] = c.n_embd / c.n_head;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.block_size;
  j["rms_norm_eps"] = c.norm_eps;
  // transformers 5 reads rope_parameters; 4.x the top-level rope_theta (5 accepts it too).
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
  j["rope_theta"] = c.rope_theta;
  j["attention_bias"] = c.bias;
  j["mlp_bias"] = c.bias;
  j["attention_dropout"] = c.dropout;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["pretraining_tp"] = 1;
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  j["bos_token_id"] = nullptr;  // minitrain's vocabularies (characters, GPT-2 BPE) have no Llama bos/eos
  j["eos_token_id"] = nullptr;
  j["pad_token_id"] = nullptr;
  j["dtype"] = "float32";
  return j.dump();
}

ImportedGPT load_hf_llama(const std::string& dir, const ImportSettings& settings) {
  const json config_json = detail::read_hf_config(dir);
  const nn::GPTConfig config =
      detail::apply_import_settings(config_from_json(config_json, detail::hf_config_path(dir)), settings);
  SafeTensorsReader file = detail::open_hf_weights(dir);

  // The layer count first, so that the list of expected tensors is only made for a model of the file's size.
  const std::set<int64_t> layers = detail::file_layer_indices(file, kLayers);
  if (static_cast<int64_t>(layers.size()) != config.n_layer)
    throw std::invalid_argument(file.source() + ": holds " + std::to_string(layers.size()) +
                                " layers but config.json says num_hidden_layers " + std::to_string(config.n_layer));
  const std::vector<LlamaTensor> layout = llama_layout(config);
  const std::map<std::string, Shape> shapes = nn::GPT::parameter_shapes(config);
  std::map<std::string, Shape> expected;
  for (const LlamaTensor& t : layout) expected[t.file_name] = file_shape(shapes.at(t.param), t);
  // Tied, save_pretrained leaves lm_head.weight out; a file that has it must hold the embedding there.
  const bool tied_head_in_file = config.tie_embeddings && file.contains(kHead);
  if (tied_head_in_file) expected[kHead] = shapes.at(kHead);
  detail::check_file_tensors(file, expected, [](const std::string& name) { return is_rotary_buffer(name); });

  // Every shape agrees: the model holds exactly the file's weights. Each is read into its parameter's rows.
  ImportedGPT out;
  out.model = std::make_unique<nn::GPT>(config);
  const nn::StateDict params = out.model->state_dict();
  std::vector<detail::TensorPlacement> placements;
  for (const LlamaTensor& t : layout) placements.push_back({t.file_name, destination(params.at(t.param), t), detail::FileLayout::AsIs});
  detail::read_placements(file, placements);
  if (tied_head_in_file)
    detail::check_file_tensor_equals(file, kHead, params.at("transformer.wte.weight"), kEmbedding,
                                     "tie_word_embeddings is true");
  out.metadata = file.metadata();
  return out;
}

void export_hf_llama(const nn::GPT& model, const std::string& dir,
                     const std::map<std::string, std::string>& extra_metadata) {
  const json config = json::parse(llama_config_to_hf(model.config()));
  const nn::StateDict params = model.state_dict();
  std::map<std::string, Tensor> tensors;
  for (const LlamaTensor& t : llama_layout(model.config()))
    tensors[t.file_name] = destination(params.at(t.param).detach(), t).to(DType::Float32).contiguous();
  std::map<std::string, std::string> metadata = extra_metadata;
  metadata["format"] = "pt";  // transformers refuses a safetensors file without it
  detail::write_hf_directory(dir, config, tensors, metadata);
}

}  // namespace minitrain::train
