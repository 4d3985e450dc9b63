#include <minitrain/train/checkpoint.h>

#include <minitrain/core/safetensors.h>

#include <cmath>
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
  if (s == Generator::State{})
    throw std::runtime_error(path + ": generator state '" + name + "' is all zeros (xoshiro256** would only return 0)");
  return s;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// A non-negative integer field of the metadata, as save_checkpoint writes it (decimal digits only).
int64_t parse_count(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& path) {
  auto it = meta.find(key);
  if (it == meta.end()) throw std::runtime_error(path + ": checkpoint metadata lacks '" + key + "'");
  const std::string& text = it->second;
  try {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument("not digits");
    return static_cast<int64_t>(std::stoll(text));
  } catch (const std::exception&) {
    throw std::runtime_error(path + ": checkpoint metadata '" + key + "' must be a non-negative integer, got '" +
                             text.substr(0, 40) + "'");
  }
}

// The first element of `t` that is NaN or infinite, or -1. Weights like that would train to NaN at once
// (or, in sample, print garbage), so a checkpoint holding one is refused.
int64_t first_non_finite(const Tensor& t) {
  const std::vector<double> values = t.to_vector<double>();
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) return static_cast<int64_t>(i);
  return -1;
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

void check_finite_tensors(const std::map<std::string, Tensor>& tensors, const std::string& source) {
  for (const auto& [name, t] : tensors) {
    const int64_t bad = first_non_finite(t);
    if (bad >= 0)
      throw std::runtime_error(source + ": tensor '" + name + "' holds a non-finite value (" +
                               std::to_string(t.to_vector<double>()[static_cast<std::size_t>(bad)]) + ") at element " +
                               std::to_string(bad));
  }
}

CheckpointContents checkpoint_from_safetensors(SafeTensors file, const std::string& path) {
  auto format = file.metadata.find(kFormatKey);
  if (format == file.metadata.end())
    throw std::runtime_error(path + ": not a minitrain checkpoint (no '" + std::string(kFormatKey) + "' in metadata)");
  if (format->second != "1")
    throw std::runtime_error(path + ": '" + std::string(kFormatKey) + "' is '" + format->second.substr(0, 40) +
                             "'; this version reads format 1 only");
  CheckpointContents c;
  c.path = path;
  c.iter = parse_count(file.metadata, "iter", path);
  check_finite_tensors(file.tensors, path);
  for (auto& [name, t] : file.tensors) {
    if (starts_with(name, kModelPrefix))
      c.model[name.substr(6)] = t;
    else if (starts_with(name, kOptimPrefix))
      c.optimizer[name.substr(6)] = t;
    else
      throw std::runtime_error(path + ": unexpected tensor '" + name + "' in checkpoint");
  }
  // Optimizer moments without a step count would restart bias correction at step 1.
  if (!c.optimizer.empty() || file.metadata.count("optimizer.steps"))
    c.optimizer_steps = parse_count(file.metadata, "optimizer.steps", path);
  for (auto& [key, value] : file.metadata) {
    if (starts_with(key, kRngPrefix))
      c.generators[key.substr(4)] = decode_state(value, path, key.substr(4));
    else
      c.metadata[key] = value;
  }
  return c;
}

CheckpointContents load_checkpoint(const std::string& path) {
  return checkpoint_from_safetensors(load_safetensors(path), path);
}

const std::string& CheckpointContents::metadata_value(const std::string& key) const {
  auto it = metadata.find(key);
  if (it == metadata.end()) throw std::runtime_error(path + ": the checkpoint has no '" + key + "' in its metadata");
  return it->second;
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
