// custom_model: a model of your own design on the nn API, checked with gradcheck_module and trained with
// AdamW. Copy this file.
//
// The task: read a sequence of 8 digits (0-9) and predict, at every position, the running maximum so
// far. A small causal attention model can do it; a per-position MLP cannot (it never sees the past).
#include <minitrain/core/factory.h>
#include <minitrain/nn/attention.h>
#include <minitrain/nn/containers.h>
#include <minitrain/nn/gradcheck.h>
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
    attention.causal = true;  // the running max of the prefix: no peeking at later tokens
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
  Generator gen(1);

  // 3. Before training: check the gradients of every parameter against finite differences (in float64,
  //    on up to 16 sampled entries per tensor; the model is back in float32 afterwards).
  {
    Generator check_gen(2);
    auto [x, y] = make_batch(2, 8, check_gen);
    nn::ModuleGradcheckOptions check;
    check.max_entries = 16;
    auto result = nn::gradcheck_module(
        model, [&](const std::vector<Tensor>& in) { return cross_entropy(model.forward(in[0]), in[1]); }, {x, y}, check);
    std::cout << result.summary();
    if (!result.passed) return 1;
  }

  // 4. The optimizer: weight decay on the matrices and embeddings only (nanoGPT's two groups; the default
  //    decay rule would pick the same tensors from one group).
  auto [decay, no_decay] = train::split_by_decay(model.named_parameters());
  const auto options = train::AdamWOptions(3e-3).betas({0.9, 0.99});
  train::AdamW optimizer({train::ParamGroup(decay, train::AdamWOptions(options).weight_decay(0.01)),
                          train::ParamGroup(no_decay, train::AdamWOptions(options).weight_decay(0.0))});

  // 5. The loop: forward, loss, backward, clip, step.
  for (int64_t step = 0; step <= steps; ++step) {
    auto [x, y] = make_batch(32, 8, gen);
    Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    train::clip_grad_norm(model.parameters(), 1.0);
    optimizer.step();
    optimizer.zero_grad();
    if (step % 100 == 0) std::cout << "step " << step << ": loss " << loss.item() << "\n";
  }
  // 6. Evaluate without a graph: the share of positions whose most likely digit is the running maximum.
  model.eval();
  NoGradGuard no_grad;
  auto [x, y] = make_batch(256, 8, gen);
  const Tensor predicted = argmax(model.forward(x), -1);  // (256, 8) int64
  const double accuracy = mean(eq(predicted, y).to(DType::Float32)).item();
  std::cout << "accuracy on fresh sequences: " << accuracy << "\n";
  return accuracy > 0.9 ? 0 : 1;
}
