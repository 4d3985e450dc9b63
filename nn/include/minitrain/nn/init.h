// Parameter initialisation and the generator layers draw from when none is given.
#pragma once

#include <minitrain/core/random.h>
#include <minitrain/core/tensor.h>

namespace minitrain::nn {

// The generator layers use for their default initialisation (like torch::manual_seed).
Generator& default_generator();
void manual_seed(uint64_t seed);

// In-place initialisers (no autograd): U(low, high), N(mean, std), constants.
void uniform_(Tensor& t, double low, double high, Generator& gen);
void normal_(Tensor& t, double mean, double stddev, Generator& gen);
void constant_(Tensor& t, double value);

}  // namespace minitrain::nn
