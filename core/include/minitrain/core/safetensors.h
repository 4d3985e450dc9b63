// Reading and writing the safetensors format (https://github.com/huggingface/safetensors).
//
// Layout: an 8-byte little-endian uint64 N, then N bytes of UTF-8 JSON
//   {"__metadata__": {"key": "value", ...},
//    "name": {"dtype": "F32", "shape": [3, 4], "data_offsets": [begin, end]}, ...}
// then the data section. Offsets are byte offsets into the data section; each tensor is stored
// little-endian, row-major and contiguous.
//
// Writing: F32 and F64 tensors (any layout; views are made contiguous). The output is deterministic:
// the JSON lists "__metadata__" (when non-empty) and then the tensors sorted by name; the data section
// holds F64 tensors before F32 tensors, each group sorted by name, with no gaps (so every tensor is
// aligned to its element size, like the reference writer). The header is padded with spaces to a
// multiple of 8 bytes. save_safetensors writes atomically: a temporary file next to `path` is written,
// flushed, fsync'ed and renamed over `path`; on failure the temporary file is removed and `path` is
// left untouched.
//
// Reading: F32 and F64 tensors load as Float32 / Float64; F16 and BF16 are converted to Float32. Other
// dtypes (integers, bool, FP8) are rejected. The reader treats the file as hostile: every structural
// problem (bad header length, malformed JSON, duplicate keys, missing, extra or ill-typed fields,
// unknown dtypes, bad shapes, offsets that do not match the shape, overlap or gaps between tensors,
// a truncated or over-long data section, non-string metadata) throws std::runtime_error whose message
// starts with the file name and names the tensor involved. Nothing is returned unless the whole file
// is valid. The header is capped at 100,000,000 bytes (as in the reference implementation).
//
// Only little-endian hosts are supported (checked at compile time).
#pragma once

#include <minitrain/core/tensor.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace minitrain {

struct SafeTensors {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // the "__metadata__" object
};

// Writes `tensors` and `metadata` to `path` atomically. Throws std::invalid_argument for tensors that
// cannot be stored (undefined, or named "__metadata__", or a name that is not valid UTF-8) and
// std::runtime_error naming the path and the system error for I/O failures.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads a whole file; the tensors are fresh buffers (no mapping of the file is kept). The data section
// is read tensor by tensor, so the peak memory is the tensors plus the header.
SafeTensors load_safetensors(const std::string& path);

// Parses an in-memory file. `source_name` prefixes every error message (a path, or "<memory>").
SafeTensors parse_safetensors(const uint8_t* data, std::size_t size, const std::string& source_name);

// A safetensors file whose header has been read and validated (by the same parser and with the same
// checks as load_safetensors: nothing is trusted), and whose tensors are read one at a time, on request,
// into a buffer the caller owns. A loader that builds its model first and then reads each tensor straight
// into its parameter never holds the file's tensors and the model at once (load_safetensors followed by
// load_state_dict holds both). The data section is read with pread, not mapped: mapped pages that have
// been touched count in the process's resident memory, and the parameter needs its own copy anyway.
class SafeTensorsReader {
 public:
  struct TensorInfo {
    std::string dtype;  // as in the file: "F32", "F64", "F16", "BF16", "I64", "BOOL"
    Shape shape;
  };

  // Opens `path` (a regular file; FIFOs and directories are refused without blocking) and validates its
  // header against its size. Throws std::runtime_error "<path>: ..." as load_safetensors does.
  explicit SafeTensorsReader(const std::string& path);
  // The same over bytes in memory, which must outlive the reader; `source_name` prefixes errors.
  SafeTensorsReader(const uint8_t* data, std::size_t size, const std::string& source_name);
  ~SafeTensorsReader();
  SafeTensorsReader(SafeTensorsReader&&) noexcept;
  SafeTensorsReader& operator=(SafeTensorsReader&&) noexcept;

  const std::string& source() const;
  const std::map<std::string, std::string>& metadata() const;
  const std::map<std::string, TensorInfo>& tensors() const;  // every tensor of the file, by name
  bool contains(const std::string& name) const;

  // Reads tensor `name` into `dst`, which must be defined, contiguous and of the tensor's shape. F32,
  // F64, F16 and BF16 go into a Float32 or Float64 `dst` (converted, a chunk at a time: no copy of the
  // whole tensor is made); I64 into Int64 and BOOL into Bool only. Bumps dst's version. Throws
  // std::invalid_argument for a `dst` that does not fit (naming the tensor and both shapes or dtypes),
  // std::runtime_error for a name the file lacks and for read errors, and for a BOOL byte other than 0, 1.
  void read_into(const std::string& name, Tensor& dst) const;
  // Reads rows [first_row, first_row + dst.size(0)) of tensor `name` (split along its first dimension)
  // into `dst`, whose other dimensions must be the tensor's: a large tensor can be compared or converted
  // a block at a time. The same dtype rules and errors as read_into, and rows past the end are refused.
  void read_rows_into(const std::string& name, int64_t first_row, Tensor& dst) const;
  // The tensor in a fresh buffer, as load_safetensors gives it (F16 and BF16 as Float32).
  Tensor read(const std::string& name) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The bytes save_safetensors writes. Same input, same bytes.
std::string serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

}  // namespace minitrain
