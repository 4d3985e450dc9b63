// The collectives data-parallel training needs, as an interface: train/ (Trainer, GradientAverager) runs
// on any communicator and never depends on MPI. SingleProcessCommunicator is one process, rank 0 of 1;
// minitrain::distributed::world() (minitrain/distributed/mpi.h) is every process of an MPI job.
#pragma once

#include <minitrain/core/tensor.h>

#include <cstdint>
#include <vector>

namespace minitrain::train {

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_size() const = 0;  // ranks on this machine (to share its cores)
  bool is_root() const { return rank() == 0; }
  bool distributed() const { return size() > 1; }

  virtual void barrier() const = 0;
  // Elementwise sum across ranks, in place (blocking).
  virtual void all_reduce_sum(std::vector<double>& values) const = 0;
  // Every rank's `values` (the same count on each), concatenated in rank order.
  virtual std::vector<double> all_gather(const std::vector<double>& values) const = 0;
  // Copies root's values of each tensor (contiguous, float32 or float64) into every rank's tensor, in
  // place, outside autograd. Checks root and tensors, then calls broadcast_checked.
  void broadcast(const std::vector<Tensor>& tensors, int root = 0) const;
  // Ends every process of the job now, for an error only this rank has seen; a single process just
  // exits with `code`.
  [[noreturn]] virtual void abort(int code) const = 0;

  // Low-level in-place sum of a flat float32/float64 buffer across ranks.
  virtual void all_reduce_sum(void* data, int64_t count, DType dtype) const = 0;
  // Its non-blocking form; wait() before touching the buffer. Returns a ticket; tickets of one
  // communicator are waited for in any order. A negative ticket means nothing to wait for.
  virtual int start_all_reduce_sum(void* data, int64_t count, DType dtype) const = 0;
  virtual void wait(int ticket) const = 0;
  virtual void test_all() const = 0;  // lets pending operations progress

 protected:
  Communicator() = default;

 private:
  // broadcast() after its checks: root is a rank, every tensor is defined and contiguous.
  virtual void broadcast_checked(const std::vector<Tensor>& tensors, int root) const = 0;
};

// This process alone: rank 0 of 1, collectives return their input, nothing to wait for.
class SingleProcessCommunicator final : public Communicator {
 public:
  SingleProcessCommunicator() = default;
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  void barrier() const override {}
  void all_reduce_sum(std::vector<double>&) const override {}
  std::vector<double> all_gather(const std::vector<double>& values) const override { return values; }
  [[noreturn]] void abort(int code) const override;
  void all_reduce_sum(void*, int64_t, DType) const override {}
  int start_all_reduce_sum(void*, int64_t, DType) const override { return -1; }
  void wait(int ticket) const override;  // throws std::logic_error for a ticket it never handed out
  void test_all() const override {}

 private:
  void broadcast_checked(const std::vector<Tensor>&, int) const override {}
};

}  // namespace minitrain::train
