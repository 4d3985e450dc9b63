// Internal: what every Hugging Face format shares (a model directory holding config.json and
// model.safetensors), so that each format file (hf_gpt2.cpp, and hf_llama.cpp beside it) holds only its own
// layout: which tensor of the file goes into which parameter, stored how, and the config.json fields.
//
// Loading a model goes: config.json -> a config; the file's names and shapes checked against what that
// config makes (before anything is allocated); the model built; then every tensor read straight into its
// parameter (read_placements), so the file's weights and the model are never in memory twice.
#pragma once

#include <minitrain/core/safetensors.h>
#include <minitrain/core/tensor.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/imported_gpt.h>

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace minitrain::train::detail {

std::string hf_config_path(const std::string& dir);   // <dir>/config.json
std::string hf_weights_path(const std::string& dir);  // <dir>/model.safetensors

// <dir>/config.json as a JSON object. Throws std::invalid_argument naming the path: no directory, no
// config.json, not JSON, not an object, larger than 16 MiB.
nlohmann::json read_hf_config(const std::string& dir);
// config.json's "model_type" ("gpt2", "llama", ...), or a one-line error naming the file.
std::string hf_model_type(const nlohmann::json& config, const std::string& source);

// `config` with the settings' dropout and seed; a dropout outside [0, 1) is refused naming it.
nn::GPTConfig apply_import_settings(nn::GPTConfig config, const ImportSettings& settings);

// <dir>/model.safetensors opened with its header validated. A directory holding only a sharded checkpoint
// (model.safetensors.index.json) or PyTorch pickles (pytorch_model.bin) gets a line saying so.
SafeTensorsReader open_hf_weights(const std::string& dir);

// How a tensor is stored in the file relative to minitrain's parameter.
enum class FileLayout {
  AsIs,        // the same shape and element order
  Transposed,  // a matrix stored as its transpose: GPT-2's Conv1D keeps (in, out), Linear (out, in)
};

// One tensor of the file and the parameter it fills.
struct TensorPlacement {
  std::string file_name;
  Tensor destination;  // the model's parameter: contiguous, the minitrain shape
  FileLayout layout = FileLayout::AsIs;
};

// The shape the file must hold for a parameter of `shape` stored with `layout`.
Shape file_shape(const Shape& shape, FileLayout layout);

// Checks, before the model is allocated, that the file holds exactly the expected tensors: each name of
// `expected` present, of a floating-point dtype, with its shape; every other tensor of the file either
// accepted by `ignored` (buffers such as GPT-2's attention masks) or refused as unexpected. Throws
// std::invalid_argument "<file>: ..." naming the first tensor that disagrees.
void check_file_tensors(const SafeTensorsReader& file, const std::map<std::string, Shape>& expected,
                        bool (*ignored)(const std::string& name));

// The layer indices i of the file's tensors named <layers_prefix><i>.* ("transformer.h.", "model.layers."),
// so that the list of expected tensors is only made for a model of the file's size. A name whose index is
// not a number is refused as an unexpected tensor.
std::set<int64_t> file_layer_indices(const SafeTensorsReader& file, const std::string& layers_prefix);

// Reads each placement's tensor into its destination (a transposed one through one temporary of its
// size), then checks its values are finite. Throws std::invalid_argument "<file>: tensor '<name>' ...".
void read_placements(const SafeTensorsReader& file, const std::vector<TensorPlacement>& placements);

// Throws std::invalid_argument "<file>: '<b>' differs from '<a>' ..." unless the file's tensor `b` holds
// exactly the values of `a` (already read into `a_values`), compared a row at a time.
void check_file_tensor_equals(const SafeTensorsReader& file, const std::string& b, const Tensor& a_values,
                              const std::string& a, const std::string& why);

// Writes <dir>/model.safetensors (`tensors`, `metadata`) and then <dir>/config.json (`config`, indented as
// transformers writes it), each atomically; `dir` is created when missing. A reader that sees the new
// config.json therefore finds the new weights beside it.
void write_hf_directory(const std::string& dir, const nlohmann::json& config,
                        const std::map<std::string, Tensor>& tensors, const std::map<std::string, std::string>& metadata);

}  // namespace minitrain::train::detail
