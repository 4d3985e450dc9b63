// write_pattern_checkpoint PATH: a minitrain checkpoint whose every value is known in closed form, for
// tests/reference/check_checkpoint_format.py, which opens it with the official `safetensors` package and
// recomputes each value. The file is written by the same save_checkpoint that train_gpt uses.
//
// Tensor named N (as stored in the file, e.g. "model.transformer.h.0.ln_1.weight" or
// "optim.lm_head.weight.exp_avg"): element i = ((7·i + key(N)) mod 101 − 50) / 64, key(N) = sum of N's
// bytes mod 97. Such values are exact in float32, so both sides compute them bit for bit.
#include <minitrain/core/factory.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/checkpoint.h>
#include <minitrain/train/gpt_config_io.h>
#include <minitrain/train/optimizer.h>

#include <iostream>

using namespace minitrain;

namespace {

Tensor pattern(const std::string& name, const Shape& shape) {
  int64_t key = 0;
  for (unsigned char ch : name) key += ch;
  key %= 97;
  std::vector<float> v(static_cast<std::size_t>(shape_numel(shape)));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>((static_cast<int64_t>(7 * i) + key) % 101 - 50) / 64.0f;
  return from_vector(v, shape);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: write_pattern_checkpoint PATH\n";
    return 2;
  }
  try {
    nn::GPTConfig config;
    config.block_size = 8, config.vocab_size = 11, config.n_layer = 2, config.n_head = 2, config.n_embd = 8;
    config.bias = true;
    nn::GPT model(config);
    // named_parameters lists the tied weight once, as transformer.wte.weight: lm_head.weight reads it.
    for (auto& [name, p] : model.named_parameters()) p.copy_(pattern("model." + name, p.shape()));
    train::AdamW optimizer(model.named_parameters(), train::AdamWOptions());
    std::map<std::string, Tensor> moments;
    for (const auto& [name, t] : optimizer.state_dict()) moments[name] = pattern("optim." + name, t.shape());
    optimizer.load_state_dict(moments, 7);
    Generator data(5);
    train::save_checkpoint(argv[1], 42, model, &optimizer, {{"data", &data}},
                           {{"gpt_config", train::gpt_config_to_json(config)}, {"tokenizer", "abcdefghijk"}});
  } catch (const std::exception& e) {
    std::cerr << "write_pattern_checkpoint: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
