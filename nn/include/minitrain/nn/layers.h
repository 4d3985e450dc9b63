// The basic layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout. Each declares its own typed forward.
#pragma once

#include <minitrain/core/ops.h>
#include <minitrain/nn/module.h>

#include <memory>
#include <optional>

namespace minitrain::nn {

// y = x Wᵀ + b, with W shaped (out, in) as in PyTorch. Initialised U(−1/√in, 1/√in) like PyTorch.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  // A Linear over existing tensors, weight (out, in) and bias (out) or undefined: shares their storage (a
  // head tied to an embedding) and draws nothing.
  explicit Linear(Tensor weight, Tensor bias = Tensor());
  Tensor forward(const Tensor& x);  // (..., in) -> (..., out)
  Tensor operator()(const Tensor& x) { return forward(x); }
  Tensor weight, bias;              // bias undefined when disabled
  int64_t in_features, out_features;
  using Module::reset_parameters;
  void reset_parameters(Generator& gen) override;  // weight and bias U(−1/√in, 1/√in)

 protected:
  std::string extra_repr() const override;
};

// Row lookup: ids (...) -> (..., dim). Initialised N(0, 1) like PyTorch.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator* gen = nullptr);
  Tensor forward(const Tensor& ids);  // int64 ids of any shape -> ids.shape + (embedding_dim)
  Tensor operator()(const Tensor& ids) { return forward(ids); }
  Tensor weight;
  int64_t num_embeddings, embedding_dim;
  using Module::reset_parameters;
  void reset_parameters(Generator& gen) override;  // weight N(0, 1)

 protected:
  std::string extra_repr() const override;
};

// What LayerNorm and RMSNorm share: a module that normalises the last dim, (..., C) -> (..., C), so a
// model can hold either one behind one pointer (the GPT's norm is a config choice).
class Normalization : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

// Normalises the last dim; weight 1 and bias 0 at start (bias optional, as nanoGPT's LayerNorm).
class LayerNorm : public Normalization {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  int64_t dim;
  double eps;
  using Module::reset_parameters;
  void reset_parameters(Generator& gen) override;  // weight 1, bias 0 (draws nothing)

 protected:
  std::string extra_repr() const override;
};

// Normalises the last dim by its root mean square, as torch.nn.RMSNorm: x / sqrt(mean(x²) + eps) · weight,
// weight (dim) 1 at start (none without elementwise_affine). eps nullopt is torch's default (eps=None): the
// machine epsilon of the input's dtype, chosen at each forward (2^-52 for float64, 2^-23 for float32).
class RMSNorm : public Normalization {
 public:
  explicit RMSNorm(int64_t dim, std::optional<double> eps = std::nullopt, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override;  // (..., dim) -> (..., dim)
  double eps_for(DType dtype) const;  // the eps forward uses for an input of `dtype`
  Tensor weight;                      // undefined without elementwise_affine
  int64_t dim;
  std::optional<double> eps;
  using Module::reset_parameters;
  void reset_parameters(Generator& gen) override;  // weight 1 (draws nothing)

 protected:
  std::string extra_repr() const override;
};

// Inverted dropout drawing from a shared generator; the identity in eval mode.
class Dropout : public Module {
 public:
  explicit Dropout(double p, std::shared_ptr<Generator> gen = nullptr);
  Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }
  double p;
  std::shared_ptr<Generator> gen;

 protected:
  std::string extra_repr() const override;
};

}  // namespace minitrain::nn
