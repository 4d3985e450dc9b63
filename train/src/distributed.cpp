// Communicator and GradientAverager: MPI calls when built with MINITRAIN_WITH_MPI, otherwise (and for a
// process not started by mpirun) a single process whose collectives return their input.
#include <minitrain/train/distributed.h>

#include <minitrain/core/ops.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#ifdef MINITRAIN_WITH_MPI
#include <mpi.h>
#endif

namespace minitrain::train {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void require_single(const char* what) {
  throw std::logic_error(std::string("Communicator::") + what + ": no such operation on a single process");
}
}  // namespace

#ifdef MINITRAIN_WITH_MPI
struct Communicator::Impl {
  MPI_Comm comm = MPI_COMM_WORLD;
  struct Slot {
    MPI_Request request = MPI_REQUEST_NULL;  // MPI_REQUEST_NULL once complete
    bool in_use = false;                     // until wait() hands the ticket back
  };
  std::vector<Slot> slots;  // by ticket
};

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
}  // namespace

bool mpi_built() { return true; }
#else
struct Communicator::Impl {};
bool mpi_built() { return false; }
#endif

Communicator::Communicator() = default;
Communicator::~Communicator() = default;

Communicator& Communicator::world() {
  static Communicator* world = [] {
    auto* c = new Communicator();  // never destroyed: MPI_Finalize runs at exit, after any user of it
#ifdef MINITRAIN_WITH_MPI
    if (launched_by_mpirun()) {
      int initialized = 0;
      MPI_Initialized(&initialized);
      if (!initialized) {
        int provided = 0;
        // Only the main thread calls MPI; OpenMP and OpenBLAS threads never do.
        MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
        std::atexit(finalize_mpi);
      }
      c->impl_ = std::make_unique<Impl>();
      MPI_Comm_rank(MPI_COMM_WORLD, &c->rank_);
      MPI_Comm_size(MPI_COMM_WORLD, &c->size_);
      MPI_Comm local;
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank_, MPI_INFO_NULL, &local);
      MPI_Comm_size(local, &c->local_size_);
      MPI_Comm_free(&local);
    }
#endif
    return c;
  }();
  return *world;
}

void Communicator::barrier() const {
#ifdef MINITRAIN_WITH_MPI
  if (impl_) MPI_Barrier(impl_->comm);
#endif
}

void Communicator::all_reduce_sum(std::vector<double>& values) const {
#ifdef MINITRAIN_WITH_MPI
  if (impl_)
    MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM, impl_->comm);
#else
  (void)values;
#endif
}

std::vector<double> Communicator::all_gather(const std::vector<double>& values) const {
#ifdef MINITRAIN_WITH_MPI
  if (impl_) {
    std::vector<double> out(values.size() * static_cast<std::size_t>(size_));
    MPI_Allgather(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, out.data(),
                  static_cast<int>(values.size()), MPI_DOUBLE, impl_->comm);
    return out;
  }
#endif
  return values;
}

void Communicator::broadcast(const std::vector<Tensor>& tensors, int root) const {
  if (root < 0 || root >= size_)
    throw std::invalid_argument("Communicator::broadcast: root " + std::to_string(root) + " is not a rank of " +
                                std::to_string(size_));
  for (const Tensor& t : tensors)
    if (!t.defined() || !t.is_contiguous())
      throw std::invalid_argument("Communicator::broadcast: tensors must be defined and contiguous");
#ifdef MINITRAIN_WITH_MPI
  if (!impl_) return;
  // Once per run (initial parameters), so one call per tensor: no packing needed.
  for (const Tensor& t : tensors) {
    Tensor handle = t;
    void* data = t.dtype() == DType::Float32 ? static_cast<void*>(handle.data<float>())
                                             : static_cast<void*>(handle.data<double>());
    MPI_Bcast(data, static_cast<int>(t.numel()), mpi_type(t.dtype()), root, impl_->comm);
    handle.bump_version();  // written in place: a graph holding it must not backward through it
  }
#endif
}

void Communicator::abort(int code) const {
#ifdef MINITRAIN_WITH_MPI
  if (impl_) MPI_Abort(impl_->comm, code);
#endif
  std::exit(code);
}

void Communicator::all_reduce_sum(void* data, int64_t count, DType dtype) const {
#ifdef MINITRAIN_WITH_MPI
  if (impl_) MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), mpi_type(dtype), MPI_SUM, impl_->comm);
#else
  (void)data, (void)count, (void)dtype;
#endif
}

int Communicator::start_all_reduce_sum(void* data, int64_t count, DType dtype) const {
#ifdef MINITRAIN_WITH_MPI
  if (impl_) {
    auto& slots = impl_->slots;
    auto slot = std::find_if(slots.begin(), slots.end(), [](const Impl::Slot& s) { return !s.in_use; });
    if (slot == slots.end()) slot = slots.insert(slots.end(), Impl::Slot{});
    slot->in_use = true;
    MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), mpi_type(dtype), MPI_SUM, impl_->comm,
                   &slot->request);
    return static_cast<int>(slot - slots.begin());
  }
#else
  (void)data, (void)count, (void)dtype;
#endif
  return -1;  // nothing to wait for
}

void Communicator::wait(int ticket) const {
  if (ticket < 0) return;
#ifdef MINITRAIN_WITH_MPI
  if (!impl_ || ticket >= static_cast<int>(impl_->slots.size())) require_single("wait");
  Impl::Slot& slot = impl_->slots[static_cast<std::size_t>(ticket)];
  MPI_Wait(&slot.request, MPI_STATUS_IGNORE);  // returns at once for MPI_REQUEST_NULL
  slot.in_use = false;
#else
  require_single("wait");
#endif
}

void Communicator::test_all() const {
#ifdef MINITRAIN_WITH_MPI
  if (!impl_) return;
  // MPI_Test drives progress; a completed request becomes MPI_REQUEST_NULL but keeps its ticket until
  // wait().
  for (Impl::Slot& s : impl_->slots)
    if (s.request != MPI_REQUEST_NULL) {
      int done = 0;
      MPI_Test(&s.request, &done, MPI_STATUS_IGNORE);
    }
#endif
}

// ---- GradientAverager ----

GradientAverager::GradientAverager(const Communicator& comm, std::vector<Tensor> params, GradientAveragerOptions options)
    : comm_(comm), params_(std::move(params)), options_(options) {
  for (const Tensor& p : params_)
    if (!p.defined() || !p.is_leaf() || !p.is_contiguous())
      throw std::invalid_argument("GradientAverager: parameters must be defined contiguous leaves");
  // Reverse registration order: the last layers' gradients are complete first during backward.
  for (std::size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    const int64_t bytes = p.numel() * static_cast<int64_t>(dtype_size(p.dtype()));
    if (buckets_.empty() || buckets_.back().dtype != p.dtype() ||
        (buckets_.back().numel > 0 &&
         static_cast<std::size_t>(buckets_.back().numel * static_cast<int64_t>(dtype_size(p.dtype())) + bytes) >
             options_.bucket_bytes)) {
      buckets_.emplace_back();
      buckets_.back().dtype = p.dtype();
    }
    buckets_.back().params.push_back(k);
    buckets_.back().numel += p.numel();
  }
  for (Bucket& b : buckets_) b.buffer.resize(static_cast<std::size_t>(b.numel) * dtype_size(b.dtype));
}

namespace {
template <class T>
bool copy_checking_finite(const T* src, T* dst, int64_t n) {
  T acc = 0;  // inf * 0 and NaN * 0 are NaN, finite * 0 is 0: one vectorisable pass
  for (int64_t j = 0; j < n; ++j) {
    dst[j] = src[j];
    acc += src[j] * T(0);
  }
  return acc == T(0);
}

template <class T>
bool all_finite(const T* src, int64_t n) {
  T acc = 0;
  for (int64_t j = 0; j < n; ++j) acc += src[j] * T(0);
  return acc == T(0);
}
}  // namespace

bool GradientAverager::pack(Bucket& b) {
  bool finite = true;
  std::size_t offset = 0;  // in bytes
  for (std::size_t k : b.params) {
    const Tensor g = params_[k].grad();
    const int64_t n = params_[k].numel();
    unsigned char* dst = b.buffer.data() + offset;
    if (b.dtype == DType::Float32)
      finite &= copy_checking_finite(g.data<float>(), reinterpret_cast<float*>(dst), n);
    else
      finite &= copy_checking_finite(g.data<double>(), reinterpret_cast<double*>(dst), n);
    offset += static_cast<std::size_t>(n) * dtype_size(b.dtype);
  }
  return finite;
}

void GradientAverager::unpack(Bucket& b) {
  const double scale = 1.0 / comm_.size();
  std::size_t offset = 0;
  for (std::size_t k : b.params) {
    Tensor g = params_[k].grad();
    const int64_t n = params_[k].numel();
    const unsigned char* src = b.buffer.data() + offset;
    if (b.dtype == DType::Float32) {
      float* out = g.data<float>();
      const float* in = reinterpret_cast<const float*>(src);
      const float s = static_cast<float>(scale);
      for (int64_t j = 0; j < n; ++j) out[j] = in[j] * s;
    } else {
      double* out = g.data<double>();
      const double* in = reinterpret_cast<const double*>(src);
      for (int64_t j = 0; j < n; ++j) out[j] = in[j] * scale;
    }
    offset += static_cast<std::size_t>(n) * dtype_size(b.dtype);
  }
}

bool GradientAverager::average() {
  const auto start = Clock::now();
  // A parameter this rank's batch did not reach still takes part (with zeros), so every rank reduces
  // the same buckets. There is no public setter for .grad(): a zero-valued backward creates it.
  for (Tensor& p : params_)
    if (!p.grad().defined()) mul(sum(p), 0.0).backward();
  bool finite = true;
  if (!comm_.distributed()) {
    for (const Tensor& p : params_) {
      const Tensor g = p.grad();
      finite &= p.dtype() == DType::Float32 ? all_finite(g.data<float>(), g.numel())
                                            : all_finite(g.data<double>(), g.numel());
    }
    return finite;
  }
  std::vector<int> tickets(buckets_.size(), -1);
  double waited = 0;
  auto wait_for = [&](std::size_t k) {
    const auto t = Clock::now();
    comm_.wait(tickets[k]);
    waited += seconds_since(t);
  };
  for (std::size_t k = 0; k < buckets_.size(); ++k) {
    Bucket& b = buckets_[k];
    finite &= pack(b);
    if (options_.overlap) {
      tickets[k] = comm_.start_all_reduce_sum(b.buffer.data(), b.numel, b.dtype);
      comm_.test_all();  // progress while the next bucket is packed
    } else {
      const auto t = Clock::now();
      comm_.all_reduce_sum(b.buffer.data(), b.numel, b.dtype);
      waited += seconds_since(t);
      unpack(b);
    }
    stats_.bytes += static_cast<int64_t>(b.buffer.size());
  }
  if (options_.overlap)
    for (std::size_t k = 0; k < buckets_.size(); ++k) {
      wait_for(k);
      unpack(buckets_[k]);  // while later buckets are still in flight
    }
  stats_.calls += 1;
  stats_.buckets += static_cast<int64_t>(buckets_.size());
  stats_.wait_seconds += waited;
  stats_.seconds += seconds_since(start);
  return finite;
}

Tensor shard_rows(const Tensor& batch, const Communicator& comm) {
  if (!comm.distributed()) return batch;
  if (batch.dim() == 0) throw std::invalid_argument("shard_rows: a batch needs a leading batch dimension");
  const int64_t rows = batch.size(0), n = comm.size();
  if (rows % n != 0)
    throw std::invalid_argument("shard_rows: batch of " + std::to_string(rows) + " rows is not divisible by " +
                                std::to_string(n) + " ranks");
  const int64_t per_rank = rows / n;
  return batch.narrow(0, comm.rank() * per_rank, per_rank).contiguous();
}

int threads_per_rank(const Communicator& comm, int cores) { return std::max(1, cores / std::max(1, comm.local_size())); }

}  // namespace minitrain::train
