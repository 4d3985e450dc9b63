// Internal: the JSON fields both config codecs share (gpt_config_io for checkpoints, nanogpt_io for
// exports): the seven nanoGPT GPTConfig fields. Errors name `what` ("GPT config", "nanoGPT config").
#pragma once

#include <minitrain/nn/gpt.h>

#include <nlohmann/json.hpp>

#include <string>

namespace minitrain::train::detail {

// Parses `text` as a JSON object; throws std::invalid_argument otherwise.
nlohmann::json parse_config_object(const std::string& text, const char* what);
// The field `key` of `j`; throws std::invalid_argument naming it when missing.
const nlohmann::json& config_field(const nlohmann::json& j, const char* key, const char* what);

void write_nanogpt_fields(const nn::GPTConfig& c, nlohmann::json& j);
// Reads the seven fields into c; a missing field or a wrong type throws std::invalid_argument.
void read_nanogpt_fields(const nlohmann::json& j, nn::GPTConfig& c, const char* what);

}  // namespace minitrain::train::detail
