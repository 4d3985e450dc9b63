// Shared by the training tests: the first 200 kB of the bundled corpus, a 2-layer GPT small enough to
// train in a second, batches drawn from the corpus, and quick TrainOptions.
#pragma once

#include <minitrain/data/text_dataset.h>
#include <minitrain/nn/gpt.h>
#include <minitrain/train/trainer.h>

#include <fstream>
#include <sstream>
#include <string>

namespace minitrain::train::testing {

inline const data::TextDataset& corpus() {
  static const data::TextDataset ds = [] {
    std::ifstream in(MINITRAIN_TOY_CORPUS);
    std::stringstream ss;
    ss << in.rdbuf();
    return data::TextDataset::from_text(ss.str().substr(0, 200000));
  }();
  return ds;
}

inline nn::GPTConfig small_config(int64_t vocab) {
  nn::GPTConfig c;
  c.block_size = 32;
  c.vocab_size = vocab;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 32;
  c.bias = false;
  return c;
}

inline BatchSource corpus_batches(int64_t batch, int64_t block) {
  return [batch, block](bool train_split, Generator& gen) {
    data::Batch b = corpus().get_batch(train_split ? data::Split::Train : data::Split::Val, batch, block, gen);
    return TokenBatch{b.x, b.y};
  };
}

// The learning rate decays over `iters`, so a run cut short and resumed follows the same schedule only if
// both are given the whole run's length.
inline TrainOptions quick_options(const std::string& out_dir, int64_t iters) {
  TrainOptions o;
  o.max_iters = iters;
  o.lr_decay_iters = iters;
  o.warmup_iters = 5;
  o.eval_interval = 10;
  o.eval_iters = 2;
  o.log_interval = 1000;
  o.learning_rate = 3e-3;
  o.out_dir = out_dir;
  o.progress = false;
  return o;
}

}  // namespace minitrain::train::testing
