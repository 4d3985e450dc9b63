#include <minitrain/train/gpt_config_io.h>

#include "config_json.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

namespace minitrain::train {

using nlohmann::json;

namespace {

// One table per enum, read both ways: unknown names throw naming the field and the accepted values.
template <class E>
using NameTable = std::initializer_list<std::pair<E, const char*>>;

const NameTable<nn::Activation> kActivations = {{nn::Activation::Gelu, "gelu"},
                                                {nn::Activation::GeluTanh, "gelu_tanh"},
                                                {nn::Activation::Relu, "relu"},
                                                {nn::Activation::ReluSquared, "relu_squared"},
                                                {nn::Activation::Silu, "silu"}};
const NameTable<nn::PositionalEncoding> kPositionals = {{nn::PositionalEncoding::Learned, "learned"},
                                                       {nn::PositionalEncoding::Sinusoidal, "sinusoidal"},
                                                       {nn::PositionalEncoding::Rotary, "rotary"},
                                                       {nn::PositionalEncoding::None, "none"}};
const NameTable<nn::NormType> kNorms = {{nn::NormType::LayerNorm, "layer_norm"}, {nn::NormType::RMSNorm, "rms_norm"}};
const NameTable<RotaryLayout> kRotaryLayouts = {{RotaryLayout::Halves, "halves"},
                                               {RotaryLayout::Interleaved, "interleaved"}};

template <class E>
const char* name_of(const NameTable<E>& table, E value) {
  for (const auto& [e, name] : table)
    if (e == value) return name;
  throw std::logic_error("gpt_config_to_json: an enum value without a name");
}

template <class E>
E value_of(const NameTable<E>& table, const std::string& name, const char* field, const char* what) {
  std::string accepted;
  for (const auto& [e, n] : table) {
    if (name == n) return e;
    accepted += (accepted.empty() ? "" : ", ") + std::string(n);
  }
  throw std::invalid_argument(std::string(what) + ": '" + field + "' is '" + name + "'; accepted: " + accepted);
}

std::string shape_text(const Shape& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + ")";
}

}  // namespace

std::string gpt_config_to_json(const nn::GPTConfig& c) {
  json j;
  detail::write_nanogpt_fields(c, j);
  j["activation"] = name_of(kActivations, c.activation);
  j["positional"] = name_of(kPositionals, c.positional);
  j["attention_scale"] = std::isnan(c.attention_scale) ? json(nullptr) : json(c.attention_scale);
  j["seed"] = c.seed;
  j["norm"] = name_of(kNorms, c.norm);
  j["norm_eps"] = c.norm_eps;
  j["gated_mlp"] = c.gated_mlp;
  j["mlp_hidden"] = c.mlp_hidden_size();
  j["n_kv_head"] = c.kv_heads();
  j["qk_norm"] = c.qk_norm;
  j["rope_theta"] = c.rope_theta;
  j["rope_layout"] = name_of(kRotaryLayouts, c.rope_layout);
  j["tie_embeddings"] = c.tie_embeddings;
  j["logit_softcap"] = c.logit_softcap;
  return j.dump();
}

nn::GPTConfig gpt_config_from_json(const std::string& text) {
  const char* what = "GPT config";
  const json j = detail::parse_config_object(text, what);
  nn::GPTConfig c;
  detail::read_nanogpt_fields(j, c, what);
  c.activation = value_of(kActivations, detail::string_field(j, "activation", what), "activation", what);
  c.positional = value_of(kPositionals, detail::string_field(j, "positional", what), "positional", what);
  const json& scale = detail::config_field(j, "attention_scale", what);
  c.attention_scale = scale.is_null() ? std::nan("") : detail::number_field(j, "attention_scale", what, -1e300, 1e300);
  c.seed = detail::uint_field(j, "seed", what);
  // The architecture fields of today's decoders: absent from checkpoints written before they existed,
  // which are nanoGPT's architecture (the defaults); when present, read as strictly as the rest.
  auto has = [&](const char* key) { return j.contains(key); };
  if (has("norm")) c.norm = value_of(kNorms, detail::string_field(j, "norm", what), "norm", what);
  if (has("norm_eps")) c.norm_eps = detail::number_field(j, "norm_eps", what, 1e-300, 1.0);
  if (has("gated_mlp")) c.gated_mlp = detail::bool_field(j, "gated_mlp", what);
  if (has("mlp_hidden")) c.mlp_hidden = detail::int_field(j, "mlp_hidden", what, 0, detail::kMaxConfigSize);
  if (has("n_kv_head")) c.n_kv_head = detail::int_field(j, "n_kv_head", what, 0, detail::kMaxConfigSize);
  if (has("qk_norm")) c.qk_norm = detail::bool_field(j, "qk_norm", what);
  if (has("rope_theta")) c.rope_theta = detail::number_field(j, "rope_theta", what, 1e-300, 1e300);
  if (has("rope_layout"))
    c.rope_layout = value_of(kRotaryLayouts, detail::string_field(j, "rope_layout", what), "rope_layout", what);
  if (has("tie_embeddings")) c.tie_embeddings = detail::bool_field(j, "tie_embeddings", what);
  if (has("logit_softcap")) c.logit_softcap = detail::number_field(j, "logit_softcap", what, 0.0, 1e300);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(what) + ": " + e.what());
  }
  return c;
}

void check_config_matches_tensors(const nn::GPTConfig& c, const nn::StateDict& tensors, const std::string& source) {
  auto fail = [&](const std::string& problem) { throw std::invalid_argument(source + ": " + problem); };
  // The layers the tensors hold: transformer.h.<i>.* for i = 0, 1, ...
  std::set<int64_t> layers;
  const std::string prefix = "transformer.h.";
  for (const auto& entry : tensors) {
    const std::string& name = entry.first;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::size_t dot = name.find('.', prefix.size());
    const std::string index = name.substr(prefix.size(), dot == std::string::npos ? std::string::npos : dot - prefix.size());
    if (index.empty() || index.size() > 9 || index.find_first_not_of("0123456789") != std::string::npos)
      fail("unexpected tensor '" + name + "'");
    layers.insert(std::stoll(index));
  }
  if (static_cast<int64_t>(layers.size()) != c.n_layer)
    fail("the config says n_layer " + std::to_string(c.n_layer) + " but the tensors hold " +
         std::to_string(layers.size()) + " layers");
  // The sizes that the count of entries depends on agree, so listing the expected tensors is cheap; each
  // must be there with its shape. With every shape agreeing, the model built from this config allocates
  // exactly what the file holds.
  nn::GPT::expected_num_parameters(c);  // throws before listing when the sizes overflow
  const std::map<std::string, Shape> expected = nn::GPT::parameter_shapes(c);
  for (const auto& entry : tensors)  // a tensor the config has no place for (wpe with rotary positions, say)
    if (!expected.count(entry.first)) fail("the config has no tensor '" + entry.first + "'");
  for (const auto& [name, shape] : expected) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (name == "lm_head.weight" && c.tie_embeddings) continue;  // may be absent: it is the token embedding
      fail("missing tensor '" + name + "'");
    }
    if (it->second.shape() != shape)
      fail("the config makes '" + name + "' " + shape_text(shape) + " but the file holds " +
           shape_text(it->second.shape()));
  }
}

}  // namespace minitrain::train
