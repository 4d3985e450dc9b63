// Tensor factories. Random ones take an explicit Generator: same seed, same numbers everywhere.
#pragma once

#include <minitrain/core/random.h>
#include <minitrain/core/tensor.h>

namespace minitrain {

// Every factory takes any dtype. An int64 tensor takes only integral values in its range (full(.., 2.5,
// Int64) throws); a bool tensor stores value != 0.
Tensor empty(const Shape& shape, DType dtype = DType::Float32);  // uninitialised
Tensor zeros(const Shape& shape, DType dtype = DType::Float32);
Tensor ones(const Shape& shape, DType dtype = DType::Float32);
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32);
// start, start + step, ... up to end (excluded), as torch.arange. Integer positions and ids:
// arange(0, n, 1, DType::Int64).
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Float32);
Tensor from_vector(const std::vector<float>& values, const Shape& shape);    // float32
Tensor from_vector(const std::vector<double>& values, const Shape& shape);   // float64
Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape);  // int64
Tensor from_vector(const std::vector<bool>& values, const Shape& shape);     // bool
Tensor scalar_tensor(double value, DType dtype = DType::Float32);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);

Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::Float32);   // U[0, 1)
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::Float32);  // N(0, 1)
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen,
              DType dtype = DType::Float32);
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen);  // int64 in [low, high)
// In-place forms for initialising an existing buffer without a temporary (a vocabulary-sized embedding would
// otherwise need a second buffer of its size): `t` (contiguous, floating-point) gets exactly the values
// rand(t.shape(), gen, t.dtype()) / normal(...) would return, drawn in the same order. Bump its version;
// throw std::invalid_argument for an undefined, non-contiguous or integer tensor.
void fill_rand_(Tensor& t, Generator& gen);
void fill_normal_(Tensor& t, double mean, double stddev, Generator& gen);

}  // namespace minitrain
