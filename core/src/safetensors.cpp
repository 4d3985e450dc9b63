// safetensors reader and writer; the format and the guarantees are described in safetensors.h.
//
// Reading happens in three steps, shared by parse_safetensors (bytes in memory) and load_safetensors
// (a file read piece by piece): check the length prefix, parse and validate the whole header against
// the size of the data section, and only then allocate tensors and copy their bytes.
#include <minitrain/core/safetensors.h>

#include <minitrain/core/factory.h>
#include <minitrain/core/regular_file.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <stdexcept>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// Tensor bytes are copied as they are, so the host must store numbers like the file does.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "minitrain's safetensors I/O requires a little-endian host"
#endif

namespace minitrain {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr int kMaxJsonDepth = 8;                    // a valid header nests 3 deep
constexpr std::size_t kMaxRank = 64;
constexpr std::size_t kMaxQuotedBytes = 120;        // longer names are shortened in messages
constexpr std::size_t kMaxParserMessage = 300;

// ---------------------------------------------------------------------------------------------------
// Error messages.

[[noreturn]] void fail(const std::string& source, const std::string& problem) {
  throw std::runtime_error(source + ": " + problem);
}

// 'text' for a message: control bytes escaped, long text cut at a UTF-8 character boundary.
std::string quote_name(const std::string& text) {
  std::size_t n = text.size();
  if (n > kMaxQuotedBytes) {
    n = kMaxQuotedBytes;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  }
  std::string out = "'";
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F) {
      static const char* const kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (n < text.size()) out += "...";
  return out + "'";
}

std::string format_shape(const Shape& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::string format_offsets(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// A short description of a JSON value of the wrong kind: numbers as written, the type otherwise.
std::string describe(const json& value) {
  if (value.is_number()) return value.dump();
  if (value.is_string()) return "string " + quote_name(value.get_ref<const std::string&>());
  return value.type_name();
}

std::string errno_text(int err) { return std::generic_category().message(err); }

// ---------------------------------------------------------------------------------------------------
// Dtypes.

enum class FileDType { F32, F64, F16, BF16, I64, BOOL };

struct FileDTypeInfo {
  const char* name;
  FileDType dtype;
  uint64_t itemsize;
};

constexpr FileDTypeInfo kReadableDTypes[] = {
    {"F32", FileDType::F32, 4}, {"F64", FileDType::F64, 8}, {"F16", FileDType::F16, 2},
    {"BF16", FileDType::BF16, 2}, {"I64", FileDType::I64, 8}, {"BOOL", FileDType::BOOL, 1}};

// Part of the format, but not something minitrain can hold.
constexpr const char* kUnsupportedDTypes[] = {"U8",      "I8",      "I16", "U16",     "I32",     "U32",
                                              "U64",     "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3",
                                              "F6_E3M2", "C64"};

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  const uint32_t mantissa = h & 0x3FFu;
  uint32_t bits = 0;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);  // inf, nan (payload kept)
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
    return sign != 0 ? -magnitude : magnitude;
  }
  float f = 0;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float bfloat16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f = 0;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// ---------------------------------------------------------------------------------------------------
// Header parsing and validation.

struct Entry {
  std::string name;
  const FileDTypeInfo* dtype = nullptr;
  Shape shape;
  uint64_t numel = 0;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct Header {
  std::vector<Entry> entries;  // sorted by name
  std::map<std::string, std::string> metadata;
};

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The header length from the 8-byte prefix, checked against the file size.
uint64_t checked_header_length(const uint8_t* prefix, uint64_t file_size, const std::string& source) {
  const uint64_t n = read_le64(prefix);
  if (n > kMaxHeaderBytes) {
    fail(source, "header length " + std::to_string(n) + " exceeds the limit of " +
                     std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (n > file_size - 8) {
    fail(source, "header length " + std::to_string(n) + " exceeds the file size (" +
                     std::to_string(file_size) + " bytes)");
  }
  return n;
}

// Parses the header JSON, rejecting duplicate keys (which nlohmann::json would silently merge) and
// deep nesting while parsing.
json parse_header_json(const char* text, std::size_t size, const std::string& source) {
  if (size == 0 || text[0] != '{') fail(source, "header is not a JSON object (it must start with '{')");

  std::vector<std::set<std::string>> keys_seen;  // one per open container (empty for arrays)
  std::string tensor;                            // the top-level key being parsed
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) {
          fail(source, "header JSON is nested more than " + std::to_string(kMaxJsonDepth) + " deep");
        }
        keys_seen.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        keys_seen.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!keys_seen.back().insert(key).second) {
          if (keys_seen.size() == 1) fail(source, "duplicate tensor name " + quote_name(key));
          const std::string owner =
              tensor == "__metadata__" ? "__metadata__" : "tensor " + quote_name(tensor);
          fail(source, owner + ": duplicate key " + quote_name(key));
        }
        if (keys_seen.size() == 1) tensor = key;
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text, text + size, callback);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (what.size() > kMaxParserMessage) what = what.substr(0, kMaxParserMessage) + "...";
    fail(source, std::string("header is not valid JSON: ") + what);
  }
}

// A JSON value as a non-negative integer; false for negative numbers, floats (even 3.0), and
// anything that is not a number.
bool as_uint64(const json& value, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return true;
  }
  if (value.is_number_integer()) {
    const auto v = value.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

// *out = a * b, or false when the product would exceed `limit`.
bool checked_mul(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out) {
  if (b != 0 && a > limit / b) return false;
  *out = a * b;
  return true;
}

const FileDTypeInfo& parse_dtype(const json& value, const std::string& where, const std::string& source) {
  if (!value.is_string()) fail(source, where + ": dtype must be a string, got " + describe(value));
  const auto& name = value.get_ref<const std::string&>();
  for (const auto& info : kReadableDTypes) {
    if (name == info.name) return info;
  }
  for (const char* unsupported : kUnsupportedDTypes) {
    if (name == unsupported) {
      fail(source, where + ": dtype " + quote_name(name) +
                       " is not supported (minitrain reads F32, F64, F16, BF16, I64 and BOOL)");
    }
  }
  fail(source, where + ": unknown dtype " + quote_name(name));
}

Shape parse_shape(const json& value, const std::string& where, const std::string& source) {
  if (!value.is_array()) {
    fail(source, where + ": shape must be an array of non-negative integers, got " + describe(value));
  }
  if (value.size() > kMaxRank) {
    fail(source, where + ": shape has " + std::to_string(value.size()) + " dimensions (at most " +
                     std::to_string(kMaxRank) + " are supported)");
  }
  Shape shape;
  for (std::size_t i = 0; i < value.size(); ++i) {
    uint64_t dim = 0;
    if (!as_uint64(value[i], &dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(source, where + ": shape[" + std::to_string(i) + "] = " + describe(value[i]) +
                       " is not a non-negative int64");
    }
    shape.push_back(static_cast<int64_t>(dim));
  }
  return shape;
}

Entry parse_entry(const std::string& name, const json& value, uint64_t data_size,
                  const std::string& source) {
  const std::string where = "tensor " + quote_name(name);
  if (!value.is_object()) fail(source, where + ": entry must be an object, got " + describe(value));
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets") {
      fail(source, where + ": unexpected field " + quote_name(it.key()));
    }
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(field)) fail(source, where + ": missing field '" + field + "'");
  }

  Entry entry;
  entry.name = name;
  entry.dtype = &parse_dtype(value["dtype"], where, source);
  entry.shape = parse_shape(value["shape"], where, source);

  // The element count must fit in int64, and so must the product of the non-zero dims (strides of a
  // [0, 2^62, 2^62] tensor would overflow even though it has no elements). So must the byte count.
  const uint64_t int64_max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t numel = 1;
  uint64_t nonzero_product = 1;
  bool fits = true;
  for (int64_t d : entry.shape) {
    const auto dim = static_cast<uint64_t>(d);
    fits = fits && checked_mul(numel, dim, int64_max, &numel) &&
           checked_mul(nonzero_product, std::max<uint64_t>(dim, 1), int64_max, &nonzero_product);
  }
  uint64_t nbytes = 0;
  fits = fits && checked_mul(numel, entry.dtype->itemsize, int64_max, &nbytes);
  if (!fits) {
    fail(source, where + ": shape " + format_shape(entry.shape) + " of " + entry.dtype->name +
                     " is too large (its size overflows int64)");
  }
  entry.numel = numel;

  const json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !as_uint64(offsets[0], &entry.begin) ||
      !as_uint64(offsets[1], &entry.end)) {
    std::string got = describe(offsets);
    if (offsets.is_array() && offsets.size() != 2) {
      got = "an array of " + std::to_string(offsets.size()) + " elements";
    } else if (offsets.is_array()) {
      got = "[" + describe(offsets[0]) + ", " + describe(offsets[1]) + "]";
    }
    fail(source, where + ": data_offsets must be [begin, end] of non-negative integers, got " + got);
  }
  const std::string offsets_text = "data_offsets " + format_offsets(entry.begin, entry.end);
  if (entry.begin > entry.end) fail(source, where + ": " + offsets_text + " have begin > end");
  if (entry.end - entry.begin != nbytes) {
    fail(source, where + ": " + offsets_text + " do not match shape " + format_shape(entry.shape) +
                     " of " + entry.dtype->name + " (" + std::to_string(nbytes) + " bytes)");
  }
  if (entry.end > data_size) {
    fail(source, where + ": " + offsets_text + " extend past the end of the data section (" +
                     std::to_string(data_size) + " bytes; truncated file?)");
  }
  return entry;
}

// Checks the whole header against a data section of `data_size` bytes.
Header validate_header(const json& root, uint64_t data_size, const std::string& source) {
  if (!root.is_object()) fail(source, "header is not a JSON object");
  Header header;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& key = it.key();
    const json& value = it.value();
    if (key == "__metadata__") {
      if (!value.is_object()) {
        fail(source, "__metadata__ must be an object of strings, got " + describe(value));
      }
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string()) {
          fail(source, "__metadata__: value of " + quote_name(m.key()) + " must be a string, got " +
                           describe(m.value()));
        }
        header.metadata.emplace(m.key(), m.value().get<std::string>());
      }
      continue;
    }
    header.entries.push_back(parse_entry(key, value, data_size, source));
  }

  // The tensors must tile the data section exactly: no overlap, no gap, nothing after the last one
  // (the reference implementation enforces the same).
  std::vector<const Entry*> by_offset;
  for (const Entry& e : header.entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : by_offset) {
    const std::string where = "tensor " + quote_name(e->name) + ": data_offsets " + format_offsets(e->begin, e->end);
    if (e->begin < covered) {
      fail(source, where + " overlap tensor " + quote_name(previous->name) + " at " +
                       format_offsets(previous->begin, previous->end));
    }
    if (e->begin > covered) {
      fail(source, where + " leave a gap of " + std::to_string(e->begin - covered) + " bytes after " +
                       (previous != nullptr ? "tensor " + quote_name(previous->name)
                                            : std::string("the start of the data section")));
    }
    covered = e->end;
    previous = e;
  }
  if (covered != data_size) {
    fail(source, "the data section has " + std::to_string(data_size - covered) +
                     " trailing bytes after the last tensor (" + std::to_string(data_size) +
                     " bytes, tensors cover " + std::to_string(covered) + ")");
  }
  return header;
}

// ---------------------------------------------------------------------------------------------------
// Building tensors once everything is valid.

// Copies `n` bytes at `offset` in the data section to `dst` (or throws).
using ReadBytes = std::function<void(uint64_t offset, std::size_t n, uint8_t* dst)>;

// The dtype a tensor of this file dtype loads as when the caller does not choose.
DType natural_dtype(FileDType d) {
  switch (d) {
    case FileDType::F64: return DType::Float64;
    case FileDType::I64: return DType::Int64;
    case FileDType::BOOL: return DType::Bool;
    case FileDType::F32:
    case FileDType::F16:
    case FileDType::BF16: break;
  }
  return DType::Float32;
}

bool is_float_file_dtype(FileDType d) { return d != FileDType::I64 && d != FileDType::BOOL; }

// One stored element as a double (exact for every F16, BF16, F32 and F64 value).
double file_float(FileDType d, const uint8_t* p) {
  switch (d) {
    case FileDType::F32: { float f; std::memcpy(&f, p, 4); return f; }
    case FileDType::F64: { double v; std::memcpy(&v, p, 8); return v; }
    case FileDType::F16: { uint16_t h; std::memcpy(&h, p, 2); return half_to_float(h); }
    case FileDType::BF16: { uint16_t h; std::memcpy(&h, p, 2); return bfloat16_to_float(h); }
    case FileDType::I64:
    case FileDType::BOOL: break;
  }
  throw std::logic_error("safetensors: not a floating-point dtype");
}

// Reads entry `e` into `out` (numel elements of T). When the file stores exactly T, the bytes go straight
// into `out`; otherwise they pass through a small buffer a chunk at a time and are converted, so no copy
// of the whole tensor is ever made.
template <class T>
void read_elements(const Entry& e, const ReadBytes& read, T* out, const std::string& source) {
  const uint64_t itemsize = e.dtype->itemsize;
  const bool same = (std::is_same<T, float>::value && e.dtype->dtype == FileDType::F32) ||
                    (std::is_same<T, double>::value && e.dtype->dtype == FileDType::F64) ||
                    (std::is_same<T, int64_t>::value && e.dtype->dtype == FileDType::I64);
  if (same) {
    if (e.numel > 0) read(e.begin, static_cast<std::size_t>(e.end - e.begin), reinterpret_cast<uint8_t*>(out));
    return;
  }
  constexpr uint64_t kChunk = uint64_t{1} << 16;  // elements per read
  std::vector<uint8_t> raw(static_cast<std::size_t>(std::min(e.numel, kChunk) * itemsize));
  for (uint64_t first = 0; first < e.numel; first += kChunk) {
    const uint64_t n = std::min(kChunk, e.numel - first);
    read(e.begin + first * itemsize, static_cast<std::size_t>(n * itemsize), raw.data());
    for (uint64_t i = 0; i < n; ++i) {
      const uint8_t* p = raw.data() + i * itemsize;
      if constexpr (std::is_same<T, bool>::value) {
        // A byte other than 0 or 1 is not a bool, and reading it as one is undefined.
        if (*p > 1)
          fail(source, "tensor " + quote_name(e.name) + ": BOOL element " + std::to_string(first + i) +
                           " (data offset " + std::to_string(e.begin + (first + i) * itemsize) + ") holds byte " +
                           std::to_string(*p) + ", not 0 or 1");
        out[first + i] = *p != 0;
      } else {
        out[first + i] = static_cast<T>(file_float(e.dtype->dtype, p));
      }
    }
  }
}

// Reads entry `e` into `dst` (contiguous, e's shape; a floating-point dtype for float entries, the
// entry's own dtype otherwise).
void read_into_tensor(const Entry& e, const ReadBytes& read, Tensor& dst, const std::string& source) {
  const std::string where = source + ": tensor " + quote_name(e.name) + ": ";
  if (!dst.defined()) throw std::invalid_argument(where + "the destination tensor is undefined");
  if (dst.shape() != e.shape)
    throw std::invalid_argument(where + "shape " + format_shape(e.shape) + " in the file, but the destination is " +
                                format_shape(dst.shape()));
  if (!dst.is_contiguous()) throw std::invalid_argument(where + "the destination is not contiguous");
  const bool fits = is_float_file_dtype(e.dtype->dtype) ? is_floating_point(dst.dtype())
                                                        : dst.dtype() == natural_dtype(e.dtype->dtype);
  if (!fits)
    throw std::invalid_argument(where + e.dtype->name + " in the file cannot be read into a " +
                                dtype_name(dst.dtype()) + " tensor");
  switch (dst.dtype()) {
    case DType::Float32: read_elements(e, read, dst.data<float>(), source); break;
    case DType::Float64: read_elements(e, read, dst.data<double>(), source); break;
    case DType::Int64: read_elements(e, read, dst.data<int64_t>(), source); break;
    case DType::Bool: read_elements(e, read, dst.data<bool>(), source); break;
  }
  dst.bump_version();
}

Tensor read_tensor(const Entry& e, const ReadBytes& read, const std::string& source) {
  Tensor t = empty(e.shape, natural_dtype(e.dtype->dtype));
  read_into_tensor(e, read, t, source);
  return t;
}

// The buffer of a contiguous tensor as bytes (a bool is one byte, 0 or 1, as the format's BOOL).
const char* raw_bytes(const Tensor& t) {
  switch (t.dtype()) {
    case DType::Float32: return reinterpret_cast<const char*>(t.data<float>());
    case DType::Float64: return reinterpret_cast<const char*>(t.data<double>());
    case DType::Int64: return reinterpret_cast<const char*>(t.data<int64_t>());
    case DType::Bool: break;
  }
  return reinterpret_cast<const char*>(t.data<bool>());
}

SafeTensors build(Header&& header, const ReadBytes& read, const std::string& source) {
  SafeTensors result;
  for (const Entry& e : header.entries) result.tensors.emplace(e.name, read_tensor(e, read, source));
  result.metadata = std::move(header.metadata);
  return result;
}

// ---------------------------------------------------------------------------------------------------
// Writing.

// A JSON string literal; throws for text that is not valid UTF-8.
std::string json_string(const std::string& text, const std::string& what) {
  try {
    return json(text).dump();
  } catch (const json::exception&) {
    throw std::invalid_argument("serialize_safetensors: " + what + " " + quote_name(text) +
                                " is not valid UTF-8");
  }
}

void append_le64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

}  // namespace

std::string serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    Tensor data;  // contiguous
    const char* dtype;
    uint64_t itemsize;
    uint64_t begin;
    uint64_t end;
  };
  std::vector<Item> items;  // by name
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") {
      throw std::invalid_argument(
          "serialize_safetensors: a tensor cannot be named '__metadata__' (the key holds metadata)");
    }
    if (!tensor.defined()) {
      throw std::invalid_argument("serialize_safetensors: tensor " + quote_name(name) + " is undefined");
    }
    Item item{&name, tensor.detach().contiguous(), nullptr, 0, 0, 0};
    switch (tensor.dtype()) {
      case DType::Float32: item.dtype = "F32"; item.itemsize = 4; break;
      case DType::Float64: item.dtype = "F64"; item.itemsize = 8; break;
      case DType::Int64: item.dtype = "I64"; item.itemsize = 8; break;
      case DType::Bool: item.dtype = "BOOL"; item.itemsize = 1; break;
    }
    if (item.dtype == nullptr) {
      throw std::invalid_argument("serialize_safetensors: tensor " + quote_name(name) + " has dtype " +
                                  dtype_name(tensor.dtype()) + ", which safetensors cannot store");
    }
    items.push_back(std::move(item));
  }

  // Data order: wider elements first, then by name, so each tensor is aligned to its element size.
  std::vector<Item*> data_order;
  for (Item& item : items) data_order.push_back(&item);
  std::stable_sort(data_order.begin(), data_order.end(),
                   [](const Item* a, const Item* b) { return a->itemsize > b->itemsize; });
  uint64_t data_size = 0;
  for (Item* item : data_order) {
    item->begin = data_size;
    data_size += static_cast<uint64_t>(item->data.numel()) * item->itemsize;
    item->end = data_size;
  }

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) header += ",";
      first = false;
      header += json_string(key, "metadata key") + ":" + json_string(value, "metadata value of " + quote_name(key));
    }
    header += "}";
  }
  for (const Item& item : items) {
    if (header.size() > 1) header += ",";
    header += json_string(*item.name, "tensor name") + ":{\"dtype\":\"" + item.dtype + "\",\"shape\":" +
              format_shape(item.data.shape()) + ",\"data_offsets\":[" + std::to_string(item.begin) +
              "," + std::to_string(item.end) + "]}";
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + header.size() + static_cast<std::size_t>(data_size));
  append_le64(&out, header.size());
  out += header;
  for (const Item* item : data_order) {
    const auto nbytes = static_cast<std::size_t>(item->end - item->begin);
    if (nbytes == 0) continue;
    out.append(raw_bytes(item->data), nbytes);
  }
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::string bytes;
  try {
    bytes = serialize_safetensors(tensors, metadata);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }

  write_file_atomically(path, bytes, "save_safetensors");
}

namespace {

// A validated header and the means to read the data section it describes: the one way into a file,
// shared by parse_safetensors, load_safetensors and SafeTensorsReader.
struct OpenedFile {
  std::string source;
  Header header;
  std::unique_ptr<RegularFile> file;  // when reading from disk
  ReadBytes read;                     // reads from the data section
};

OpenedFile open_memory(const uint8_t* data, std::size_t size, const std::string& source_name) {
  if (size < 8) {
    fail(source_name, "file is too small (" + std::to_string(size) +
                          " bytes) to hold the 8-byte header length");
  }
  const uint64_t header_size = checked_header_length(data, size, source_name);
  const uint8_t* header_text = data + 8;
  const uint64_t data_size = size - 8 - header_size;
  OpenedFile out;
  out.source = source_name;
  out.header = validate_header(
      parse_header_json(reinterpret_cast<const char*>(header_text), header_size, source_name),
      data_size, source_name);
  const uint8_t* data_section = header_text + header_size;
  out.read = [data_section](uint64_t offset, std::size_t n, uint8_t* dst) {
    std::memcpy(dst, data_section + offset, n);
  };
  return out;
}

OpenedFile open_path(const std::string& path) {
  OpenedFile out;
  out.source = path;
  out.file = std::make_unique<RegularFile>(path);  // refuses FIFOs and directories without blocking on them
  const int fd = out.file->fd();
  const uint64_t file_size = out.file->size();

  // Reads exactly n bytes at `offset` in the file; a file that shrank since fstat is an error.
  auto read_at = [fd, path](uint64_t offset, std::size_t n, uint8_t* dst) {
    while (n > 0) {
      const std::size_t chunk = std::min<std::size_t>(n, std::size_t{1} << 30);
      const ssize_t got = ::pread(fd, dst, chunk, static_cast<off_t>(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        fail(path, "read error: " + errno_text(errno));
      }
      if (got == 0) fail(path, "file ended early (was it truncated while being read?)");
      dst += got;
      offset += static_cast<uint64_t>(got);
      n -= static_cast<std::size_t>(got);
    }
  };

  if (file_size < 8) {
    fail(path, "file is too small (" + std::to_string(file_size) +
                   " bytes) to hold the 8-byte header length");
  }
  uint8_t prefix[8];
  read_at(0, 8, prefix);
  const uint64_t header_size = checked_header_length(prefix, file_size, path);
  {
    std::string text(static_cast<std::size_t>(header_size), '\0');
    read_at(8, text.size(), reinterpret_cast<uint8_t*>(&text[0]));
    out.header = validate_header(parse_header_json(text.data(), text.size(), path),
                                 file_size - 8 - header_size, path);
  }
  const uint64_t data_start = 8 + header_size;
  out.read = [read_at, data_start](uint64_t offset, std::size_t n, uint8_t* dst) {
    read_at(data_start + offset, n, dst);
  };
  return out;
}

}  // namespace

SafeTensors parse_safetensors(const uint8_t* data, std::size_t size, const std::string& source_name) {
  OpenedFile f = open_memory(data, size, source_name);
  return build(std::move(f.header), f.read, f.source);
}

SafeTensors load_safetensors(const std::string& path) {
  OpenedFile f = open_path(path);
  return build(std::move(f.header), f.read, f.source);
}

// ---------------------------------------------------------------------------------------------------
// Reading tensor by tensor.

struct SafeTensorsReader::State {
  OpenedFile file;
  std::map<std::string, TensorInfo> infos;
  std::map<std::string, const Entry*> entries;

  explicit State(OpenedFile f) : file(std::move(f)) {
    for (const Entry& e : file.header.entries) {
      infos.emplace(e.name, TensorInfo{e.dtype->name, e.shape});
      entries.emplace(e.name, &e);
    }
  }
  const Entry& entry(const std::string& name) const {
    auto it = entries.find(name);
    if (it == entries.end()) fail(file.source, "no tensor " + quote_name(name) + " in the file");
    return *it->second;
  }
};

SafeTensorsReader::SafeTensorsReader(const std::string& path)
    : state_(std::make_unique<State>(open_path(path))) {}
SafeTensorsReader::SafeTensorsReader(const uint8_t* data, std::size_t size, const std::string& source_name)
    : state_(std::make_unique<State>(open_memory(data, size, source_name))) {}
SafeTensorsReader::~SafeTensorsReader() = default;
SafeTensorsReader::SafeTensorsReader(SafeTensorsReader&&) noexcept = default;
SafeTensorsReader& SafeTensorsReader::operator=(SafeTensorsReader&&) noexcept = default;

const std::string& SafeTensorsReader::source() const { return state_->file.source; }
const std::map<std::string, std::string>& SafeTensorsReader::metadata() const { return state_->file.header.metadata; }
const std::map<std::string, SafeTensorsReader::TensorInfo>& SafeTensorsReader::tensors() const { return state_->infos; }
bool SafeTensorsReader::contains(const std::string& name) const { return state_->entries.count(name) > 0; }

void SafeTensorsReader::read_into(const std::string& name, Tensor& dst) const {
  read_into_tensor(state_->entry(name), state_->file.read, dst, state_->file.source);
}

void SafeTensorsReader::read_rows_into(const std::string& name, int64_t first_row, Tensor& dst) const {
  const Entry& e = state_->entry(name);
  const std::string& source = state_->file.source;
  const std::string where = source + ": tensor " + quote_name(e.name) + ": ";
  if (e.shape.empty()) throw std::invalid_argument(where + "a scalar has no rows");
  if (!dst.defined() || dst.dim() != static_cast<int64_t>(e.shape.size()))
    throw std::invalid_argument(where + "rows of shape " + format_shape(e.shape) + " need a destination of " +
                                std::to_string(e.shape.size()) + " dimensions");
  const int64_t rows = dst.size(0);
  if (first_row < 0 || first_row > e.shape[0] || rows > e.shape[0] - first_row)
    throw std::invalid_argument(where + "rows [" + std::to_string(first_row) + ", " + std::to_string(first_row + rows) +
                                ") are outside its " + std::to_string(e.shape[0]) + " rows");
  // The rows are a contiguous stretch of the data section: an entry of their own.
  Entry part = e;
  part.shape[0] = rows;
  const uint64_t row_elements = e.shape[0] == 0 ? 0 : e.numel / static_cast<uint64_t>(e.shape[0]);
  part.numel = row_elements * static_cast<uint64_t>(rows);
  part.begin = e.begin + row_elements * static_cast<uint64_t>(first_row) * e.dtype->itemsize;
  part.end = part.begin + part.numel * e.dtype->itemsize;
  read_into_tensor(part, state_->file.read, dst, source);
}

Tensor SafeTensorsReader::read(const std::string& name) const {
  return read_tensor(state_->entry(name), state_->file.read, state_->file.source);
}

}  // namespace minitrain
