// Internal: the JSON fields both config codecs share (gpt_config_io for checkpoints, nanogpt_io for
// exports): the seven nanoGPT GPTConfig fields. Errors name `what` ("GPT config", "nanoGPT config").
//
// A config comes from a file a user may have edited or a stranger may have crafted, so every field is
// read strictly: integers must be JSON integers in range (1e30 or 1.7 are refused, never converted),
// numbers finite, names one of the accepted values.
#pragma once

#include <minitrain/nn/gpt.h>

#include <nlohmann/json.hpp>

#include <string>

namespace minitrain::train::detail {

// Parses `text` as a JSON object; throws std::invalid_argument otherwise.
nlohmann::json parse_config_object(const std::string& text, const char* what);
// The field `key` of `j`; throws std::invalid_argument naming it when missing.
const nlohmann::json& config_field(const nlohmann::json& j, const char* key, const char* what);

// The field as an integer in [lo, hi]; anything else (a float, a string, out of range) throws naming it.
int64_t int_field(const nlohmann::json& j, const char* key, const char* what, int64_t lo, int64_t hi);
// The field as an unsigned 64-bit integer (a seed).
uint64_t uint_field(const nlohmann::json& j, const char* key, const char* what);
// The field as a finite number in [lo, hi].
double number_field(const nlohmann::json& j, const char* key, const char* what, double lo, double hi);
bool bool_field(const nlohmann::json& j, const char* key, const char* what);
std::string string_field(const nlohmann::json& j, const char* key, const char* what);

// The largest value a config's sizes may take when read from a file. Far above any model this library
// can train, and small enough that products of two or three of them cannot overflow int64.
constexpr int64_t kMaxConfigSize = int64_t{1} << 24;

void write_nanogpt_fields(const nn::GPTConfig& c, nlohmann::json& j);
// Reads the seven fields into c; a missing field, a wrong type or a value out of range throws
// std::invalid_argument naming the field.
void read_nanogpt_fields(const nlohmann::json& j, nn::GPTConfig& c, const char* what);

}  // namespace minitrain::train::detail
