#include <minitrain/train/gpt_config_io.h>

#include "config_json.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <stdexcept>

namespace minitrain::train {

using nlohmann::json;

std::string gpt_config_to_json(const nn::GPTConfig& c) {
  json j;
  detail::write_nanogpt_fields(c, j);
  j["activation"] = c.activation == nn::Activation::Gelu ? "gelu" : c.activation == nn::Activation::GeluTanh ? "gelu_tanh" : "relu";
  j["positional"] = c.positional == nn::PositionalEncoding::Learned ? "learned" : "sinusoidal";
  j["attention_scale"] = std::isnan(c.attention_scale) ? json(nullptr) : json(c.attention_scale);
  j["seed"] = c.seed;
  return j.dump();
}

nn::GPTConfig gpt_config_from_json(const std::string& text) {
  const char* what = "GPT config";
  const json j = detail::parse_config_object(text, what);
  nn::GPTConfig c;
  detail::read_nanogpt_fields(j, c, what);
  try {
    const std::string act = detail::config_field(j, "activation", what).get<std::string>();
    c.activation = act == "gelu" ? nn::Activation::Gelu : act == "gelu_tanh" ? nn::Activation::GeluTanh : nn::Activation::Relu;
    c.positional = detail::config_field(j, "positional", what).get<std::string>() == "learned"
                       ? nn::PositionalEncoding::Learned
                       : nn::PositionalEncoding::Sinusoidal;
    const json& scale = detail::config_field(j, "attention_scale", what);
    c.attention_scale = scale.is_null() ? std::nan("") : scale.get<double>();
    c.seed = detail::config_field(j, "seed", what).get<uint64_t>();
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string(what) + ": wrong type: " + e.what());
  }
  c.validate();
  return c;
}

}  // namespace minitrain::train
