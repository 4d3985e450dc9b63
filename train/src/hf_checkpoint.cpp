#include <minitrain/train/hf_checkpoint.h>

#include <minitrain/train/hf_gpt2.h>
#include <minitrain/train/hf_llama.h>

#include "hf_directory.h"

#include <stdexcept>
#include <utility>

namespace minitrain::train {

namespace {

// model_type -> reader. A new family adds its line here and its layout in a file of its own.
const std::pair<const char*, ImportedGPT (*)(const std::string&, const ImportSettings&)> kReaders[] = {
    {"gpt2", &load_hf_gpt2}, {"llama", &load_hf_llama}};

}  // namespace

std::vector<std::string> hf_model_types() {
  std::vector<std::string> out;
  for (const auto& reader : kReaders) out.push_back(reader.first);
  return out;
}

ImportedGPT load_hf_checkpoint(const std::string& dir, const ImportSettings& settings) {
  const std::string source = detail::hf_config_path(dir);
  const std::string model_type = detail::hf_model_type(detail::read_hf_config(dir), source);
  std::string accepted;
  for (const auto& [type, read] : kReaders) {
    if (model_type == type) return read(dir, settings);
    accepted += (accepted.empty() ? "'" : ", '") + std::string(type) + "'";
  }
  throw std::invalid_argument(source + ": 'model_type' is '" + model_type.substr(0, 40) +
                              "'; minitrain reads " + accepted);
}

}  // namespace minitrain::train
