// xoshiro256** (Blackman & Vigna) seeded with splitmix64, and the transforms we own.
#include <minitrain/core/random.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace minitrain {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
constexpr double kTwoPi = 6.283185307179586476925286766559;
}  // namespace

Generator::Generator(uint64_t seed_value) { seed(seed_value); }

void Generator::seed(uint64_t seed_value) {
  uint64_t x = seed_value;
  for (auto& word : s_) word = splitmix64(x);
}

void Generator::set_state(const State& state) {
  if (state[0] == 0 && state[1] == 0 && state[2] == 0 && state[3] == 0)
    throw std::invalid_argument("Generator::set_state: the all-zero state is invalid (xoshiro256** would only return 0)");
  s_ = state;
}

uint64_t Generator::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  // Box-Muller on (0, 1] x [0, 1): 1 - uniform() never reaches 0, so the log is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
}

int64_t Generator::randint(int64_t low, int64_t high) {
  if (high <= low)
    throw std::invalid_argument("randint: empty range [" + std::to_string(low) + ", " +
                                std::to_string(high) + ")");
  const uint64_t range = static_cast<uint64_t>(high - low);
  // Rejection sampling removes the modulo bias.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % range;
  uint64_t r;
  do {
    r = next_u64();
  } while (r >= limit);
  return low + static_cast<int64_t>(r % range);
}

}  // namespace minitrain
