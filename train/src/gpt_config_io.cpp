#include <minitrain/train/gpt_config_io.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <stdexcept>

namespace minitrain::train {

using nlohmann::json;

std::string gpt_config_to_json(const nn::GPTConfig& c) {
  json j;
  j["block_size"] = c.block_size;
  j["vocab_size"] = c.vocab_size;
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["n_embd"] = c.n_embd;
  j["dropout"] = c.dropout;
  j["bias"] = c.bias;
  j["activation"] = c.activation == nn::Activation::Gelu ? "gelu" : c.activation == nn::Activation::GeluTanh ? "gelu_tanh" : "relu";
  j["positional"] = c.positional == nn::PositionalEncoding::Learned ? "learned" : "sinusoidal";
  j["attention_scale"] = std::isnan(c.attention_scale) ? json(nullptr) : json(c.attention_scale);
  j["seed"] = c.seed;
  return j.dump();
}

nn::GPTConfig gpt_config_from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("GPT config: invalid JSON: ") + e.what());
  }
  auto get = [&](const char* key) -> const json& {
    if (!j.is_object() || !j.contains(key)) throw std::invalid_argument(std::string("GPT config: missing '") + key + "'");
    return j.at(key);
  };
  nn::GPTConfig c;
  try {
    c.block_size = get("block_size").get<int64_t>();
    c.vocab_size = get("vocab_size").get<int64_t>();
    c.n_layer = get("n_layer").get<int64_t>();
    c.n_head = get("n_head").get<int64_t>();
    c.n_embd = get("n_embd").get<int64_t>();
    c.dropout = get("dropout").get<double>();
    c.bias = get("bias").get<bool>();
    const std::string act = get("activation").get<std::string>();
    c.activation = act == "gelu" ? nn::Activation::Gelu : act == "gelu_tanh" ? nn::Activation::GeluTanh : nn::Activation::Relu;
    c.positional = get("positional").get<std::string>() == "learned" ? nn::PositionalEncoding::Learned
                                                                    : nn::PositionalEncoding::Sinusoidal;
    const json& scale = get("attention_scale");
    c.attention_scale = scale.is_null() ? std::nan("") : scale.get<double>();
    c.seed = get("seed").get<uint64_t>();
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("GPT config: wrong type: ") + e.what());
  }
  c.validate();
  return c;
}

}  // namespace minitrain::train
