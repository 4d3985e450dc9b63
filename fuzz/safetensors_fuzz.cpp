// libFuzzer target for the safetensors reader.
//
// Any input may be rejected with a std::exception; nothing may crash, read out of bounds, leak or
// hang. An accepted input must also survive a round trip: serializing what was read and parsing it
// again gives the same tensors (F16/BF16 come back as the F32 they were converted to) and metadata.
//
//   scripts/fuzz.sh 60     # builds it (clang-14, -fsanitize=fuzzer,address,undefined) and runs it 60 s
//   build-fuzz/fuzz/safetensors_fuzz -max_len=4096 build-fuzz/corpus fuzz/corpus   # by hand
#include <minitrain/core/safetensors.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

using minitrain::DType;
using minitrain::SafeTensors;
using minitrain::Tensor;

// Bit-identical contents (NaN payloads included).
bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (a.dtype() == DType::Float32) {
    const std::vector<float> x = a.to_vector<float>(), y = b.to_vector<float>();
    return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
  }
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SafeTensors parsed;
  try {
    parsed = minitrain::parse_safetensors(data, size, "<fuzz>");
  } catch (const std::exception&) {
    return 0;  // rejected: fine, as long as it was a clean exception
  }

  // Accepted: the writer must accept it too, and reading that back must give the same thing.
  // Exceptions here escape on purpose (libFuzzer reports them as crashes).
  const std::string bytes = minitrain::serialize_safetensors(parsed.tensors, parsed.metadata);
  const SafeTensors again = minitrain::parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                         bytes.size(), "<fuzz round trip>");
  if (again.metadata != parsed.metadata || again.tensors.size() != parsed.tensors.size()) std::abort();
  for (const auto& [name, tensor] : parsed.tensors) {
    const auto it = again.tensors.find(name);
    if (it == again.tensors.end() || !same_bits(tensor, it->second)) std::abort();
  }
  // Serializing is deterministic.
  if (minitrain::serialize_safetensors(again.tensors, again.metadata) != bytes) std::abort();
  return 0;
}
