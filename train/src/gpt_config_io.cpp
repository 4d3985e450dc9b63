#include <minitrain/train/gpt_config_io.h>

#include "config_json.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <stdexcept>
#include <utility>

namespace minitrain::train {

using nlohmann::json;

namespace {

// One table per enum, read both ways: unknown names throw naming the field and the accepted values.
template <class E>
using NameTable = std::initializer_list<std::pair<E, const char*>>;

const NameTable<nn::Activation> kActivations = {
    {nn::Activation::Gelu, "gelu"}, {nn::Activation::GeluTanh, "gelu_tanh"}, {nn::Activation::Relu, "relu"}};
const NameTable<nn::PositionalEncoding> kPositionals = {{nn::PositionalEncoding::Learned, "learned"},
                                                       {nn::PositionalEncoding::Sinusoidal, "sinusoidal"}};

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
  for (const auto& [name, shape] : nn::GPT::parameter_shapes(c)) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (name == "lm_head.weight") continue;  // may be absent: it is the token embedding
      fail("missing tensor '" + name + "'");
    }
    if (it->second.shape() != shape)
      fail("the config makes '" + name + "' " + shape_text(shape) + " but the file holds " +
           shape_text(it->second.shape()));
  }
}

}  // namespace minitrain::train
