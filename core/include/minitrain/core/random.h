// A seeded random generator whose streams are identical on every platform: xoshiro256** seeded by
// splitmix64, with our own uniform and normal transforms (the standard library's distributions differ
// between implementations for the same seed).
#pragma once

#include <array>
#include <cstdint>

namespace minitrain {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0);
  void seed(uint64_t seed);

  uint64_t next_u64();
  double uniform();                   // [0, 1), 53 random bits
  double normal();                    // N(0, 1), Box-Muller
  int64_t randint(int64_t low, int64_t high);  // [low, high), unbiased

  // The whole state, for checkpoints: restoring it continues the same stream.
  using State = std::array<uint64_t, 4>;
  State state() const { return s_; }
  // Throws std::invalid_argument for the all-zero state, from which xoshiro256** returns 0 forever
  // (a seeded generator never reaches it; only a tampered checkpoint can hold it).
  void set_state(const State& state);

 private:
  State s_{};
};

}  // namespace minitrain
