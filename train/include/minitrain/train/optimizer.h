// Optimizers over named parameters: AdamW (decoupled weight decay, as nanoGPT: only on tensors with
// dim >= 2) and SGD with momentum. Updates are plain loops over the raw buffers, outside autograd.
#pragma once

#include <minitrain/core/tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace minitrain::train {

using NamedParameters = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  explicit Optimizer(NamedParameters params);
  virtual ~Optimizer() = default;
  virtual void step() = 0;  // parameters without a gradient are skipped
  void zero_grad();
  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  int64_t steps() const { return steps_; }
  // State for checkpoints: tensors named "<param>.<slot>", plus the step count.
  virtual std::map<std::string, Tensor> state_dict() const = 0;
  virtual void load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) = 0;
  const NamedParameters& parameters() const { return params_; }

 protected:
  NamedParameters params_;
  double lr_ = 1e-3;
  int64_t steps_ = 0;
};

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

// Optimizers hold the parameters' own handles, so converting the model with Module::to after making the
// optimizer is fine: the next step converts the optimizer's state (moments, momentum) to the parameters'
// dtype, carrying its values along.
class AdamW : public Optimizer {
 public:
  AdamW(NamedParameters params, const AdamWOptions& options);
  void step() override;
  std::map<std::string, Tensor> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) override;
  // Weight decay goes to matrices and embeddings (dim >= 2), not to biases and LayerNorm gains.
  static bool decays(const Tensor& p) { return p.dim() >= 2; }

 private:
  AdamWOptions options_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
};

struct SGDOptions {
  double lr = 1e-2, momentum = 0.0, weight_decay = 0.0;
};

class SGD : public Optimizer {
 public:
  SGD(NamedParameters params, const SGDOptions& options);
  void step() override;
  std::map<std::string, Tensor> state_dict() const override;
  void load_state_dict(const std::map<std::string, Tensor>& state, int64_t steps) override;

 private:
  SGDOptions options_;
  std::vector<Tensor> momentum_;  // undefined until the first step with momentum
};

// Scales all gradients so that their global L2 norm is at most max_norm (if max_norm > 0).
// Returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// nanoGPT's schedule: linear warmup from lr/(warmup+1) (not 0: a step at LR 0 is wasted), cosine decay
// to min_lr at decay_iters, min_lr after.
double cosine_lr(int64_t iter, int64_t warmup_iters, int64_t decay_iters, double lr, double min_lr);

}  // namespace minitrain::train
