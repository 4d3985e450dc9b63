#include <minitrain/train/optimizer.h>

#include <minitrain/core/factory.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace minitrain::train {

namespace {
// Calls f(param_data, grad_data, n) in the parameter's dtype; the gradient is made contiguous.
template <class F>
void for_param(Tensor& p, F f) {
  Tensor g = p.grad().contiguous();
  if (p.dtype() == DType::Float32)
    f(p.data<float>(), g.data<float>(), p.numel());
  else
    f(p.data<double>(), g.data<double>(), p.numel());
}

// Calls f(data, n) with the tensor's raw contiguous buffer in its own element type.
template <class F>
void dispatch_buffer(Tensor& t, F f) {
  if (t.dtype() == DType::Float32)
    f(t.data<float>(), t.numel());
  else
    f(t.data<double>(), t.numel());
}
}  // namespace

Optimizer::Optimizer(NamedParameters params) : params_(std::move(params)) {
  for (auto& [name, p] : params_)
    if (!p.defined() || !p.is_leaf() || !p.is_contiguous())
      throw std::invalid_argument("Optimizer: parameter '" + name + "' must be a defined contiguous leaf");
}

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_) p.zero_grad();
}

AdamW::AdamW(NamedParameters params, const AdamWOptions& options) : Optimizer(std::move(params)), options_(options) {
  lr_ = options.lr;
  for (auto& [name, p] : params_) {
    exp_avg_.push_back(zeros(p.shape(), p.dtype()));
    exp_avg_sq_.push_back(zeros(p.shape(), p.dtype()));
  }
}

namespace {
// The per-step scalars of AdamW in the parameter's precision. The update runs in that precision, as
// PyTorch's does (float32 math is twice as wide per vector as double, and the step is memory-bound
// anyway); the scalars come from double.
template <class T>
struct AdamWScalars {
  T beta1, beta2, eps, decay, step_size, inv_sqrt_bc2;
};

template <class T>
void adamw_update(T* w, const T* g, T* m, T* v, int64_t n, const AdamWScalars<T> s) {
  // `s` by value: the compiler can then see the stores to w, m, v leave it unchanged, and vectorises.
  for (int64_t j = 0; j < n; ++j) {
    m[j] = s.beta1 * m[j] + (1 - s.beta1) * g[j];
    v[j] = s.beta2 * v[j] + (1 - s.beta2) * g[j] * g[j];
    const T denom = std::sqrt(v[j]) * s.inv_sqrt_bc2 + s.eps;
    w[j] = w[j] * s.decay - s.step_size * m[j] / denom;
  }
}

// A contiguous range of one parameter: the unit the update is split into over threads. The buffers are
// looked up (and their dtypes checked) before the parallel loop, where nothing may throw.
struct UpdateChunk {
  DType dtype;
  void* w;
  const void* g;
  void* m;
  void* v;
  double decay;
  int64_t begin, end;
};

template <class T>
void adamw_update_chunk(const UpdateChunk& c, double beta1, double beta2, double eps, double step_size,
                        double inv_sqrt_bc2) {
  const AdamWScalars<T> s{static_cast<T>(beta1), static_cast<T>(beta2),     static_cast<T>(eps),
                          static_cast<T>(c.decay), static_cast<T>(step_size), static_cast<T>(inv_sqrt_bc2)};
  adamw_update(static_cast<T*>(c.w) + c.begin, static_cast<const T*>(c.g) + c.begin, static_cast<T*>(c.m) + c.begin,
               static_cast<T*>(c.v) + c.begin, c.end - c.begin, s);
}
}  // namespace

void AdamW::step() {
  ++steps_;
  const double bc1 = 1 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double bc2 = 1 - std::pow(options_.beta2, static_cast<double>(steps_));
  const double step_size = lr_ / bc1, inv_sqrt_bc2 = 1 / std::sqrt(bc2);
  // Every parameter's update is cut into chunks and all chunks share one parallel loop: most of a small
  // model's tensors are too small to split on their own (nano: 35% of the elements in tensors < 64K), and
  // one fork for the whole step instead of one per large tensor. Elementwise, so any split gives the
  // same bits.
  constexpr int64_t kChunk = 16 * 1024;
  std::vector<Tensor> grads;  // keeps contiguous copies alive
  std::vector<UpdateChunk> chunks;
  int64_t total = 0;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i].second;
    if (!p.grad().defined()) continue;
    p.bump_version();  // updated in place below: a graph still holding p must not backward through it
    // The model was converted (Module::to) after this optimizer was made: its moments follow, as values.
    if (exp_avg_[i].dtype() != p.dtype()) {
      exp_avg_[i] = exp_avg_[i].to(p.dtype());
      exp_avg_sq_[i] = exp_avg_sq_[i].to(p.dtype());
    }
    grads.push_back(p.grad().contiguous());
    const Tensor& g = grads.back();
    const double decay = decays(p) ? 1 - lr_ * options_.weight_decay : 1.0;
    UpdateChunk c{p.dtype(), nullptr, nullptr, nullptr, nullptr, decay, 0, 0};
    auto bind = [&](auto tag) {  // data<T>() checks each buffer's dtype
      using T = decltype(tag);
      c.w = p.data<T>();
      c.g = g.data<T>();
      c.m = exp_avg_[i].data<T>();
      c.v = exp_avg_sq_[i].data<T>();
    };
    if (p.dtype() == DType::Float32)
      bind(float{});
    else
      bind(double{});
    for (c.begin = 0; c.begin < p.numel(); c.begin += kChunk) {
      c.end = std::min(p.numel(), c.begin + kChunk);
      chunks.push_back(c);
    }
    total += p.numel();
  }
  const auto count = static_cast<int64_t>(chunks.size());
  const double beta1 = options_.beta1, beta2 = options_.beta2, eps = options_.eps;
#pragma omp parallel for schedule(static) if (total >= 64 * 1024)
  for (int64_t k = 0; k < count; ++k) {
    const UpdateChunk& c = chunks[static_cast<std::size_t>(k)];
    if (c.dtype == DType::Float32)
      adamw_update_chunk<float>(c, beta1, beta2, eps, step_size, inv_sqrt_bc2);
    else
      adamw_update_chunk<double>(c, beta1, beta2, eps, step_size, inv_sqrt_bc2);
  }
}

std::map<std::string, Tensor> AdamW::state_dict() const {
  std::map<std::string, Tensor> s;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    s[params_[i].first + ".exp_avg"] = exp_avg_[i];
    s[params_[i].first + ".exp_avg_sq"] = exp_avg_sq_[i];
  }
  return s;
}

namespace {
void load_slot(const std::map<std::string, Tensor>& state, const std::string& key, Tensor& slot) {
  auto it = state.find(key);
  if (it == state.end()) throw std::invalid_argument("optimizer state: missing '" + key + "'");
  if (it->second.shape() != slot.shape())
    throw std::invalid_argument("optimizer state: '" + key + "' has shape " + shape_str(it->second.shape()) +
                                ", expected " + shape_str(slot.shape()));
  slot.copy_(it->second);
}
}  // namespace

void AdamW::load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    load_slot(state, params_[i].first + ".exp_avg", exp_avg_[i]);
    load_slot(state, params_[i].first + ".exp_avg_sq", exp_avg_sq_[i]);
  }
  steps_ = steps;
}

SGD::SGD(NamedParameters params, const SGDOptions& options) : Optimizer(std::move(params)), options_(options) {
  lr_ = options.lr;
  momentum_.resize(params_.size());
}

void SGD::step() {
  ++steps_;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i].second;
    if (!p.grad().defined()) continue;
    p.bump_version();  // updated in place below: a graph still holding p must not backward through it
    const bool first = !momentum_[i].defined();
    if (!first && momentum_[i].dtype() != p.dtype()) momentum_[i] = momentum_[i].to(p.dtype());  // after Module::to
    if (options_.momentum != 0 && first) momentum_[i] = zeros(p.shape(), p.dtype());
    for_param(p, [&](auto* w, const auto* g, int64_t n) {
      using T = std::remove_pointer_t<decltype(w)>;
      T* buf = options_.momentum != 0 ? momentum_[i].data<T>() : nullptr;
      const T mu = static_cast<T>(options_.momentum), wd = static_cast<T>(options_.weight_decay);
      const T lr = static_cast<T>(lr_);
      for (int64_t j = 0; j < n; ++j) {
        T d = g[j] + wd * w[j];
        if (buf) {  // PyTorch's form: the first step's buffer is the gradient itself
          buf[j] = first ? d : mu * buf[j] + d;
          d = buf[j];
        }
        w[j] -= lr * d;
      }
    });
  }
}

std::map<std::string, Tensor> SGD::state_dict() const {
  std::map<std::string, Tensor> s;
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (momentum_[i].defined()) s[params_[i].first + ".momentum"] = momentum_[i];
  return s;
}

void SGD::load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    auto it = state.find(params_[i].first + ".momentum");
    if (it == state.end()) continue;
    momentum_[i] = zeros(params_[i].second.shape(), params_[i].second.dtype());
    load_slot(state, it->first, momentum_[i]);
  }
  steps_ = steps;
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  double total = 0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();  // leaf gradients are contiguous buffers owned by the parameter
    if (!g.defined()) continue;
    dispatch_buffer(g, [&](auto* d, int64_t n) {
      for (int64_t j = 0; j < n; ++j) total += static_cast<double>(d[j]) * d[j];
    });
  }
  const double norm = std::sqrt(total);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const Tensor& p : params) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      dispatch_buffer(g, [&](auto* d, int64_t n) {
        using T = std::remove_pointer_t<decltype(d)>;
        for (int64_t j = 0; j < n; ++j) d[j] = static_cast<T>(d[j] * scale);
      });
    }
  }
  return norm;
}

namespace {
constexpr double kPi = 3.14159265358979323846;
}

double cosine_lr(int64_t iter, int64_t warmup_iters, int64_t decay_iters, double lr, double min_lr) {
  if (iter < warmup_iters) return lr * static_cast<double>(iter + 1) / static_cast<double>(warmup_iters + 1);
  if (iter >= decay_iters) return min_lr;
  const double ratio = static_cast<double>(iter - warmup_iters) / static_cast<double>(decay_iters - warmup_iters);
  const double coeff = 0.5 * (1.0 + std::cos(kPi * ratio));
  return min_lr + coeff * (lr - min_lr);
}

}  // namespace minitrain::train
