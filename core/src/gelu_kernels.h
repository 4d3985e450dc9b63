// Internal: the exact GELU's loops, y = x·Φ(x) and dx = g·(Φ(x) + x·φ(x)), over contiguous buffers.
// They live in their own file because they are built with 512-bit vectors where the machine has them
// (see gelu_kernels.cpp); callers split the range over threads.
#pragma once

#include <cstdint>

namespace minitrain::kernels {

void gelu_forward(const float* x, float* y, int64_t n);
void gelu_forward(const double* x, double* y, int64_t n);
void gelu_backward(const float* x, const float* g, float* dx, int64_t n);
void gelu_backward(const double* x, const double* g, double* dx, int64_t n);
// The same with dx written over g (one pointer: the loop need not be checked for overlap).
void gelu_backward_in_place(const float* x, float* g, int64_t n);
void gelu_backward_in_place(const double* x, double* g, int64_t n);

}  // namespace minitrain::kernels
