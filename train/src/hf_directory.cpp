#include "hf_directory.h"

#include <minitrain/core/factory.h>
#include <minitrain/core/regular_file.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>

namespace minitrain::train::detail {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxConfigBytes = uint64_t{16} << 20;  // config.json files are a few KB
constexpr int64_t kRowsPerBlock = 1024;                     // rows compared at a time

std::string shape_text(const Shape& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + ")";
}

bool is_float_dtype(const std::string& dtype) {
  return dtype == "F32" || dtype == "F64" || dtype == "F16" || dtype == "BF16";
}

// The index of the first non-finite value of a contiguous floating-point tensor, or -1. Scans the buffer
// itself: a copy (to_vector) would double the memory of a vocabulary-sized tensor.
int64_t first_non_finite(const Tensor& t) {
  const int64_t n = t.numel();
  if (t.dtype() == DType::Float32) {
    const float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) return i;
  } else {
    const double* p = t.data<double>();
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) return i;
  }
  return -1;
}

double value_at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::Float32 ? t.data<float>()[i] : t.data<double>()[i];
}

}  // namespace

std::string hf_config_path(const std::string& dir) { return (fs::path(dir) / "config.json").string(); }
std::string hf_weights_path(const std::string& dir) { return (fs::path(dir) / "model.safetensors").string(); }

json read_hf_config(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::invalid_argument(dir + ": not a directory (a Hugging Face model directory holds config.json and "
                                "model.safetensors)");
  const std::string path = hf_config_path(dir);
  std::string text;
  try {
    text = read_regular_file(path, kMaxConfigBytes);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());
  }
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::invalid_argument(path + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument(path + ": not a JSON object");
  return j;
}

std::string hf_model_type(const json& config, const std::string& source) {
  auto it = config.find("model_type");
  if (it == config.end()) throw std::invalid_argument(source + ": missing 'model_type'");
  if (!it->is_string()) throw std::invalid_argument(source + ": 'model_type' must be a string");
  return it->get<std::string>();
}

nn::GPTConfig apply_import_settings(nn::GPTConfig config, const ImportSettings& settings) {
  if (settings.dropout) {
    if (!(*settings.dropout >= 0 && *settings.dropout < 1))
      throw std::invalid_argument("import: dropout must be in [0, 1), got " + std::to_string(*settings.dropout));
    config.dropout = *settings.dropout;
  }
  if (settings.seed) config.seed = *settings.seed;
  return config;
}

SafeTensorsReader open_hf_weights(const std::string& dir) {
  const std::string path = hf_weights_path(dir);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    std::string why = "no model.safetensors";
    if (fs::exists(fs::path(dir) / "model.safetensors.index.json", ec))
      why += " (the checkpoint is sharded into several files, which minitrain does not read yet)";
    else if (fs::exists(fs::path(dir) / "pytorch_model.bin", ec))
      why += " (only pytorch_model.bin, a pickle, which minitrain does not read: download the safetensors file)";
    throw std::invalid_argument(dir + ": " + why);
  }
  try {
    return SafeTensorsReader(path);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());
  }
}

Shape file_shape(const Shape& shape, FileLayout layout) {
  if (layout == FileLayout::Transposed) return Shape(shape.rbegin(), shape.rend());
  return shape;
}

void check_file_tensors(const SafeTensorsReader& file, const std::map<std::string, Shape>& expected,
                        bool (*ignored)(const std::string& name)) {
  auto fail = [&](const std::string& problem) { throw std::invalid_argument(file.source() + ": " + problem); };
  for (const auto& [name, shape] : expected) {
    auto it = file.tensors().find(name);
    if (it == file.tensors().end()) fail("missing tensor '" + name + "'");
    if (!is_float_dtype(it->second.dtype))
      fail("tensor '" + name + "' is " + it->second.dtype + "; a weight must be F32, F64, F16 or BF16");
    if (it->second.shape != shape)
      fail("tensor '" + name + "' is " + shape_text(it->second.shape) + " but config.json makes it " +
           shape_text(shape));
  }
  for (const auto& entry : file.tensors())
    if (!expected.count(entry.first) && !(ignored && ignored(entry.first)))
      fail("unexpected tensor '" + entry.first + "'");
}

std::set<int64_t> file_layer_indices(const SafeTensorsReader& file, const std::string& layers_prefix) {
  std::set<int64_t> layers;
  for (const auto& entry : file.tensors()) {
    const std::string& name = entry.first;
    if (name.compare(0, layers_prefix.size(), layers_prefix) != 0) continue;
    const std::size_t dot = name.find('.', layers_prefix.size());
    const std::string index =
        name.substr(layers_prefix.size(), dot == std::string::npos ? std::string::npos : dot - layers_prefix.size());
    if (index.empty() || index.size() > 9 || index.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument(file.source() + ": unexpected tensor '" + name + "'");
    layers.insert(std::stoll(index));
  }
  return layers;
}

void read_placements(const SafeTensorsReader& file, const std::vector<TensorPlacement>& placements) {
  NoGradGuard no_grad;
  for (const TensorPlacement& p : placements) {
    Tensor dst = p.destination;
    try {
      if (p.layout == FileLayout::AsIs) {
        file.read_into(p.file_name, dst);
      } else {
        // Conv1D's (in, out) into Linear's (out, in): one temporary of this tensor's size.
        Tensor stored = empty(file_shape(dst.shape(), p.layout), dst.dtype());
        file.read_into(p.file_name, stored);
        dst.copy_(stored.transpose(0, 1));
      }
    } catch (const std::runtime_error& e) {
      throw std::invalid_argument(e.what());
    }
    const int64_t bad = first_non_finite(dst);
    if (bad >= 0)
      throw std::invalid_argument(file.source() + ": tensor '" + p.file_name + "' holds a non-finite value (" +
                                  std::to_string(value_at(dst, bad)) + ") at element " + std::to_string(bad));
  }
}

void check_file_tensor_equals(const SafeTensorsReader& file, const std::string& b, const Tensor& a_values,
                              const std::string& a, const std::string& why) {
  const int64_t rows = a_values.size(0);
  const Tensor a_flat = a_values.contiguous();
  const int64_t row_elements = rows == 0 ? 0 : a_flat.numel() / rows;
  for (int64_t first = 0; first < rows; first += kRowsPerBlock) {
    Shape block_shape = a_flat.shape();
    block_shape[0] = std::min(kRowsPerBlock, rows - first);
    Tensor block = empty(block_shape, a_flat.dtype());
    try {
      file.read_rows_into(b, first, block);
    } catch (const std::runtime_error& e) {
      throw std::invalid_argument(e.what());
    }
    const int64_t n = block.numel(), offset = first * row_elements;
    for (int64_t i = 0; i < n; ++i) {
      if (value_at(block, i) != value_at(a_flat, offset + i))
        throw std::invalid_argument(file.source() + ": '" + b + "' differs from '" + a + "' (element " +
                                    std::to_string(offset + i) + ": " + std::to_string(value_at(block, i)) + " vs " +
                                    std::to_string(value_at(a_flat, offset + i)) + "); " + why);
    }
  }
}

void write_hf_directory(const std::string& dir, const json& config, const std::map<std::string, Tensor>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir + ": cannot create the directory: " + ec.message());
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": exists and is not a directory");
  // The weights first: config.json names what they are, so it is replaced last.
  save_safetensors(hf_weights_path(dir), tensors, metadata);
  write_file_atomically(hf_config_path(dir), config.dump(2) + "\n", "export");
}

}  // namespace minitrain::train::detail
