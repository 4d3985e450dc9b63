#include "buffer_pool.h"

#include <minitrain/core/tensor.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define MINITRAIN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MINITRAIN_ASAN 1
#endif
#endif
#ifdef MINITRAIN_ASAN
#include <sanitizer/asan_interface.h>
#define MINITRAIN_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define MINITRAIN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define MINITRAIN_POISON(p, n) ((void)(p), (void)(n))
#define MINITRAIN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace minitrain {

namespace {

constexpr std::size_t kAlignment = 64;
constexpr std::size_t kSmallBlock = 16 * 1024;   // below this, malloc directly
constexpr std::size_t kMinCacheCap = 64u << 20;  // the cache may always hold this much

std::size_t rounded(std::size_t bytes) { return (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment; }

struct Pool {
  std::mutex mutex;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks;  // by rounded size
  std::size_t cached = 0, in_use = 0, peak_in_use = 0;

  std::size_t cap() const { return std::max(kMinCacheCap, peak_in_use); }
};

// Never destroyed: tensors in static objects may be freed after this file's statics are gone.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

void* allocate_fresh(std::size_t size) {
  void* p = std::aligned_alloc(kAlignment, size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

namespace buffer_pool {

void* acquire(std::size_t bytes) {
  const std::size_t size = rounded(bytes);
  if (size < kSmallBlock) return allocate_fresh(size);
  Pool& pl = pool();
  {
    std::lock_guard<std::mutex> lock(pl.mutex);
    pl.in_use += size;
    pl.peak_in_use = std::max(pl.peak_in_use, pl.in_use);
    auto it = pl.free_blocks.find(size);
    if (it != pl.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      pl.cached -= size;
      MINITRAIN_UNPOISON(p, size);
      return p;
    }
  }
  try {
    return allocate_fresh(size);
  } catch (...) {
    std::lock_guard<std::mutex> lock(pl.mutex);
    pl.in_use -= size;
    throw;
  }
}

void release(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  const std::size_t size = rounded(bytes);
  if (size < kSmallBlock) return std::free(p);
  Pool& pl = pool();
  {
    std::lock_guard<std::mutex> lock(pl.mutex);
    pl.in_use -= size;
    if (pl.cached + size <= pl.cap()) {
      try {
        pl.free_blocks[size].push_back(p);
        pl.cached += size;
        MINITRAIN_POISON(p, size);
        return;
      } catch (...) {  // no memory for the bookkeeping: give the block back instead
      }
    }
  }
  std::free(p);
}

}  // namespace buffer_pool

int64_t cached_storage_bytes() {
  Pool& pl = pool();
  std::lock_guard<std::mutex> lock(pl.mutex);
  return static_cast<int64_t>(pl.cached);
}

void release_cached_storage() {
  Pool& pl = pool();
  std::lock_guard<std::mutex> lock(pl.mutex);
  for (auto& [size, blocks] : pl.free_blocks)
    for (void* p : blocks) {
      MINITRAIN_UNPOISON(p, size);
      std::free(p);
    }
  pl.free_blocks.clear();
  pl.cached = 0;
}

}  // namespace minitrain
