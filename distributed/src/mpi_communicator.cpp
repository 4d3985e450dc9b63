// world() over MPI: a communicator over MPI_COMM_WORLD for a process started by mpirun, the
// single-process communicator otherwise.
#include <minitrain/distributed/mpi.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <mpi.h>

namespace minitrain::distributed {

namespace {

MPI_Datatype mpi_type(DType dtype) { return dtype == DType::Float32 ? MPI_FLOAT : MPI_DOUBLE; }

bool launched_by_mpirun() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(var)) return true;
  return false;
}

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

class MpiCommunicator final : public train::Communicator {
 public:
  // MPI is initialised.
  MpiCommunicator() {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }

  void barrier() const override { MPI_Barrier(comm_); }

  void all_reduce_sum(std::vector<double>& values) const override {
    MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM, comm_);
  }

  std::vector<double> all_gather(const std::vector<double>& values) const override {
    std::vector<double> out(values.size() * static_cast<std::size_t>(size_));
    MPI_Allgather(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, out.data(),
                  static_cast<int>(values.size()), MPI_DOUBLE, comm_);
    return out;
  }

  [[noreturn]] void abort(int code) const override {
    MPI_Abort(comm_, code);
    std::exit(code);  // MPI_Abort does not return; this tells the compiler so
  }

  void all_reduce_sum(void* data, int64_t count, DType dtype) const override {
    MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), mpi_type(dtype), MPI_SUM, comm_);
  }

  int start_all_reduce_sum(void* data, int64_t count, DType dtype) const override {
    auto slot = std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.in_use; });
    if (slot == slots_.end()) slot = slots_.insert(slots_.end(), Slot{});
    slot->in_use = true;
    MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), mpi_type(dtype), MPI_SUM, comm_, &slot->request);
    return static_cast<int>(slot - slots_.begin());
  }

  void wait(int ticket) const override {
    if (ticket < 0) return;
    if (ticket >= static_cast<int>(slots_.size()) || !slots_[static_cast<std::size_t>(ticket)].in_use)
      throw std::logic_error("Communicator::wait: ticket " + std::to_string(ticket) + " is not pending");
    Slot& slot = slots_[static_cast<std::size_t>(ticket)];
    MPI_Wait(&slot.request, MPI_STATUS_IGNORE);  // returns at once for MPI_REQUEST_NULL
    slot.in_use = false;
  }

  void test_all() const override {
    // MPI_Test drives progress; a completed request becomes MPI_REQUEST_NULL but keeps its ticket until
    // wait().
    for (Slot& s : slots_)
      if (s.request != MPI_REQUEST_NULL) {
        int done = 0;
        MPI_Test(&s.request, &done, MPI_STATUS_IGNORE);
      }
  }

 private:
  void broadcast_checked(const std::vector<Tensor>& tensors, int root) const override {
    // Once per run (initial parameters), so one call per tensor: no packing needed.
    for (const Tensor& t : tensors) {
      Tensor handle = t;
      void* data = t.dtype() == DType::Float32 ? static_cast<void*>(handle.data<float>())
                                               : static_cast<void*>(handle.data<double>());
      MPI_Bcast(data, static_cast<int>(t.numel()), mpi_type(t.dtype()), root, comm_);
      handle.bump_version();  // written in place: a graph holding it must not backward through it
    }
  }

  struct Slot {
    MPI_Request request = MPI_REQUEST_NULL;  // MPI_REQUEST_NULL once complete
    bool in_use = false;                     // until wait() hands the ticket back
  };
  MPI_Comm comm_ = MPI_COMM_WORLD;
  int rank_ = 0, size_ = 1, local_size_ = 1;
  mutable std::vector<Slot> slots_;  // by ticket; collectives are const, their requests are bookkeeping
};

}  // namespace

bool mpi_built() { return true; }

train::Communicator& world() {
  static train::Communicator* world = []() -> train::Communicator* {
    if (!launched_by_mpirun()) return new train::SingleProcessCommunicator();
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      // Only the main thread calls MPI; OpenMP and OpenBLAS threads never do.
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      std::atexit(finalize_mpi);
    }
    return new MpiCommunicator();
  }();  // never destroyed: MPI_Finalize runs at exit, after any user of it
  return *world;
}

}  // namespace minitrain::distributed
