// Internal: the one way minitrain runs work on several cores (see core/threads.h for why OpenMP owns
// them). parallel_for splits [0, n) into one contiguous chunk per thread, the same chunks every time
// for a given thread count, so results are deterministic; small work runs inline on the caller.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace minitrain {

// Makes OpenBLAS run on the calling thread only (idempotent; every GEMM call site goes through it).
void blas_single_threaded();

// Calls body(begin, end) on disjoint chunks covering [0, n), in parallel when there are at least
// `min_per_thread` items for each of two or more threads and we are not already inside a parallel
// region. `align` rounds chunk boundaries (e.g. to GEMM micro-tiles). body must not throw: an exception
// cannot leave an OpenMP region (check arguments before calling).
template <class Body>
void parallel_for(int64_t n, int64_t min_per_thread, Body body, int64_t align = 1) {
  const int64_t max_threads = omp_get_max_threads();
  const int64_t threads = std::min<int64_t>(max_threads, n / std::max<int64_t>(min_per_thread, 1));
  if (threads < 2 || omp_in_parallel()) {
    if (n > 0) body(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    auto boundary = [&](int64_t i) { return i == nt ? n : std::min(n, (n * i / nt + align / 2) / align * align); };
    const int64_t begin = boundary(t), end = boundary(t + 1);
    if (begin < end) body(begin, end);
  }
}

// Calls body(begin, end) on `parts` chunks covering [0, n) whose boundaries depend only on n, parts and
// `align`, never on the thread count; the chunks are handed to threads as they become free. For work
// whose rounding depends on how it is cut (a GEMM: BLAS blocks a 384-column product differently from a
// 768-column one), this gives the same bits on any number of threads. body must not throw.
template <class Body>
void parallel_parts(int64_t n, int64_t parts, Body body, int64_t align = 1) {
  parts = std::max<int64_t>(1, std::min(parts, n));
  auto boundary = [&](int64_t i) { return i == parts ? n : std::min(n, (n * i / parts + align / 2) / align * align); };
  const int64_t threads = std::min<int64_t>(omp_get_max_threads(), parts);
  if (threads < 2 || omp_in_parallel()) {
    for (int64_t i = 0; i < parts; ++i)
      if (boundary(i) < boundary(i + 1)) body(boundary(i), boundary(i + 1));
    return;
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(threads))
  for (int64_t i = 0; i < parts; ++i)
    if (boundary(i) < boundary(i + 1)) body(boundary(i), boundary(i + 1));
}

}  // namespace minitrain
