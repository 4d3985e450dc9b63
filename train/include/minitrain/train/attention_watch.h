// Watching attention layers while a model trains: what each layer's softmax did in the training forward
// (the statistics its kernel computed from the weights it used, read through a forward hook) and how much
// gradient its W_q, W_k and W_v then received. The measurement behind the scale study's part 2 and
// train_gpt's --health_interval.
//
//   train::AttentionWatch watch(gpt.attention_layers());   // hooks registered, removed with the watch
//   trainer.on_after_backward([&](int64_t iter, double) { auto layers = watch.read(); ... });
//
// Only training-mode forwards are recorded (evaluation passes are ignored). While disabled, the layers
// have no hook and their forwards do no extra work.
#pragma once

#include <minitrain/nn/attention.h>

#include <memory>
#include <vector>

namespace minitrain::train {

struct LayerHealth {
  AttentionStatistics attention;      // of the last training forward; rows = 0 (NaN) before one
  double grad_q = 0, grad_k = 0, grad_v = 0;  // ‖dL/dW_q‖, ‖dL/dW_k‖, ‖dL/dW_v‖ (bias rows included)
};

class AttentionWatch {
 public:
  explicit AttentionWatch(std::vector<std::shared_ptr<nn::MultiHeadAttention>> layers, bool enabled = true);
  ~AttentionWatch();
  AttentionWatch(const AttentionWatch&) = delete;
  AttentionWatch& operator=(const AttentionWatch&) = delete;

  // Registers (true) or removes (false) the layers' hooks. Disabling forgets what was recorded.
  void set_enabled(bool on);
  bool enabled() const { return !hooks_.empty(); }
  std::size_t size() const { return layers_.size(); }
  // Per layer, in the order given: the last training forward's statistics and the current gradients' norms
  // (call it after backward and before clipping or zero_grad).
  std::vector<LayerHealth> read() const;

 private:
  std::vector<std::shared_ptr<nn::MultiHeadAttention>> layers_;
  std::vector<AttentionStatistics> last_;
  std::vector<nn::HookHandle> hooks_;
};

}  // namespace minitrain::train
