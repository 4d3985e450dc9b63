// Muon (torch.optim.Muon) and MuonWithAdamW; optimizer.h says what each computes.
#include <minitrain/train/optimizer.h>

#include <minitrain/core/factory.h>
#include <minitrain/core/ops.h>

#include "optimizer_detail.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace minitrain::train {

using detail::check_option;
using detail::load_slot;
using detail::one_group;

Tensor newton_schulz(const Tensor& m, const MuonOptions::Coefficients& coefficients, int64_t steps, double eps) {
  if (m.dim() != 2 || (m.dtype() != DType::Float32 && m.dtype() != DType::Float64))
    throw std::invalid_argument("newton_schulz: expected a float32 or float64 matrix, got shape " + shape_str(m.shape()) +
                                " of " + dtype_name(m.dtype()));
  if (steps < 0) throw std::invalid_argument("newton_schulz: steps must be >= 0, got " + std::to_string(steps));
  NoGradGuard no_grad;
  const auto [a, b, c] = coefficients;
  // Iterate on the wide orientation: A = XXᵀ is then the smaller Gram matrix (min(R, C) squared).
  const bool tall = m.size(0) > m.size(1);
  Tensor x = tall ? m.transpose(0, 1) : m;
  // The Frobenius norm bounds the spectral norm: every singular value starts in [0, 1], where the
  // polynomial pushes them towards 1.
  const Tensor scale = clamp_min(norm(x), eps);
  x = div(x, scale);
  for (int64_t i = 0; i < steps; ++i) {
    const Tensor gram = matmul(x, x.transpose(0, 1));                 // (r, r)
    const Tensor poly = add(mul(gram, b), mul(matmul(gram, gram), c));  // bA + cA²
    x = add(mul(x, a), matmul(poly, x));                              // (r, C)
  }
  return tall ? x.transpose(0, 1).contiguous() : x.contiguous();
}

double muon_adjusted_lr(double lr, MuonLrAdjustment adjust, int64_t rows, int64_t cols) {
  const double r = static_cast<double>(rows), c = static_cast<double>(cols);
  switch (adjust) {
    case MuonLrAdjustment::Original:
      return lr * std::sqrt(std::max(1.0, r / c));
    case MuonLrAdjustment::MatchRmsAdamW:
      return lr * (0.2 * std::sqrt(std::max(r, c)));
    case MuonLrAdjustment::SpectralUnclamped:
      return lr * std::sqrt(r / c);
  }
  throw std::invalid_argument("muon_adjusted_lr: unknown MuonLrAdjustment " + std::to_string(static_cast<int>(adjust)));
}

Muon::Muon(NamedParameters params, const MuonOptions& options) : Muon(one_group(std::move(params)), options) {}

Muon::Muon(std::vector<ParamGroup> groups, const MuonOptions& defaults) : Optimizer(std::move(groups), defaults) {
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const MuonOptions& o = group_options<MuonOptions>(g, "Muon");
    check_option(o.lr() >= 0, "Muon", g, "lr must be >= 0", o.lr());
    check_option(o.momentum() >= 0 && o.momentum() < 1, "Muon", g, "momentum must be in [0, 1)", o.momentum());
    check_option(o.eps() >= 0, "Muon", g, "eps must be >= 0", o.eps());
    check_option(o.weight_decay() >= 0, "Muon", g, "weight_decay must be >= 0", o.weight_decay());
    // torch refuses 100 or more steps: each is three matrix products.
    check_option(o.ns_steps() >= 0 && o.ns_steps() < 100, "Muon", g, "ns_steps must be in [0, 100)",
                 static_cast<double>(o.ns_steps()));
    for (double k : o.ns_coefficients()) check_option(std::isfinite(k), "Muon", g, "ns_coefficients must be finite", k);
    if (!o.decay_rule()) throw std::invalid_argument("Muon: parameter group " + std::to_string(g) + ": decay_rule is empty");
    for (const auto& [name, p] : groups_[g].params()) {
      if (p.dim() != 2)
        throw std::invalid_argument("Muon: parameter '" + name + "' has shape " + shape_str(p.shape()) +
                                    "; Muon takes matrices (2-D) only: give it to AdamW (split_for_muon, MuonWithAdamW)");
      momentum_buffer_.push_back(zeros(p.shape(), p.dtype()));
    }
  }
}

namespace {
// torch's lerp, start + w·(end − start), in its two forms (the one that rounds less for each half of w),
// so that the buffers agree with torch's to the last bit where the arithmetic allows.
template <class T>
T lerp(T start, T end, T w) {
  return std::abs(w) < T(0.5) ? start + w * (end - start) : end - (end - start) * (T(1) - w);
}

// buf <- lerp(buf, g, 1 − μ); update <- nesterov ? lerp(g, buf, μ) : buf.
template <class T>
void momentum_update(T* buf, const T* g, T* update, int64_t n, double momentum, bool nesterov) {
  const T mu = static_cast<T>(momentum), one_minus_mu = static_cast<T>(1 - momentum);
  for (int64_t j = 0; j < n; ++j) {
    buf[j] = lerp(buf[j], g[j], one_minus_mu);
    update[j] = nesterov ? lerp(g[j], buf[j], mu) : buf[j];
  }
}

// p <- p·decay − lr·o
template <class T>
void apply_update(T* p, const T* o, int64_t n, double decay, double lr) {
  const T d = static_cast<T>(decay), step = static_cast<T>(lr);
  for (int64_t j = 0; j < n; ++j) p[j] = p[j] * d - step * o[j];
}
}  // namespace

void Muon::step() {
  ++steps_;
  std::size_t i = 0;  // the parameter's index over all groups
  for (std::size_t group = 0; group < groups_.size(); ++group) {
    const MuonOptions& o = group_options<MuonOptions>(group, "Muon");
    for (const auto& [name, param] : groups_[group].params()) {
      Tensor p = param;
      const std::size_t k = i++;
      if (!p.grad().defined()) continue;
      p.bump_version();  // updated in place below: a graph still holding p must not backward through it
      Tensor& buf = momentum_buffer_[k];
      if (buf.dtype() != p.dtype()) buf = buf.to(p.dtype());  // the model was converted with Module::to
      const Tensor g = p.grad().contiguous();
      Tensor update = empty(p.shape(), p.dtype());
      Tensor ortho;
      const double decay = o.decay_rule()(name, p) ? 1 - o.lr() * o.weight_decay() : 1.0;
      const double lr = muon_adjusted_lr(o.lr(), o.adjust_lr_fn(), p.size(0), p.size(1));
      auto run = [&](auto tag) {
        using T = decltype(tag);
        momentum_update(buf.data<T>(), g.data<T>(), update.data<T>(), p.numel(), o.momentum(), o.nesterov());
        ortho = newton_schulz(update, o.ns_coefficients(), o.ns_steps(), o.eps());
        apply_update(p.data<T>(), ortho.data<T>(), p.numel(), decay, lr);
      };
      if (p.dtype() == DType::Float32)
        run(float{});
      else
        run(double{});
    }
  }
}

std::map<std::string, Tensor> Muon::state_dict() const {
  std::map<std::string, Tensor> s;
  const NamedParameters params = parameters();
  for (std::size_t i = 0; i < params.size(); ++i) s[params[i].first + ".momentum_buffer"] = momentum_buffer_[i];
  return s;
}

void Muon::load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) {
  const NamedParameters params = parameters();
  for (std::size_t i = 0; i < params.size(); ++i) load_slot(state, params[i].first + ".momentum_buffer", momentum_buffer_[i]);
  steps_ = steps;
}

namespace {
// Every group of a MuonWithAdamW says which optimizer steps it; a group without options cannot.
std::vector<ParamGroup> require_options(std::vector<ParamGroup> groups) {
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const bool known = groups[g].has_options() && (dynamic_cast<const MuonOptions*>(&groups[g].options()) ||
                                                   dynamic_cast<const AdamWOptions*>(&groups[g].options()));
    if (!known)
      throw std::invalid_argument("MuonWithAdamW: parameter group " + std::to_string(g) +
                                  " needs MuonOptions or AdamWOptions (they choose the optimizer that steps it)");
  }
  return groups;
}
}  // namespace

MuonWithAdamW::MuonWithAdamW(std::vector<ParamGroup> groups) : Optimizer(require_options(std::move(groups)), MuonOptions()) {
  std::vector<ParamGroup> muon_groups, adamw_groups;
  std::vector<bool> is_muon;
  for (const ParamGroup& group : groups_) {
    is_muon.push_back(dynamic_cast<const MuonOptions*>(&group.options()) != nullptr);
    (is_muon.back() ? muon_groups : adamw_groups).push_back(group);
  }
  // The inner optimizers check their own groups' options and parameters (Muon refuses a vector).
  if (!muon_groups.empty()) muon_ = std::make_unique<Muon>(std::move(muon_groups));
  if (!adamw_groups.empty()) adamw_ = std::make_unique<AdamW>(std::move(adamw_groups));
  std::size_t next_muon = 0, next_adamw = 0;
  for (bool m : is_muon)
    route_.emplace_back(m ? static_cast<Optimizer*>(muon_.get()) : adamw_.get(), m ? next_muon++ : next_adamw++);
}

void MuonWithAdamW::step() {
  ++steps_;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    auto [inner, index] = route_[g];
    inner->param_groups()[index].set_options(groups_[g].options().clone());
  }
  if (muon_) muon_->step();
  if (adamw_) adamw_->step();  // its own step count, equal to ours, drives its bias correction
}

std::map<std::string, Tensor> MuonWithAdamW::state_dict() const {
  std::map<std::string, Tensor> s;
  if (muon_) s = muon_->state_dict();
  if (adamw_) s.merge(adamw_->state_dict());  // names are unique over all groups
  return s;
}

void MuonWithAdamW::load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) {
  if (muon_) muon_->load_state_dict(state, steps);
  if (adamw_) adamw_->load_state_dict(state, steps);
  steps_ = steps;
}

std::pair<NamedParameters, NamedParameters> split_for_muon(const NamedParameters& params,
                                                           const std::vector<std::string>& not_hidden) {
  std::pair<NamedParameters, NamedParameters> out;
  for (const auto& entry : params) {
    const bool excluded = std::find(not_hidden.begin(), not_hidden.end(), entry.first) != not_hidden.end();
    (entry.second.dim() == 2 && !excluded ? out.first : out.second).push_back(entry);
  }
  return out;
}

std::unique_ptr<MuonWithAdamW> make_muon_with_adamw(const NamedParameters& params, const MuonOptions& muon,
                                                    const AdamWOptions& adamw) {
  auto [hidden, rest] = split_for_muon(params);
  std::vector<ParamGroup> groups;
  groups.emplace_back(std::move(hidden), muon);
  groups.emplace_back(std::move(rest), adamw);
  return std::make_unique<MuonWithAdamW>(std::move(groups));
}

}  // namespace minitrain::train
