#include <minitrain/train/optimizer.h>

#include <minitrain/core/factory.h>

#include "optimizer_detail.h"

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

bool default_decay_rule(const std::string&, const Tensor& param) { return param.dim() >= 2; }
bool decay_all(const std::string&, const Tensor&) { return true; }

std::pair<NamedParameters, NamedParameters> split_by_decay(const NamedParameters& params, const DecayRule& rule) {
  std::pair<NamedParameters, NamedParameters> out;
  for (const auto& entry : params) (rule(entry.first, entry.second) ? out.first : out.second).push_back(entry);
  return out;
}

ParamGroup::ParamGroup(const ParamGroup& other)
    : params_(other.params_), options_(other.options_ ? other.options_->clone() : nullptr) {}

ParamGroup& ParamGroup::operator=(const ParamGroup& other) {
  if (this != &other) {
    params_ = other.params_;
    options_ = other.options_ ? other.options_->clone() : nullptr;
  }
  return *this;
}

OptimizerOptions& ParamGroup::options() {
  if (!options_) throw std::logic_error("ParamGroup: this group has no options (an optimizer gives it its defaults)");
  return *options_;
}

const OptimizerOptions& ParamGroup::options() const { return const_cast<ParamGroup*>(this)->options(); }

Optimizer::Optimizer(std::vector<ParamGroup> groups, const OptimizerOptions& defaults) : groups_(std::move(groups)) {
  std::map<std::string, std::size_t> name_group;
  std::map<const void*, std::string> tensor_name;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    if (!groups_[g].has_options()) groups_[g].set_options(defaults.clone());
    initial_lr_.push_back(groups_[g].options().get_lr());
    for (const auto& [name, p] : groups_[g].params()) {
      if (!p.defined() || !p.is_leaf() || !p.is_contiguous())
        throw std::invalid_argument("Optimizer: parameter '" + name + "' must be a defined contiguous leaf");
      if (!name_group.emplace(name, g).second)
        throw std::invalid_argument("Optimizer: the name '" + name + "' is given twice (groups " +
                                    std::to_string(name_group[name]) + " and " + std::to_string(g) +
                                    "); names key the optimizer's state");
      if (!tensor_name.emplace(p.impl(), name).second)
        throw std::invalid_argument("Optimizer: parameter '" + name + "' is the same tensor as '" +
                                    tensor_name[p.impl()] + "'; a parameter may be in one group only, once");
    }
  }
}

void Optimizer::zero_grad() {
  for (auto& group : groups_)
    for (const auto& [name, p] : group.params()) Tensor(p).zero_grad();
}

void Optimizer::set_lr(double lr) {
  for (auto& group : groups_) group.options().set_lr(lr);
}

void Optimizer::scale_lr(double lr, double peak) {
  // (initial / peak) first: exactly 1 for a group made with the peak lr, so that group gets `lr` bit for bit.
  for (std::size_t g = 0; g < groups_.size(); ++g)
    groups_[g].options().set_lr(peak > 0 ? initial_lr_[g] / peak * lr : lr);
}

NamedParameters Optimizer::parameters() const {
  NamedParameters all;
  for (const auto& group : groups_) all.insert(all.end(), group.params().begin(), group.params().end());
  return all;
}

namespace detail {
void check_option(bool ok, const char* optimizer, std::size_t group, const char* what, double value) {
  if (!ok)
    throw std::invalid_argument(std::string(optimizer) + ": parameter group " + std::to_string(group) + ": " + what +
                                ", got " + std::to_string(value));
}

std::vector<ParamGroup> one_group(NamedParameters params) {
  std::vector<ParamGroup> groups;
  groups.emplace_back(std::move(params));
  return groups;
}

void load_slot(const std::map<std::string, Tensor>& state, const std::string& key, Tensor& slot) {
  auto it = state.find(key);
  if (it == state.end()) throw std::invalid_argument("optimizer state: missing '" + key + "'");
  if (it->second.shape() != slot.shape())
    throw std::invalid_argument("optimizer state: '" + key + "' has shape " + shape_str(it->second.shape()) +
                                ", expected " + shape_str(slot.shape()));
  slot.copy_(it->second);
}
}  // namespace detail

using detail::check_option;
using detail::load_slot;
using detail::one_group;

AdamW::AdamW(NamedParameters params, const AdamWOptions& options) : AdamW(one_group(std::move(params)), options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& defaults) : Optimizer(std::move(groups), defaults) {
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const AdamWOptions& o = group_options<AdamWOptions>(g, "AdamW");
    check_option(o.lr() >= 0, "AdamW", g, "lr must be >= 0", o.lr());
    check_option(o.betas().first >= 0 && o.betas().first < 1, "AdamW", g, "betas.first must be in [0, 1)", o.betas().first);
    check_option(o.betas().second >= 0 && o.betas().second < 1, "AdamW", g, "betas.second must be in [0, 1)",
                 o.betas().second);
    check_option(o.eps() >= 0, "AdamW", g, "eps must be >= 0", o.eps());
    check_option(o.weight_decay() >= 0, "AdamW", g, "weight_decay must be >= 0", o.weight_decay());
    if (!o.decay_rule()) throw std::invalid_argument("AdamW: parameter group " + std::to_string(g) + ": decay_rule is empty");
    for (const auto& [name, p] : groups_[g].params()) {
      exp_avg_.push_back(zeros(p.shape(), p.dtype()));
      exp_avg_sq_.push_back(zeros(p.shape(), p.dtype()));
    }
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

// A contiguous range of one parameter: the unit the update is split into over threads, with its group's
// scalars. The buffers are looked up (and their dtypes checked) before the parallel loop, where nothing
// may throw.
struct UpdateChunk {
  DType dtype;
  void* w;
  const void* g;
  void* m;
  void* v;
  double beta1, beta2, eps, decay, step_size, inv_sqrt_bc2;
  int64_t begin, end;
};

template <class T>
void adamw_update_chunk(const UpdateChunk& c) {
  const AdamWScalars<T> s{static_cast<T>(c.beta1), static_cast<T>(c.beta2),     static_cast<T>(c.eps),
                          static_cast<T>(c.decay), static_cast<T>(c.step_size), static_cast<T>(c.inv_sqrt_bc2)};
  adamw_update(static_cast<T*>(c.w) + c.begin, static_cast<const T*>(c.g) + c.begin, static_cast<T*>(c.m) + c.begin,
               static_cast<T*>(c.v) + c.begin, c.end - c.begin, s);
}
}  // namespace

void AdamW::step() {
  ++steps_;
  // Every parameter's update is cut into chunks and all chunks share one parallel loop: most of a small
  // model's tensors are too small to split on their own (nano: 35% of the elements in tensors < 64K), and
  // one fork for the whole step instead of one per large tensor. Elementwise, so any split gives the
  // same bits.
  constexpr int64_t kChunk = 16 * 1024;
  std::vector<Tensor> grads;  // keeps contiguous copies alive
  std::vector<UpdateChunk> chunks;
  int64_t total = 0;
  std::size_t i = 0;  // the parameter's index over all groups
  for (std::size_t group = 0; group < groups_.size(); ++group) {
    const AdamWOptions& o = group_options<AdamWOptions>(group, "AdamW");
    const double bc1 = 1 - std::pow(o.betas().first, static_cast<double>(steps_));
    const double bc2 = 1 - std::pow(o.betas().second, static_cast<double>(steps_));
    for (const auto& [name, param] : groups_[group].params()) {
      Tensor p = param;
      const std::size_t k = i++;
      if (!p.grad().defined()) continue;
      p.bump_version();  // updated in place below: a graph still holding p must not backward through it
      // The model was converted (Module::to) after this optimizer was made: its moments follow, as values.
      if (exp_avg_[k].dtype() != p.dtype()) {
        exp_avg_[k] = exp_avg_[k].to(p.dtype());
        exp_avg_sq_[k] = exp_avg_sq_[k].to(p.dtype());
      }
      grads.push_back(p.grad().contiguous());
      const Tensor& g = grads.back();
      const double decay = o.decay_rule()(name, p) ? 1 - o.lr() * o.weight_decay() : 1.0;
      UpdateChunk c{p.dtype(),         nullptr, nullptr,          nullptr, nullptr, o.betas().first, o.betas().second,
                    o.eps(),           decay,   o.lr() / bc1,     1 / std::sqrt(bc2), 0, 0};
      auto bind = [&](auto tag) {  // data<T>() checks each buffer's dtype
        using T = decltype(tag);
        c.w = p.data<T>();
        c.g = g.data<T>();
        c.m = exp_avg_[k].data<T>();
        c.v = exp_avg_sq_[k].data<T>();
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
  }
  const auto count = static_cast<int64_t>(chunks.size());
#pragma omp parallel for schedule(static) if (total >= 64 * 1024)
  for (int64_t k = 0; k < count; ++k) {
    const UpdateChunk& c = chunks[static_cast<std::size_t>(k)];
    if (c.dtype == DType::Float32)
      adamw_update_chunk<float>(c);
    else
      adamw_update_chunk<double>(c);
  }
}

std::map<std::string, Tensor> AdamW::state_dict() const {
  std::map<std::string, Tensor> s;
  const NamedParameters params = parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    s[params[i].first + ".exp_avg"] = exp_avg_[i];
    s[params[i].first + ".exp_avg_sq"] = exp_avg_sq_[i];
  }
  return s;
}

void AdamW::load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) {
  const NamedParameters params = parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    load_slot(state, params[i].first + ".exp_avg", exp_avg_[i]);
    load_slot(state, params[i].first + ".exp_avg_sq", exp_avg_sq_[i]);
  }
  steps_ = steps;
}

SGD::SGD(NamedParameters params, const SGDOptions& options) : SGD(one_group(std::move(params)), options) {}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& defaults) : Optimizer(std::move(groups), defaults) {
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const SGDOptions& o = group_options<SGDOptions>(g, "SGD");
    check_option(o.lr() >= 0, "SGD", g, "lr must be >= 0", o.lr());
    check_option(o.momentum() >= 0, "SGD", g, "momentum must be >= 0", o.momentum());
    check_option(o.weight_decay() >= 0, "SGD", g, "weight_decay must be >= 0", o.weight_decay());
    if (!o.decay_rule()) throw std::invalid_argument("SGD: parameter group " + std::to_string(g) + ": decay_rule is empty");
  }
  momentum_.resize(parameters().size());
}

void SGD::step() {
  ++steps_;
  std::size_t i = 0;  // the parameter's index over all groups
  for (std::size_t group = 0; group < groups_.size(); ++group) {
    const SGDOptions& o = group_options<SGDOptions>(group, "SGD");
    for (const auto& [name, param] : groups_[group].params()) {
      Tensor p = param;
      const std::size_t k = i++;
      if (!p.grad().defined()) continue;
      p.bump_version();  // updated in place below: a graph still holding p must not backward through it
      const bool first = !momentum_[k].defined();
      if (!first && momentum_[k].dtype() != p.dtype()) momentum_[k] = momentum_[k].to(p.dtype());  // after Module::to
      if (o.momentum() != 0 && first) momentum_[k] = zeros(p.shape(), p.dtype());
      const double weight_decay = o.decay_rule()(name, p) ? o.weight_decay() : 0.0;
      for_param(p, [&](auto* w, const auto* g, int64_t n) {
        using T = std::remove_pointer_t<decltype(w)>;
        T* buf = o.momentum() != 0 ? momentum_[k].data<T>() : nullptr;
        const T mu = static_cast<T>(o.momentum()), wd = static_cast<T>(weight_decay);
        const T lr = static_cast<T>(o.lr());
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
}

std::map<std::string, Tensor> SGD::state_dict() const {
  std::map<std::string, Tensor> s;
  const NamedParameters params = parameters();
  for (std::size_t i = 0; i < params.size(); ++i)
    if (momentum_[i].defined()) s[params[i].first + ".momentum"] = momentum_[i];
  return s;
}

void SGD::load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) {
  const NamedParameters params = parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    auto it = state.find(params[i].first + ".momentum");
    if (it == state.end()) continue;
    momentum_[i] = zeros(params[i].second.shape(), params[i].second.dtype());
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
