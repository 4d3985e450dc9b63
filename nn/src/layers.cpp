#include <minitrain/nn/layers.h>

#include <minitrain/core/factory.h>
#include <minitrain/nn/init.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace minitrain::nn {

namespace {
void check_positive(int64_t v, const char* layer, const char* what) {
  if (v <= 0) throw std::invalid_argument(std::string(layer) + ": " + what + " must be positive, got " + std::to_string(v));
}
}  // namespace

Linear::Linear(int64_t in, int64_t out, bool with_bias, Generator* gen)
    : Module("Linear"), in_features(in), out_features(out) {
  check_positive(in, "Linear", "in_features");
  check_positive(out, "Linear", "out_features");
  weight = register_parameter("weight", empty({out, in}));
  if (with_bias) bias = register_parameter("bias", empty({out}));
  reset_parameters(gen ? *gen : default_generator());
}

Linear::Linear(Tensor weight_, Tensor bias_) : Module("Linear") {
  if (!weight_.defined() || weight_.dim() != 2 ||
      (bias_.defined() && (bias_.dim() != 1 || bias_.size(0) != weight_.size(0))))
    throw std::invalid_argument("Linear: weight " + (weight_.defined() ? shape_str(weight_.shape()) : std::string("undefined")) +
                                " and bias " + (bias_.defined() ? shape_str(bias_.shape()) : std::string("none")) +
                                " are not (out, in) and (out)");
  out_features = weight_.size(0);
  in_features = weight_.size(1);
  weight = register_parameter("weight", std::move(weight_));
  if (bias_.defined()) bias = register_parameter("bias", std::move(bias_));
}

void Linear::reset_parameters(Generator& gen) {
  NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  uniform_(weight, -bound, bound, gen);
  if (bias.defined()) uniform_(bias, -bound, bound, gen);
}

Tensor Linear::forward(const Tensor& x) {
  // x: (..., in) -> (..., out): one gemm over the flattened leading dims (not a batch of small ones), Wᵀ
  // passed as a transpose flag and the bias as the gemm's starting value (core's linear).
  if (x.dim() < 1 || x.size(-1) != in_features)
    throw std::invalid_argument("Linear: input " + shape_str(x.shape()) + " does not end in in_features " +
                                std::to_string(in_features));
  return run_forward_hooks({x}, linear(x, weight, bias));
}

std::string Linear::extra_repr() const {
  return "(in=" + std::to_string(in_features) + ", out=" + std::to_string(out_features) +
         ", bias=" + (bias.defined() ? "true" : "false") + ")";
}

Embedding::Embedding(int64_t num, int64_t dim_, Generator* gen)
    : Module("Embedding"), num_embeddings(num), embedding_dim(dim_) {
  check_positive(num, "Embedding", "num_embeddings");
  check_positive(dim_, "Embedding", "embedding_dim");
  weight = register_parameter("weight", empty({num, dim_}));
  reset_parameters(gen ? *gen : default_generator());
}

void Embedding::reset_parameters(Generator& gen) {
  NoGradGuard no_grad;
  normal_(weight, 0.0, 1.0, gen);
}

Tensor Embedding::forward(const Tensor& ids) { return run_forward_hooks({ids}, embedding(weight, ids)); }

std::string Embedding::extra_repr() const {
  return "(" + std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim) + ")";
}

LayerNorm::LayerNorm(int64_t dim_, double eps_, bool with_bias) : Normalization("LayerNorm"), dim(dim_), eps(eps_) {
  check_positive(dim_, "LayerNorm", "dim");
  weight = register_parameter("weight", empty({dim_}));
  if (with_bias) bias = register_parameter("bias", empty({dim_}));
  reset_parameters(default_generator());
}

void LayerNorm::reset_parameters(Generator&) {
  NoGradGuard no_grad;
  constant_(weight, 1.0);
  if (bias.defined()) constant_(bias, 0.0);
}

Tensor LayerNorm::forward(const Tensor& x) { return run_forward_hooks({x}, layer_norm(x, weight, bias, eps)); }

std::string LayerNorm::extra_repr() const {
  return "(" + std::to_string(dim) + ", eps=" + std::to_string(eps) + ", bias=" + (bias.defined() ? "true" : "false") + ")";
}

RMSNorm::RMSNorm(int64_t dim_, std::optional<double> eps_, bool elementwise_affine)
    : Normalization("RMSNorm"), dim(dim_), eps(eps_) {
  check_positive(dim_, "RMSNorm", "dim");
  if (eps && !(*eps >= 0)) throw std::invalid_argument("RMSNorm: eps must be >= 0 (or nullopt), got " + std::to_string(*eps));
  if (elementwise_affine) weight = register_parameter("weight", empty({dim_}));
  reset_parameters(default_generator());
}

void RMSNorm::reset_parameters(Generator&) {
  NoGradGuard no_grad;
  if (weight.defined()) constant_(weight, 1.0);
}

double RMSNorm::eps_for(DType dtype) const {
  if (eps) return *eps;
  return dtype == DType::Float64 ? std::numeric_limits<double>::epsilon() : std::numeric_limits<float>::epsilon();
}

Tensor RMSNorm::forward(const Tensor& x) {
  // x: (..., dim) -> (..., dim). Without a weight the op cannot see dim, so the module checks it.
  if (x.defined() && (x.dim() < 1 || x.size(-1) != dim))
    throw std::invalid_argument("RMSNorm: input " + shape_str(x.shape()) + " does not end in dim " + std::to_string(dim));
  return run_forward_hooks({x}, rms_norm(x, weight, x.defined() ? eps_for(x.dtype()) : 0.0));
}

std::string RMSNorm::extra_repr() const {
  std::ostringstream eps_text;
  if (eps)
    eps_text << *eps;
  else
    eps_text << "None";
  return "(" + std::to_string(dim) + ", eps=" + eps_text.str() + ", elementwise_affine=" + (weight.defined() ? "true" : "false") + ")";
}

Dropout::Dropout(double p_, std::shared_ptr<Generator> gen_) : Module("Dropout"), p(p_), gen(std::move(gen_)) {
  if (!(p >= 0 && p < 1)) throw std::invalid_argument("Dropout: p must be in [0, 1), got " + std::to_string(p));
  if (!gen) gen = std::make_shared<Generator>(default_generator().next_u64());
}

Tensor Dropout::forward(const Tensor& x) { return run_forward_hooks({x}, dropout(x, p, is_training(), *gen)); }

std::string Dropout::extra_repr() const { return "(p=" + std::to_string(p) + ")"; }

}  // namespace minitrain::nn
