// Data-parallel training: every rank holds the whole model, computes gradients on its share of the
// global batch, and the gradients are averaged with an all-reduce so that every rank takes the same
// optimizer step. Written against the Communicator interface (communicator.h): over MPI with
// minitrain::distributed (minitrain/distributed/mpi.h, launched as `mpirun -np N program ...`), and on
// one process, rank 0 of 1, where every collective returns its input.
//
//   Communicator& comm = distributed::world();          // initialises MPI when launched by mpirun
//   comm.broadcast(model.parameters());                 // rank 0's initial parameters everywhere
//   GradientAverager averager(comm, model.parameters());
//   for (...) {
//     Tensor x = shard_rows(global_x, comm), y = shard_rows(global_y, comm);  // this rank's rows
//     model.loss(x, y).backward();
//     averager.average();                               // one all-reduce per flat bucket
//     optimizer.step();                                 // identical on every rank
//   }
#pragma once

#include <minitrain/core/tensor.h>
#include <minitrain/train/communicator.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace minitrain::train {

// Time spent averaging gradients, for benchmarks and the cost model.
struct AllReduceStats {
  int64_t calls = 0;        // average() calls
  int64_t buckets = 0;      // all-reduce operations started
  int64_t bytes = 0;        // gradient bytes reduced per rank
  double seconds = 0;       // inside average(): packing, all-reduce, unpacking
  double wait_seconds = 0;  // of which in the all-reduce, or in wait() with overlap
};

struct GradientAveragerOptions {
  std::size_t bucket_bytes = std::size_t{1} << 20;  // flat buckets of about this size
  // false: one blocking all-reduce (MPI_Allreduce) per bucket, in turn. true: start every bucket's
  // non-blocking all-reduce (MPI_Iallreduce) as soon as it is packed and unpack each as it completes.
  // Measured on one machine with shared memory (docs/distributed.md), the blocking form is faster: with
  // every core computing, nothing progresses a non-blocking all-reduce in the background.
  bool overlap = false;
};

// Averages the gradients of `params` across the communicator's ranks with one all-reduce per flat
// bucket (not one per tensor). Buckets hold consecutive parameters of one dtype in reverse
// registration order (the order in which backward finishes them); a parameter without a gradient
// contributes zeros and ends with a zero gradient.
//
// The autograd engine has no per-parameter "gradient ready" hook yet, so buckets are reduced after
// backward, not during it; with overlap, packing and unpacking of neighbouring buckets run while
// all-reduces are in flight (docs/distributed.md measures what that buys: nothing, here).
class GradientAverager {
 public:
  GradientAverager(const Communicator& comm, std::vector<Tensor> params, GradientAveragerOptions options = {});
  // Replaces every gradient by its mean over the ranks. Returns whether this rank's own gradients were
  // all finite before averaging (to name the rank that produced a NaN). A single process only checks.
  bool average();
  const AllReduceStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<std::size_t> params;  // indices into params_
    int64_t numel = 0;
    DType dtype = DType::Float32;
    std::vector<unsigned char> buffer;
  };
  bool pack(Bucket& b);
  void unpack(Bucket& b);
  const Communicator& comm_;
  std::vector<Tensor> params_;
  GradientAveragerOptions options_;
  std::vector<Bucket> buckets_;
  AllReduceStats stats_;
};

// This rank's rows of a (B, ...) batch: rows [rank * B/N, (rank + 1) * B/N). Throws
// std::invalid_argument when B is not divisible by the number of ranks.
Tensor shard_rows(const Tensor& batch, const Communicator& comm);

// Threads for each rank so that the ranks on one machine share its cores: max(1, cores / local ranks).
int threads_per_rank(const Communicator& comm, int cores);

}  // namespace minitrain::train
