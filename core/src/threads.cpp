#include <minitrain/core/threads.h>

#include "parallel.h"

#include <cblas.h>
#include <omp.h>

#include <stdexcept>
#include <string>

namespace minitrain {

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: need at least 1 thread, got " + std::to_string(n));
  blas_single_threaded();
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

NumThreadsGuard::NumThreadsGuard(int n) : previous_(num_threads()) { set_num_threads(n); }
NumThreadsGuard::~NumThreadsGuard() { set_num_threads(previous_); }

void blas_single_threaded() {
  // A function-local static: done once, thread-safely, before the first GEMM.
  static const bool done = (openblas_set_num_threads(1), true);
  (void)done;
}

}  // namespace minitrain
