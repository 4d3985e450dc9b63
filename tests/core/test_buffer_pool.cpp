// Tensor storage comes from a pool keyed by exact (64-byte rounded) size (core/src/buffer_pool.h): freed
// blocks of 16 KiB and more are cached and handed out again, smaller ones go back to malloc, and the cache
// never holds more than max(64 MiB, peak bytes in use). ctest runs every case in its own process, so the
// pool's peak is this test's own.
#include <minitrain/core/factory.h>
#include <minitrain/core/tensor.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

using namespace minitrain;

namespace {
constexpr int64_t kMiB = 1 << 20;
}  // namespace

TEST(BufferPool, FreedBlockIsCachedAndReusedForTheSameSize) {
  release_cached_storage();
  const int64_t live0 = live_storage_bytes(), cached0 = cached_storage_bytes();
  EXPECT_EQ(cached0, 0);
  const float* first = nullptr;
  {
    Tensor t = empty({kMiB / 4});  // 1 MiB of float32
    EXPECT_EQ(live_storage_bytes(), live0 + kMiB);
    first = t.data<float>();
  }
  EXPECT_EQ(live_storage_bytes(), live0);
  EXPECT_EQ(cached_storage_bytes(), cached0 + kMiB);
  {
    Tensor again = zeros({256, 1024});  // the same byte size, another shape
    EXPECT_EQ(again.data<float>(), first) << "the cached block was not handed out again";
    EXPECT_EQ(live_storage_bytes(), live0 + kMiB);
    EXPECT_EQ(cached_storage_bytes(), cached0);
    EXPECT_EQ(again.to_vector<float>()[12345], 0.0f);  // reused memory is still initialised by zeros()
  }
  EXPECT_EQ(cached_storage_bytes(), cached0 + kMiB);
  release_cached_storage();
}

TEST(BufferPool, DifferentSizeIsNotServedFromTheCache) {
  release_cached_storage();
  { Tensor t = empty({kMiB / 4}); }
  EXPECT_EQ(cached_storage_bytes(), kMiB);
  {
    Tensor other = empty({kMiB / 4 + 1024});  // 4 KiB larger
    EXPECT_EQ(cached_storage_bytes(), kMiB) << "a block of another size was taken from the cache";
  }
  EXPECT_EQ(cached_storage_bytes(), 2 * kMiB + 4096);
  release_cached_storage();
}

TEST(BufferPool, ReleaseEmptiesTheCache) {
  release_cached_storage();
  {
    Tensor a = empty({kMiB / 4}), b = empty({kMiB / 8}, DType::Float64), c = empty({3 * kMiB / 4});
  }
  EXPECT_EQ(cached_storage_bytes(), kMiB + kMiB + 3 * kMiB);
  release_cached_storage();
  EXPECT_EQ(cached_storage_bytes(), 0);
  Tensor d = ones({kMiB / 4});  // and allocation still works afterwards
  EXPECT_EQ(d.to_vector<float>().back(), 1.0f);
}

TEST(BufferPool, BlocksBelow16KiBAreNotCached) {
  release_cached_storage();
  for (int64_t floats : {1, 16, 1000, 4080}) {  // 4 B ... 16320 B (16 KiB - 64 after rounding)
    { Tensor t = empty({floats}); }
    EXPECT_EQ(cached_storage_bytes(), 0) << floats << " floats";
  }
  { Tensor t = empty({4096}); }  // exactly 16 KiB: the pool's smallest cached block
  EXPECT_EQ(cached_storage_bytes(), 16 * 1024);
  release_cached_storage();
}

// Sizes that keep changing (generation with a growing cache) must not grow the cache without bound:
// 200 distinct sizes of about 1 MiB, each freed once, would cache ~200 MiB.
TEST(BufferPool, CacheIsBoundedWhenSizesKeepChanging) {
  release_cached_storage();
  int64_t peak_live = live_storage_bytes(), freed = 0;
  for (int64_t i = 0; i < 200; ++i) {
    const int64_t floats = kMiB / 4 + i * 1024;  // distinct sizes, 4 KiB apart
    {
      Tensor t = empty({floats});
      peak_live = std::max(peak_live, live_storage_bytes());
    }
    freed += floats * 4;
    ASSERT_LE(cached_storage_bytes(), std::max<int64_t>(64 * kMiB, peak_live)) << "after " << i + 1 << " sizes";
  }
  std::printf("[buffer_pool] freed %lld bytes in 200 sizes, cached %lld, peak live %lld\n",
              static_cast<long long>(freed), static_cast<long long>(cached_storage_bytes()),
              static_cast<long long>(peak_live));
  EXPECT_GT(freed, 64 * kMiB * 3);  // the bound was actually exercised
  EXPECT_GT(cached_storage_bytes(), 0);
  release_cached_storage();
  EXPECT_EQ(cached_storage_bytes(), 0);
}
