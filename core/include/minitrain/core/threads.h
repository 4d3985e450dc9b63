// Who owns the cores: OpenMP. minitrain splits its own work (GEMMs by rows or columns, attention by
// (batch, head) slices, elementwise kernels by ranges) over one OpenMP team and calls OpenBLAS
// single-threaded inside it, so there is never a second, spinning thread pool beside ours (that mix made
// PyTorch slower on 2 threads than on 1). The thread count is OpenMP's: OMP_NUM_THREADS or
// set_num_threads. Results for a given thread count are deterministic; `--threads 1` is bit-reproducible.
#pragma once

namespace minitrain {

// Sets the number of threads minitrain's parallel loops use from the calling thread (n >= 1). Like
// OpenMP's setting it is per calling thread: worker threads of your own call it themselves.
void set_num_threads(int n);
int num_threads();

// Sets the calling thread's count for a scope and puts the previous one back on every exit, exceptions
// included (a benchmark or test that changes it must not leave it changed for whatever runs next). A
// count below 1 throws before anything changes.
class NumThreadsGuard {
 public:
  explicit NumThreadsGuard(int n);
  ~NumThreadsGuard();
  NumThreadsGuard(const NumThreadsGuard&) = delete;
  NumThreadsGuard& operator=(const NumThreadsGuard&) = delete;

 private:
  int previous_;
};

}  // namespace minitrain
