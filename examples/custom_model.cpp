// custom_model: a model of your own design on the nn API, trained with AdamW. Copy this file.
//
// The task: read a sequence of 8 digits (0-9) and predict, at every position, the running maximum so
// far. A small causal attention model can do it; a per-position MLP cannot (it never sees the past).
#include <minitrain/core/factory.h>
#include <minitrain/nn/attention.h>
#include <minitrain/nn/containers.h>
#include <minitrain/nn/init.h>
#include <minitrain/nn/layers.h>
#include <minitrain/train/optimizer.h>

#include "cli_checks.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>

using namespace minitrain;

// 1. A model is a Module that registers its parts and declares its own forward.
class RunningMax : public nn::Module {
 public:
  RunningMax(int64_t vocab, int64_t seq_len, int64_t width) : Module("RunningMax") {
    tok = register_module("tok", std::make_shared<nn::Embedding>(vocab, width));
    pos = register_module("pos", std::make_shared<nn::Embedding>(seq_len, width));
    nn::AttentionOptions attention;
    attention.n_embd = width;
    attention.n_head = 2;
    attn = register_module("attn", std::make_shared<nn::MultiHeadAttention>(attention));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(width));
    head = register_module("head", std::make_shared<nn::Sequential>());
    head->add(std::make_shared<nn::Linear>(width, 4 * width))
        .add([](const Tensor& x) { return relu(x); })
        .add(std::make_shared<nn::Linear>(4 * width, vocab));
  }

  // ids: (B, T) -> logits (B, T, vocab)
  Tensor forward(const Tensor& ids) {
    const Tensor positions = arange(0, static_cast<double>(ids.size(1)), 1, DType::Int64);  // (T)
    Tensor x = add(tok->forward(ids), pos->forward(positions));
    x = add(x, attn->forward(norm->forward(x)));
    return head->forward(x);
  }

  std::shared_ptr<nn::Embedding> tok, pos;
  std::shared_ptr<nn::MultiHeadAttention> attn;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Sequential> head;
};

// 2. Data: random digits and their running maximum.
std::pair<Tensor, Tensor> make_batch(int64_t batch, int64_t len, Generator& gen) {
  Tensor x = randint(0, 10, {batch, len}, gen), y = x.clone();
  const int64_t* xs = x.data<int64_t>();
  int64_t* ys = y.data<int64_t>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 1; t < len; ++t) ys[b * len + t] = std::max(ys[b * len + t - 1], xs[b * len + t]);
  return {x, y};
}

int main(int argc, char** argv) {
  int64_t steps = 600;
  uint64_t seed = 0;
  CLI::App app{"Train a small attention model to output the running maximum of 8 digits"};
  app.add_option("--steps", steps, "training steps")->check(examples::integer_in(0, 1'000'000))->capture_default_str();
  app.add_option("--seed", seed, "initial weights")->check(examples::seed_value())->capture_default_str();
  CLI11_PARSE(app, argc, argv);  // unknown flags and stray arguments are refused, not ignored
  nn::manual_seed(seed);
  RunningMax model(10, 8, 32);
  std::cout << model.summary();
  train::AdamW optimizer(model.named_parameters(), train::AdamWOptions(3e-3).betas({0.9, 0.99}).weight_decay(0.0));
  Generator gen(1);
  // 3. The loop: forward, loss, backward, clip, step.
  for (int64_t step = 0; step <= steps; ++step) {
    auto [x, y] = make_batch(32, 8, gen);
    Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    train::clip_grad_norm(model.parameters(), 1.0);
    optimizer.step();
    optimizer.zero_grad();
    if (step % 100 == 0) std::cout << "step " << step << ": loss " << loss.item() << "\n";
  }
  // 4. Evaluate without a graph.
  model.eval();
  NoGradGuard no_grad;
  auto [x, y] = make_batch(256, 8, gen);
  Tensor logits = model.forward(x);
  int64_t correct = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < 10; ++c)
      if (logits.at({i / 8, i % 8, c}) > logits.at({i / 8, i % 8, best})) best = c;
    correct += best == y.data<int64_t>()[i];
  }
  const double accuracy = static_cast<double>(correct) / static_cast<double>(y.numel());
  std::cout << "accuracy on fresh sequences: " << accuracy << "\n";
  return accuracy > 0.9 ? 0 : 1;
}
