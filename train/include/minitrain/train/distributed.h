// Data-parallel training over MPI: every rank holds the whole model, computes gradients on its share of
// the global batch, and the gradients are averaged with an all-reduce so that every rank takes the same
// optimizer step. Launched as `mpirun -np N program ...`.
//
// Built without MPI (MINITRAIN_WITH_MPI off) or started without mpirun, the same calls work for one
// process: rank 0 of 1, and every collective returns its input. <mpi.h> stays out of this header.
//
//   Communicator& comm = Communicator::world();        // initialises MPI when launched by mpirun
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

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace minitrain::train {

// True when minitrain was built with MPI.
bool mpi_built();

class Communicator {
 public:
  // This process alone: rank 0 of 1, collectives return their input, MPI is never touched.
  Communicator();
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // Every process of the job (MPI_COMM_WORLD). The first call initialises MPI when the process was
  // started by an MPI launcher (mpirun sets OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK) and registers
  // MPI_Finalize at exit; otherwise (or without MPI) it is a single-process communicator.
  static Communicator& world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_size() const { return local_size_; }  // ranks on this machine (to share its cores)
  bool is_root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }

  void barrier() const;
  // Elementwise sum across ranks, in place (blocking).
  void all_reduce_sum(std::vector<double>& values) const;
  // Every rank's `values` (the same count on each), concatenated in rank order.
  std::vector<double> all_gather(const std::vector<double>& values) const;
  // Copies root's values of each tensor (contiguous, float32 or float64) into every rank's tensor, in
  // place, outside autograd.
  void broadcast(const std::vector<Tensor>& tensors, int root = 0) const;
  // Ends every process of the job now (MPI_Abort), for an error only this rank has seen; a single
  // process just exits with `code`.
  [[noreturn]] void abort(int code) const;

  // Low-level in-place sum of a flat float32/float64 buffer across ranks (MPI_Allreduce).
  void all_reduce_sum(void* data, int64_t count, DType dtype) const;
  // Its non-blocking form (MPI_Iallreduce); wait() before touching the buffer.
  // Returns a ticket; tickets of one communicator are waited for in any order.
  int start_all_reduce_sum(void* data, int64_t count, DType dtype) const;
  void wait(int ticket) const;
  void test_all() const;  // lets pending operations progress (MPI_Testall)

  struct Impl;

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1;
  std::unique_ptr<Impl> impl_;  // null for a single process
};

// Time spent averaging gradients, for benchmarks and the cost model.
struct AllReduceStats {
  int64_t calls = 0;        // average() calls
  int64_t buckets = 0;      // all-reduce operations started
  int64_t bytes = 0;        // gradient bytes reduced per rank
  double seconds = 0;       // inside average(): packing, all-reduce, unpacking
  double wait_seconds = 0;  // of which in MPI_Allreduce, or in MPI_Wait with overlap
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
