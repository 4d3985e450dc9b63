// GradientAverager, shard_rows and threads_per_rank: data parallelism over any Communicator.
#include <minitrain/train/distributed.h>

#include <minitrain/core/ops.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

namespace minitrain::train {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

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
