// Internal: where tensor storage comes from. Training repeats the same tensor sizes every step, so freed
// buffers are kept by exact byte size and handed out again, instead of going back to malloc, which for
// large blocks means munmap and, on the next step, fresh page faults on zeroed pages (measured: ~4 ms of
// a 60 ms nano step). Small blocks go straight to malloc, whose own free lists already serve them fast.
//
// The cache is bounded by the high-water mark of bytes in use (at least 64 MiB): a training loop keeps
// everything it needs, and a workload whose sizes keep changing (generation with a growing cache) can
// hold at most that much extra. release_cached_storage() (public, core/tensor.h) empties it.
// Under AddressSanitizer the cached blocks are poisoned, so a use after free is still reported.
#pragma once

#include <cstddef>

namespace minitrain::buffer_pool {

// 64-byte aligned, uninitialised.
void* acquire(std::size_t bytes);
void release(void* p, std::size_t bytes) noexcept;

// std-style allocator on the pool, for xtensor's uvector.
template <class T>
struct Allocator {
  using value_type = T;
  Allocator() = default;
  template <class U>
  Allocator(const Allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(acquire(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { release(p, n * sizeof(T)); }
  friend bool operator==(const Allocator&, const Allocator&) { return true; }
  friend bool operator!=(const Allocator&, const Allocator&) { return false; }
};

}  // namespace minitrain::buffer_pool
