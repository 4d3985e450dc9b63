// The two named configs the performance issue measures, shared by the benchmark programs and matching
// bench/pytorch_peer.py's CONFIGS: nanoGPT's shakespeare_char shapes (vocabulary 65, no bias, no dropout).
#pragma once

#include <minitrain/nn/gpt.h>

#include <cstdint>
#include <string>

namespace minitrain::bench {

inline const char* kConfigHelp = "nano (4x128, T 64, B 12) or small (6x384, T 256, B 8)";

struct BenchConfig {
  nn::GPTConfig model;
  int64_t batch_size = 0;
};

// name: "nano" or "small" (callers check the flag with CLI::IsMember({"nano", "small"})).
inline BenchConfig bench_config(const std::string& name) {
  const bool small = name == "small";
  BenchConfig b;
  b.model.n_layer = small ? 6 : 4;
  b.model.n_head = small ? 6 : 4;
  b.model.n_embd = small ? 384 : 128;
  b.model.block_size = small ? 256 : 64;
  b.model.vocab_size = 65;
  b.model.bias = false;
  b.model.dropout = 0.0;
  b.batch_size = small ? 8 : 12;
  return b;
}

}  // namespace minitrain::bench
