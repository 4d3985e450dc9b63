// Optimizers over named parameters, in the shape of torch::optim: options with chained setters, parameter
// groups each with its own options, and one rule for which tensors are weight-decayed.
//
//   train::AdamW opt(model.named_parameters(), train::AdamWOptions(3e-3).betas({0.9, 0.99}).weight_decay(0.1));
//
//   auto [decay, no_decay] = train::split_by_decay(model.named_parameters());   // or any split of your own
//   train::AdamW opt({train::ParamGroup(decay, train::AdamWOptions(1e-3).weight_decay(0.1)),
//                     train::ParamGroup(no_decay, train::AdamWOptions(1e-3).weight_decay(0.0))});
//
// Weight decay goes to the tensors the options' decay_rule accepts; the default rule (default_decay_rule)
// is nanoGPT's: tensors with dim >= 2 (matrices, embeddings, the tied head), not biases or LayerNorm gains.
// `decay_rule(decay_all)` decays every tensor, as torch.optim does. Updates are plain loops over the raw
// buffers, outside autograd (Muon's Newton-Schulz goes through matmul, under NoGradGuard, for BLAS).
//
// Muon for the hidden matrices and AdamW for the rest (modded-nanogpt's and nanochat's recipe) is one
// optimizer, MuonWithAdamW, whose groups are stepped by the optimizer their options belong to:
//
//   auto [hidden, rest] = train::split_for_muon(model.named_parameters());
//   train::MuonWithAdamW opt({train::ParamGroup(hidden, train::MuonOptions(0.02)),
//                             train::ParamGroup(rest, train::AdamWOptions(1e-3))});
//   opt.scale_lr(schedule_lr, 1e-3);  // every group at its own lr x schedule_lr / 1e-3 (torch's LambdaLR)
#pragma once

#include <minitrain/core/tensor.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace minitrain::train {

using NamedParameters = std::vector<std::pair<std::string, Tensor>>;

// Which parameters weight decay applies to, by name and tensor.
using DecayRule = std::function<bool(const std::string& name, const Tensor& param)>;
bool default_decay_rule(const std::string& name, const Tensor& param);  // param.dim() >= 2
bool decay_all(const std::string& name, const Tensor& param);           // every tensor

// The parameters the default rule decays, and the rest (nanoGPT's two groups), each in the given order.
std::pair<NamedParameters, NamedParameters> split_by_decay(const NamedParameters& params,
                                                           const DecayRule& rule = default_decay_rule);

// A named option with a chained setter, as torch's TORCH_ARG: `options.lr(3e-3).eps(1e-6)` sets and returns
// the options, `options.lr()` reads.
#define MINITRAIN_OPTION(T, NAME, DEFAULT)          \
 public:                                            \
  auto NAME(const T& value)->decltype(*this) {      \
    this->NAME##_ = value;                          \
    return *this;                                   \
  }                                                 \
  const T& NAME() const noexcept { return NAME##_; } \
                                                    \
 private:                                           \
  T NAME##_ = DEFAULT

// What every optimizer's options have: a learning rate (schedules set it) and a decay rule.
class OptimizerOptions {
 public:
  virtual ~OptimizerOptions() = default;
  virtual std::unique_ptr<OptimizerOptions> clone() const = 0;
  virtual double get_lr() const = 0;
  virtual void set_lr(double lr) = 0;
  virtual const DecayRule& get_decay_rule() const = 0;
};

class AdamWOptions : public OptimizerOptions {
 public:
  AdamWOptions(double lr = 1e-3) : lr_(lr) {}  // implicit, as torch's: AdamW(params, 3e-3) works
  MINITRAIN_OPTION(double, lr, 1e-3);
  using Betas = std::pair<double, double>;
  MINITRAIN_OPTION(Betas, betas, Betas(0.9, 0.999));
  MINITRAIN_OPTION(double, eps, 1e-8);
  MINITRAIN_OPTION(double, weight_decay, 1e-2);
  MINITRAIN_OPTION(DecayRule, decay_rule, default_decay_rule);

 public:
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<AdamWOptions>(*this); }
  double get_lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }
  const DecayRule& get_decay_rule() const override { return decay_rule_; }
};

// Plain SGD with optional momentum (PyTorch's form) and L2 weight decay added to the gradient.
class SGDOptions : public OptimizerOptions {
 public:
  SGDOptions(double lr = 1e-2) : lr_(lr) {}  // implicit: SGD(params, {0.01}) works
  MINITRAIN_OPTION(double, lr, 1e-2);
  MINITRAIN_OPTION(double, momentum, 0.0);
  MINITRAIN_OPTION(double, weight_decay, 0.0);
  MINITRAIN_OPTION(DecayRule, decay_rule, default_decay_rule);

 public:
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<SGDOptions>(*this); }
  double get_lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }
  const DecayRule& get_decay_rule() const override { return decay_rule_; }
};

// How Muon scales the learning rate by the shape (rows, cols) of a matrix (torch.optim.Muon's adjust_lr_fn):
//   Original          lr·sqrt(max(1, rows/cols))  (Keller Jordan's; torch's default, adjust_lr_fn None)
//   MatchRmsAdamW     lr·0.2·sqrt(max(rows, cols)) (Moonshot's: the update's RMS of AdamW's, so AdamW's lr
//                                                   and weight decay carry over)
//   SpectralUnclamped lr·sqrt(rows/cols)           (Bernstein's)
enum class MuonLrAdjustment { Original, MatchRmsAdamW, SpectralUnclamped };

// Muon's options, with torch.optim.Muon's names and defaults. Weight decay is decoupled (p <- p·(1 − lr·wd),
// with the unadjusted lr) and goes to the tensors decay_rule accepts; Muon's tensors are all matrices, which
// the default rule decays, so by default every one is decayed, as in torch.
class MuonOptions : public OptimizerOptions {
 public:
  MuonOptions(double lr = 1e-3) : lr_(lr) {}  // implicit, as AdamWOptions
  using Coefficients = std::array<double, 3>;
  MINITRAIN_OPTION(double, lr, 1e-3);
  MINITRAIN_OPTION(double, momentum, 0.95);
  MINITRAIN_OPTION(bool, nesterov, true);
  // (a, b, c) of the quintic Newton–Schulz step X <- aX + (bA + cA²)X, A = XXᵀ (Keller Jordan's values)
  MINITRAIN_OPTION(Coefficients, ns_coefficients, (Coefficients{3.4445, -4.775, 2.0315}));
  MINITRAIN_OPTION(double, eps, 1e-7);  // the Frobenius norm divided by is at least eps
  MINITRAIN_OPTION(int64_t, ns_steps, 5);
  MINITRAIN_OPTION(double, weight_decay, 0.1);
  MINITRAIN_OPTION(MuonLrAdjustment, adjust_lr_fn, MuonLrAdjustment::Original);
  MINITRAIN_OPTION(DecayRule, decay_rule, default_decay_rule);

 public:
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<MuonOptions>(*this); }
  double get_lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }
  const DecayRule& get_decay_rule() const override { return decay_rule_; }
};

#undef MINITRAIN_OPTION

// Some parameters and the options they are optimised with (torch::optim::OptimizerParamGroup). A group
// made without options takes the optimizer's defaults.
class ParamGroup {
 public:
  explicit ParamGroup(NamedParameters params) : params_(std::move(params)) {}
  template <class Options, class = std::enable_if_t<std::is_base_of_v<OptimizerOptions, Options>>>
  ParamGroup(NamedParameters params, const Options& options)
      : params_(std::move(params)), options_(std::make_unique<Options>(options)) {}
  ParamGroup(const ParamGroup& other);
  ParamGroup& operator=(const ParamGroup& other);
  ParamGroup(ParamGroup&&) = default;
  ParamGroup& operator=(ParamGroup&&) = default;

  const NamedParameters& params() const { return params_; }
  bool has_options() const { return options_ != nullptr; }
  OptimizerOptions& options();  // throws when the group has none (yet)
  const OptimizerOptions& options() const;
  void set_options(std::unique_ptr<OptimizerOptions> options) { options_ = std::move(options); }

 private:
  NamedParameters params_;
  std::unique_ptr<OptimizerOptions> options_;
};

class Optimizer {
 public:
  // Every group without options gets a copy of `defaults`. A parameter may be in one group only, and names
  // are unique over all groups (they key the state for checkpoints).
  Optimizer(std::vector<ParamGroup> groups, const OptimizerOptions& defaults);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;  // a copy would share the state tensors with the original
  Optimizer& operator=(const Optimizer&) = delete;
  virtual void step() = 0;  // parameters without a gradient are skipped
  void zero_grad();
  // What a schedule does (nanoGPT's loop, torch's schedulers): sets the learning rate of every group. A
  // schedule that keeps the groups' ratios sets each one through param_groups()[i].options().set_lr.
  void set_lr(double lr);
  // What a schedule does when the groups' learning rates differ (torch's LambdaLR; the loops of
  // modded-nanogpt and nanochat, lr = initial_lr × multiplier): every group's lr becomes
  // lr × (its initial lr / peak), its initial lr being the one it had when the optimizer was made. A group
  // made with lr == peak gets `lr` exactly (as set_lr would give it). peak <= 0: every group gets `lr`.
  void scale_lr(double lr, double peak);
  double initial_lr(std::size_t group) const { return initial_lr_.at(group); }
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  int64_t steps() const { return steps_; }
  // State for checkpoints: tensors named "<param>.<slot>", plus the step count. It is keyed by parameter
  // name, so it loads into an optimizer with the same parameters however they are grouped; the groups'
  // options are not saved (they come from the code that builds the optimizer, and the schedule).
  virtual std::map<std::string, Tensor> state_dict() const = 0;
  virtual void load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) = 0;
  NamedParameters parameters() const;  // every group's, in order

 protected:
  // The groups' options as the optimizer's own type: throws, naming the group, when a group was given
  // another optimizer's options.
  template <class Options>
  const Options& group_options(std::size_t group, const char* optimizer) const;
  std::vector<ParamGroup> groups_;
  std::vector<double> initial_lr_;  // one per group, at construction
  int64_t steps_ = 0;
};

// Optimizers hold the parameters' own handles, so converting the model with Module::to after making the
// optimizer is fine: the next step converts the optimizer's state (moments, momentum) to the parameters'
// dtype, carrying its values along.
class AdamW : public Optimizer {
 public:
  AdamW(NamedParameters params, const AdamWOptions& options = AdamWOptions());
  explicit AdamW(std::vector<ParamGroup> groups, const AdamWOptions& defaults = AdamWOptions());
  void step() override;
  std::map<std::string, Tensor> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) override;

 private:
  // One per parameter, over the groups in order.
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
};

class SGD : public Optimizer {
 public:
  SGD(NamedParameters params, const SGDOptions& options = SGDOptions());
  explicit SGD(std::vector<ParamGroup> groups, const SGDOptions& defaults = SGDOptions());
  void step() override;
  std::map<std::string, Tensor> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) override;

 private:
  std::vector<Tensor> momentum_;  // one per parameter; undefined until its first step with momentum
};

// Muon (torch.optim.Muon, Keller Jordan's optimizer for the hidden matrices of a network), for 2-D
// parameters only: any other is refused naming it. Per step, for each matrix with a gradient g, as
// torch.optim.Muon computes it (its source, not its docstring, is the reference):
//   B <- B + (1 − μ)(g − B)                 momentum buffer, an exponential average (torch's lerp)
//   U <- g + μ(B − g) if nesterov, else B
//   O <- newton_schulz(U)                   (approximately) the orthogonal factor of U
//   p <- p·(1 − lr·wd)                      decoupled weight decay, unadjusted lr, if decay_rule(p)
//   p <- p − adjust(lr, shape)·O            adjust_lr_fn, MuonLrAdjustment
// One deliberate difference: torch runs Newton–Schulz in bfloat16 whatever the parameter's dtype; minitrain
// runs it in the parameter's dtype (float32 or float64), which on a CPU costs the same and rounds far less.
// The parity fixtures (tests/reference/fixtures_muon.py) compare against torch's Muon with only that cast
// removed, to float64/float32 precision, and against the unmodified torch Muon to bfloat16 precision.
// State: "<param>.momentum_buffer" (torch's name), zeros until the first step.
class Muon : public Optimizer {
 public:
  Muon(NamedParameters params, const MuonOptions& options = MuonOptions());
  explicit Muon(std::vector<ParamGroup> groups, const MuonOptions& defaults = MuonOptions());
  void step() override;
  std::map<std::string, Tensor> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) override;

 private:
  std::vector<Tensor> momentum_buffer_;  // one per parameter, over the groups in order
};

// The orthogonalisation step of Muon: `steps` iterations of X <- aX + (bA + cA²)X, A = XXᵀ, from
// X = m / max(‖m‖_F, eps), on the transpose when m has more rows than columns (so A is the smaller Gram
// matrix). With the default coefficients the singular values of the result land near 1 (0.65 to 1.13 in
// tests/train/test_muon.cpp), not at 1: the coefficients trade exactness for speed, and a singular value
// below about 1/500 of ‖m‖_F is not lifted that far in 5 steps. m: (R, C) float32 or float64 -> (R, C).
Tensor newton_schulz(const Tensor& m, const MuonOptions::Coefficients& coefficients, int64_t steps, double eps);

// The lr Muon applies to a (rows, cols) matrix.
double muon_adjusted_lr(double lr, MuonLrAdjustment adjust, int64_t rows, int64_t cols);

// Muon for the hidden matrices, AdamW for the rest, in one optimizer (as modded-nanogpt and nanochat train):
// each group is stepped by the optimizer its options belong to, MuonOptions or AdamWOptions, so every group
// must be given one of them. It is an Optimizer like any other (Trainer, checkpoints, schedules take it):
// one step count, zero_grad over all groups, state keyed by parameter name (Muon's momentum_buffer, AdamW's
// exp_avg and exp_avg_sq). The groups' learning rates differ (Muon's ~0.02, AdamW's ~1e-3), so a schedule
// uses scale_lr(lr, peak), which keeps their ratios, rather than set_lr, which would give all one lr.
//
//   auto [hidden, rest] = train::split_for_muon(model.named_parameters());
//   train::MuonWithAdamW opt({train::ParamGroup(hidden, train::MuonOptions(0.02)),
//                             train::ParamGroup(rest, train::AdamWOptions(1e-3).weight_decay(0.1))});
//   opt.scale_lr(cosine_lr(iter, ..., 1e-3, 1e-4), 1e-3);  // Muon's lr follows at 20x
//
// A PyTorch user would write two optimizers (torch.optim.Muon and torch.optim.AdamW) stepped together, or
// Keller Jordan's MuonWithAuxAdam; this is the latter, so that Trainer and checkpoints see one optimizer.
class MuonWithAdamW : public Optimizer {
 public:
  explicit MuonWithAdamW(std::vector<ParamGroup> groups);
  void step() override;
  std::map<std::string, Tensor> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) override;

 private:
  // The groups' options are the ones in groups_ (what set_lr and param_groups() change); each step copies
  // them into the two inner optimizers, which hold the state.
  std::unique_ptr<Muon> muon_;
  std::unique_ptr<AdamW> adamw_;
  std::vector<std::pair<Optimizer*, std::size_t>> route_;  // groups_[i] is inner group route_[i].second
};

// The GPT's parameters Muon is for, and the rest: the first holds the matrices (dim() == 2) whose names are
// not in `not_hidden` (by default minitrain's GPT's token and position embeddings and its head, which is
// tied to the token embedding: embeddings and heads are lookups and classifiers, not hidden layers, and
// Muon's authors give them to AdamW); the second everything else (embeddings, head, LayerNorm gains,
// biases), each in the given order. By name because a list of named parameters is all it sees; another
// model names its own embeddings and head.
std::pair<NamedParameters, NamedParameters> split_for_muon(
    const NamedParameters& params,
    const std::vector<std::string>& not_hidden = {"transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"});

// split_for_muon's two halves as MuonWithAdamW's two groups: group 0 Muon, group 1 AdamW.
std::unique_ptr<MuonWithAdamW> make_muon_with_adamw(const NamedParameters& params, const MuonOptions& muon,
                                                    const AdamWOptions& adamw);

template <class Options>
const Options& Optimizer::group_options(std::size_t group, const char* optimizer) const {
  const auto* options = dynamic_cast<const Options*>(&groups_[group].options());
  if (!options)
    throw std::invalid_argument(std::string(optimizer) + ": parameter group " + std::to_string(group) +
                                " was given another optimizer's options");
  return *options;
}

// Scales all gradients so that their global L2 norm is at most max_norm (if max_norm > 0).
// Returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// nanoGPT's schedule: linear warmup from lr/(warmup+1) (not 0: a step at LR 0 is wasted), cosine decay
// to min_lr at decay_iters, min_lr after.
double cosine_lr(int64_t iter, int64_t warmup_iters, int64_t decay_iters, double lr, double min_lr);

}  // namespace minitrain::train
