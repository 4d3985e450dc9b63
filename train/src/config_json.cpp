#include "config_json.h"

#include <stdexcept>

namespace minitrain::train::detail {

using nlohmann::json;

json parse_config_object(const std::string& text, const char* what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string(what) + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument(std::string(what) + ": not a JSON object");
  return j;
}

const json& config_field(const json& j, const char* key, const char* what) {
  if (!j.contains(key)) throw std::invalid_argument(std::string(what) + ": missing '" + key + "'");
  return j.at(key);
}

void write_nanogpt_fields(const nn::GPTConfig& c, json& j) {
  j["block_size"] = c.block_size;
  j["vocab_size"] = c.vocab_size;
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["n_embd"] = c.n_embd;
  j["dropout"] = c.dropout;
  j["bias"] = c.bias;
}

void read_nanogpt_fields(const json& j, nn::GPTConfig& c, const char* what) {
  try {
    c.block_size = config_field(j, "block_size", what).get<int64_t>();
    c.vocab_size = config_field(j, "vocab_size", what).get<int64_t>();
    c.n_layer = config_field(j, "n_layer", what).get<int64_t>();
    c.n_head = config_field(j, "n_head", what).get<int64_t>();
    c.n_embd = config_field(j, "n_embd", what).get<int64_t>();
    c.dropout = config_field(j, "dropout", what).get<double>();
    c.bias = config_field(j, "bias", what).get<bool>();
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string(what) + ": wrong type: " + e.what());
  }
}

}  // namespace minitrain::train::detail
