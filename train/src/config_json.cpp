#include "config_json.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace minitrain::train::detail {

using nlohmann::json;

namespace {

[[noreturn]] void bad_field(const char* what, const char* key, const std::string& problem) {
  throw std::invalid_argument(std::string(what) + ": '" + key + "' " + problem);
}

// The value as it appears in the file, shortened for a message.
std::string shown(const json& v) {
  std::string text = v.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

}  // namespace

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

int64_t int_field(const json& j, const char* key, const char* what, int64_t lo, int64_t hi) {
  const json& v = config_field(j, key, what);
  // nlohmann keeps integers that do not fit int64 as unsigned; floats (1e30, 1.7) are number_float.
  if (!v.is_number_integer()) bad_field(what, key, "must be an integer, got " + shown(v));
  const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi);
  if (too_big || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    bad_field(what, key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + shown(v));
  return v.get<int64_t>();
}

uint64_t uint_field(const json& j, const char* key, const char* what) {
  const json& v = config_field(j, key, what);
  if (!v.is_number_unsigned()) bad_field(what, key, "must be a non-negative integer, got " + shown(v));
  return v.get<uint64_t>();
}

double number_field(const json& j, const char* key, const char* what, double lo, double hi) {
  const json& v = config_field(j, key, what);
  if (!v.is_number()) bad_field(what, key, "must be a number, got " + shown(v));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad_field(what, key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + shown(v));
  return x;
}

bool bool_field(const json& j, const char* key, const char* what) {
  const json& v = config_field(j, key, what);
  if (!v.is_boolean()) bad_field(what, key, "must be true or false, got " + shown(v));
  return v.get<bool>();
}

std::string string_field(const json& j, const char* key, const char* what) {
  const json& v = config_field(j, key, what);
  if (!v.is_string()) bad_field(what, key, "must be a string, got " + shown(v));
  return v.get<std::string>();
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
  c.block_size = int_field(j, "block_size", what, 1, kMaxConfigSize);
  c.vocab_size = int_field(j, "vocab_size", what, 1, kMaxConfigSize);
  c.n_layer = int_field(j, "n_layer", what, 1, kMaxConfigSize);
  c.n_head = int_field(j, "n_head", what, 1, kMaxConfigSize);
  c.n_embd = int_field(j, "n_embd", what, 1, kMaxConfigSize);
  c.dropout = number_field(j, "dropout", what, 0.0, std::nextafter(1.0, 0.0));
  c.bias = bool_field(j, "bias", what);
}

}  // namespace minitrain::train::detail
