#include <minitrain/train/attention_watch.h>

#include <minitrain/train/grad_norms.h>

#include <stdexcept>
#include <string>

namespace minitrain::train {

namespace {
AttentionStatistics nothing_yet() { return AttentionStatisticsSum().mean(); }
}  // namespace

AttentionWatch::AttentionWatch(std::vector<std::shared_ptr<nn::MultiHeadAttention>> layers, bool enabled)
    : layers_(std::move(layers)), last_(layers_.size(), nothing_yet()) {
  for (std::size_t i = 0; i < layers_.size(); ++i)
    if (!layers_[i]) throw std::invalid_argument("AttentionWatch: layer " + std::to_string(i) + " is null");
  set_enabled(enabled);
}

AttentionWatch::~AttentionWatch() { set_enabled(false); }

void AttentionWatch::set_enabled(bool on) {
  if (on == enabled()) return;
  if (!on) {
    for (nn::HookHandle& h : hooks_) h.remove();
    hooks_.clear();
    last_.assign(layers_.size(), nothing_yet());
    return;
  }
  for (std::size_t i = 0; i < layers_.size(); ++i)
    hooks_.push_back(layers_[i]->register_forward_hook([this, i](nn::Module& m, const std::vector<Tensor>&, const Tensor&) {
      if (m.is_training()) last_[i] = static_cast<const nn::MultiHeadAttention&>(m).observed_statistics();
    }));
}

std::vector<LayerHealth> AttentionWatch::read() const {
  std::vector<LayerHealth> out(layers_.size());
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const QKVNorms g = qkv_grad_norms(*layers_[i]);
    out[i] = {last_[i], g.q, g.k, g.v};
  }
  return out;
}

}  // namespace minitrain::train
