#include <minitrain/train/checkpoint.h>

#include <minitrain/core/safetensors.h>

#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace minitrain::train {

namespace {
const char* kModelPrefix = "model.";
const char* kOptimPrefix = "optim.";
const char* kRngPrefix = "rng.";
const char* kFormatKey = "minitrain.format";

std::string encode_state(const Generator::State& s) {
  char buf[4 * 17 + 1];
  std::snprintf(buf, sizeof buf, "%016llx%016llx%016llx%016llx", static_cast<unsigned long long>(s[0]),
                static_cast<unsigned long long>(s[1]), static_cast<unsigned long long>(s[2]),
                static_cast<unsigned long long>(s[3]));
  return buf;
}

Generator::State decode_state(const std::string& text, const std::string& path, const std::string& name) {
  if (text.size() != 64 || text.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw std::runtime_error(path + ": generator state '" + name + "' is not 64 hex digits");
  Generator::State s{};
  for (int i = 0; i < 4; ++i) s[i] = std::stoull(text.substr(16 * i, 16), nullptr, 16);
  return s;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

int64_t parse_int(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& path) {
  auto it = meta.find(key);
  if (it == meta.end()) throw std::runtime_error(path + ": checkpoint metadata lacks '" + key + "'");
  try {
    std::size_t used = 0;
    const long long v = std::stoll(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("trailing characters");
    return v;
  } catch (const std::exception&) {
    throw std::runtime_error(path + ": checkpoint metadata '" + key + "' is not an integer: '" + it->second + "'");
  }
}
}  // namespace

void save_checkpoint(const std::string& path, int64_t iter, const nn::Module& model, const Optimizer* optimizer,
                     const std::map<std::string, const Generator*>& generators,
                     const std::map<std::string, std::string>& metadata) {
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, t] : model.state_dict()) tensors[kModelPrefix + name] = t;
  std::map<std::string, std::string> meta = metadata;
  meta[kFormatKey] = "1";
  meta["iter"] = std::to_string(iter);
  if (optimizer) {
    for (const auto& [name, t] : optimizer->state_dict()) tensors[kOptimPrefix + name] = t;
    meta["optimizer.steps"] = std::to_string(optimizer->steps());
  }
  for (const auto& [name, gen] : generators) meta[kRngPrefix + name] = encode_state(gen->state());
  save_safetensors(path, tensors, meta);
}

CheckpointContents load_checkpoint(const std::string& path) {
  SafeTensors file = load_safetensors(path);
  if (!file.metadata.count(kFormatKey))
    throw std::runtime_error(path + ": not a minitrain checkpoint (no '" + std::string(kFormatKey) + "' in metadata)");
  CheckpointContents c;
  c.iter = parse_int(file.metadata, "iter", path);
  if (file.metadata.count("optimizer.steps")) c.optimizer_steps = parse_int(file.metadata, "optimizer.steps", path);
  for (auto& [name, t] : file.tensors) {
    if (starts_with(name, kModelPrefix))
      c.model[name.substr(6)] = t;
    else if (starts_with(name, kOptimPrefix))
      c.optimizer[name.substr(6)] = t;
    else
      throw std::runtime_error(path + ": unexpected tensor '" + name + "' in checkpoint");
  }
  for (auto& [key, value] : file.metadata) {
    if (starts_with(key, kRngPrefix))
      c.generators[key.substr(4)] = decode_state(value, path, key.substr(4));
    else
      c.metadata[key] = value;
  }
  return c;
}

void restore_checkpoint(const CheckpointContents& c, nn::Module& model, Optimizer* optimizer,
                        const std::map<std::string, Generator*>& generators) {
  model.load_state_dict(c.model, /*strict=*/true);
  if (optimizer) optimizer->load_state_dict(c.optimizer, c.optimizer_steps);
  for (const auto& [name, gen] : generators) {
    auto it = c.generators.find(name);
    if (it == c.generators.end()) throw std::runtime_error("checkpoint has no state for generator '" + name + "'");
    gen->set_state(it->second);
  }
}

}  // namespace minitrain::train
