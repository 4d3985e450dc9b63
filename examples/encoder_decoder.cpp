// encoder_decoder: a small encoder-decoder transformer that learns to reverse a digit string of variable
// length, trained with cross-attention and key padding masks.
//
// The source is 1..max_len digits padded with PAD to max_len, with no end-of-source token. A
// key_padding_mask (B, S), true = padding as in torch, keeps the PAD positions out of the encoder's
// self-attention and out of the decoder's cross-attention, so no query ever reads a PAD key. The decoder
// reads BOS + the reversed digits so far (causal self-attention), looks at the encoder's output through
// cross-attention, and predicts the next digit, then EOS. Evaluation decodes greedily, one token at a time, and counts a
// sequence as right only if every digit and the EOS are right. Training stops once a held-out set is
// decoded 100% right; the program prints the sequence accuracy and exits 0 only then.
#include <minitrain/core/factory.h>
#include <minitrain/nn/attention.h>
#include <minitrain/nn/containers.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/nn/init.h>
#include <minitrain/nn/layers.h>
#include <minitrain/train/optimizer.h>

#include "cli_checks.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

using namespace minitrain;

namespace {

constexpr int64_t kPad = 10, kBos = 11, kEos = 12, kVocab = 13, kIgnore = -100;

nn::AttentionOptions attention_options(int64_t width, int64_t heads, bool causal) {
  nn::AttentionOptions o;
  o.n_embd = width;
  o.n_head = heads;
  o.causal = causal;
  return o;
}

// Pre-LN encoder layer: self-attention over the real (unpadded) positions, then an MLP.
class EncoderLayer : public nn::Module {
 public:
  EncoderLayer(int64_t width, int64_t heads) : Module("EncoderLayer") {
    ln_1 = register_module("ln_1", std::make_shared<nn::LayerNorm>(width));
    attn = register_module("attn", std::make_shared<nn::MultiHeadAttention>(attention_options(width, heads, false)));
    ln_2 = register_module("ln_2", std::make_shared<nn::LayerNorm>(width));
    mlp = register_module("mlp", std::make_shared<nn::MLP>(width, true, 0.0));
  }
  // x: (B, S, C), padding: (B, S) bool, true = padding -> (B, S, C)
  Tensor forward(const Tensor& x, const Tensor& padding) {
    nn::AttentionMasks masks;
    masks.key_padding_mask = padding;
    const Tensor h = (*ln_1)(x);
    const Tensor y = add(x, (*attn)(h, h, h, masks));
    return add(y, (*mlp)((*ln_2)(y)));
  }
  std::shared_ptr<nn::LayerNorm> ln_1, ln_2;
  std::shared_ptr<nn::MultiHeadAttention> attn;
  std::shared_ptr<nn::MLP> mlp;
};

// Pre-LN decoder layer: causal self-attention, cross-attention to the encoder's output, an MLP.
class DecoderLayer : public nn::Module {
 public:
  DecoderLayer(int64_t width, int64_t heads) : Module("DecoderLayer") {
    ln_1 = register_module("ln_1", std::make_shared<nn::LayerNorm>(width));
    self_attn = register_module("self_attn", std::make_shared<nn::MultiHeadAttention>(attention_options(width, heads, true)));
    ln_2 = register_module("ln_2", std::make_shared<nn::LayerNorm>(width));
    cross_attn = register_module("cross_attn", std::make_shared<nn::MultiHeadAttention>(attention_options(width, heads, false)));
    ln_3 = register_module("ln_3", std::make_shared<nn::LayerNorm>(width));
    mlp = register_module("mlp", std::make_shared<nn::MLP>(width, true, 0.0));
  }
  // y: (B, T, C), memory: (B, S, C), padding: (B, S) -> (B, T, C)
  Tensor forward(const Tensor& y, const Tensor& memory, const Tensor& padding) {
    Tensor h = add(y, (*self_attn)((*ln_1)(y)));  // causal, no padding: the target's padding is never read
    nn::AttentionMasks masks;
    masks.key_padding_mask = padding;
    h = add(h, (*cross_attn)((*ln_2)(h), memory, memory, masks));
    return add(h, (*mlp)((*ln_3)(h)));
  }
  std::shared_ptr<nn::LayerNorm> ln_1, ln_2, ln_3;
  std::shared_ptr<nn::MultiHeadAttention> self_attn, cross_attn;
  std::shared_ptr<nn::MLP> mlp;
};

class Reverser : public nn::Module {
 public:
  Reverser(int64_t max_len, int64_t width, int64_t heads, int64_t layers) : Module("Reverser") {
    tok = register_module("tok", std::make_shared<nn::Embedding>(kVocab, width));
    src_pos = register_module("src_pos", std::make_shared<nn::Embedding>(max_len, width));
    tgt_pos = register_module("tgt_pos", std::make_shared<nn::Embedding>(max_len + 1, width));
    encoder = register_module("enc", std::make_shared<nn::ModuleList<EncoderLayer>>());
    decoder = register_module("dec", std::make_shared<nn::ModuleList<DecoderLayer>>());
    for (int64_t i = 0; i < layers; ++i) {
      encoder->push_back(std::make_shared<EncoderLayer>(width, heads));
      decoder->push_back(std::make_shared<DecoderLayer>(width, heads));
    }
    ln_enc = register_module("ln_enc", std::make_shared<nn::LayerNorm>(width));
    ln_dec = register_module("ln_dec", std::make_shared<nn::LayerNorm>(width));
    head = register_module("head", std::make_shared<nn::Linear>(width, kVocab));
  }
  // src: (B, S) ids -> memory (B, S, C)
  Tensor encode(const Tensor& src, const Tensor& padding) {
    Tensor x = add((*tok)(src), (*src_pos)(arange(0, static_cast<double>(src.size(1)), 1, DType::Int64)));
    for (const auto& layer : *encoder) x = layer->forward(x, padding);
    return (*ln_enc)(x);
  }
  // tgt_in: (B, T) ids -> logits (B, T, vocab)
  Tensor decode(const Tensor& tgt_in, const Tensor& memory, const Tensor& padding) {
    Tensor y = add((*tok)(tgt_in), (*tgt_pos)(arange(0, static_cast<double>(tgt_in.size(1)), 1, DType::Int64)));
    for (const auto& layer : *decoder) y = layer->forward(y, memory, padding);
    return (*head)((*ln_dec)(y));
  }
  std::shared_ptr<nn::Embedding> tok, src_pos, tgt_pos;
  std::shared_ptr<nn::ModuleList<EncoderLayer>> encoder;
  std::shared_ptr<nn::ModuleList<DecoderLayer>> decoder;
  std::shared_ptr<nn::LayerNorm> ln_enc, ln_dec;
  std::shared_ptr<nn::Linear> head;
};

// A batch of random strings: src (B, max_len) padded, padding (B, max_len) bool, the decoder's input
// (B, max_len + 1) = BOS + reversed digits + EOS/PAD, and its targets (the next token; kIgnore after EOS).
struct Batch {
  Tensor src, padding, tgt_in, tgt_out;
};

Batch make_batch(int64_t batch, int64_t max_len, Generator& gen) {
  const int64_t S = max_len, T = max_len + 1;
  std::vector<int64_t> src(batch * S, kPad), tgt_in(batch * T, kPad), tgt_out(batch * T, kIgnore);
  std::vector<bool> padding(batch * S, true);
  const Tensor lengths = randint(1, max_len + 1, {batch}, gen), digits = randint(0, 10, {batch, S}, gen);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t L = lengths.data<int64_t>()[b];
    for (int64_t i = 0; i < L; ++i) {
      src[b * S + i] = digits.data<int64_t>()[b * S + i];
      padding[b * S + i] = false;
    }
    tgt_in[b * T] = kBos;
    for (int64_t i = 0; i < L; ++i) {
      tgt_out[b * T + i] = src[b * S + L - 1 - i];
      tgt_in[b * T + i + 1] = tgt_out[b * T + i];
    }
    tgt_out[b * T + L] = kEos;
  }
  return {from_vector(src, {batch, S}), from_vector(padding, {batch, S}), from_vector(tgt_in, {batch, T}),
          from_vector(tgt_out, {batch, T})};
}

// Greedy decoding from BOS; a sequence is right when its digits and EOS all match the targets.
double sequence_accuracy(Reverser& model, const Batch& data) {
  NoGradGuard no_grad;
  const int64_t B = data.src.size(0), T = data.tgt_in.size(1);
  const Tensor memory = model.encode(data.src, data.padding);
  std::vector<int64_t> decoded(B * T, kPad);
  for (int64_t b = 0; b < B; ++b) decoded[b * T] = kBos;
  std::vector<bool> right(B, true), done(B, false);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int64_t> prefix;
    for (int64_t b = 0; b < B; ++b) prefix.insert(prefix.end(), decoded.begin() + b * T, decoded.begin() + b * T + t + 1);
    const Tensor logits = model.decode(from_vector(prefix, {B, t + 1}), memory, data.padding);
    const Tensor next = argmax(logits.narrow(1, t, 1), -1);  // (B, 1)
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const int64_t token = next.data<int64_t>()[b], expected = data.tgt_out.data<int64_t>()[b * T + t];
      if (token != expected) right[b] = false, done[b] = true;
      if (token == kEos) done[b] = true;
      if (t + 1 < T) decoded[b * T + t + 1] = token;
    }
  }
  int64_t correct = 0;
  for (int64_t b = 0; b < B; ++b) correct += right[b];
  return static_cast<double>(correct) / static_cast<double>(B);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t max_len = 8, max_steps = 1200, eval_every = 100, width = 48, layers = 2;
  uint64_t seed = 0;
  CLI::App app{"Train an encoder-decoder transformer to reverse digit strings of variable length"};
  app.add_option("--max_len", max_len, "longest source string")->check(examples::integer_in(1, 64))->capture_default_str();
  app.add_option("--max_steps", max_steps, "give up after this many steps (the learning rate decays to its minimum there)")->check(examples::integer_in(1, 1'000'000))->capture_default_str();
  app.add_option("--eval_every", eval_every, "steps between evaluations")->check(examples::integer_in(1, 1'000'000))->capture_default_str();
  app.add_option("--width", width, "model width (4 heads)")->check(examples::integer_in(4, 1024))->capture_default_str();
  app.add_option("--layers", layers, "encoder and decoder layers each")->check(examples::integer_in(1, 16))->capture_default_str();
  app.add_option("--seed", seed, "initial weights")->check(examples::seed_value())->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (width % 4 != 0) {
    std::fprintf(stderr, "--width %lld is not a multiple of the 4 heads\n", static_cast<long long>(width));
    return 2;
  }
  nn::manual_seed(seed);
  Reverser model(max_len, width, 4, layers);
  train::AdamW optimizer(model.named_parameters(), train::AdamWOptions(2e-3).betas({0.9, 0.98}).weight_decay(0.01));
  Generator gen(seed + 1), held_out_gen(seed + 1000);
  const Batch held_out = make_batch(500, max_len, held_out_gen);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  double accuracy = 0;
  int64_t step = 0;
  while (step < max_steps && accuracy < 1.0) {
    ++step;
    const Batch b = make_batch(64, max_len, gen);
    Tensor loss = cross_entropy(model.decode(b.tgt_in, model.encode(b.src, b.padding), b.padding), b.tgt_out, kIgnore);
    loss.backward();
    train::clip_grad_norm(model.parameters(), 1.0);
    optimizer.set_lr(train::cosine_lr(step, 100, max_steps, 2e-3, 2e-4));
    optimizer.step();
    optimizer.zero_grad();
    if (step % eval_every == 0) {
      model.eval();
      accuracy = sequence_accuracy(model, held_out);
      model.train();
      std::printf("step %lld: loss %.4f, held-out sequence accuracy %.1f%% (%.1f s)\n", static_cast<long long>(step),
                  loss.item(), 100 * accuracy, seconds());
      std::fflush(stdout);
    }
  }
  std::printf("sequence accuracy %.1f%% on %lld held-out strings of 1..%lld digits after %lld steps, %.1f s\n",
              100 * accuracy, static_cast<long long>(held_out.src.size(0)), static_cast<long long>(max_len),
              static_cast<long long>(step), seconds());
  return accuracy == 1.0 ? 0 : 1;
}
