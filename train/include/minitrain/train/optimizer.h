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
// buffers, outside autograd.
#pragma once

#include <minitrain/core/tensor.h>

#include <functional>
#include <map>
#include <memory>
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

// Scales all gradients so that their global L2 norm is at most max_norm (if max_norm > 0).
// Returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// nanoGPT's schedule: linear warmup from lr/(warmup+1) (not 0: a step at LR 0 is wasted), cosine decay
// to min_lr at decay_iters, min_lr after.
double cosine_lr(int64_t iter, int64_t warmup_iters, int64_t decay_iters, double lr, double min_lr);

}  // namespace minitrain::train
