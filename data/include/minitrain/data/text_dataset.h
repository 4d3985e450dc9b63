// TextDataset: a character-level language-modelling dataset, as nanoGPT's shakespeare_char.
//
// The whole text is tokenised with a CharTokenizer (by default built from the whole text); the first
// 90% of the tokens (floor(n * 9 / 10)) are the training split, the rest the validation split.
// get_batch draws B random windows of T + 1 consecutive tokens from one split: x is the first T
// tokens of each window, y the last T (y[b][t] == x[b][t + 1]), exactly like nanoGPT's get_batch.
// The window starts come from the Generator passed in, so a seed fixes every batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <minitrain/core/random.h>
#include <minitrain/core/tensor.h>
#include <minitrain/data/char_tokenizer.h>

namespace minitrain::data {

enum class Split { Train, Val };
const char* split_name(Split split);  // "train" / "val"

struct Batch {
  Tensor x;  // (B, T) int64 input token ids
  Tensor y;  // (B, T) int64 targets: the next token after each input
};

class TextDataset {
 public:
  // The text of a file. Throws std::runtime_error when the file is missing, not a regular file (a FIFO is
  // refused without waiting on it), unreadable, empty or too large for this machine's memory once
  // tokenised (8 bytes a token), and std::invalid_argument when it is not valid UTF-8 (the message names
  // the file and byte offset).
  static TextDataset from_file(const std::string& path);
  // The tokenizer is built from the text. Throws std::invalid_argument for an empty or invalid text.
  static TextDataset from_text(const std::string& utf8);
  // With a given tokenizer (e.g. restored from a checkpoint): every character must be in it.
  static TextDataset from_text(const std::string& utf8, CharTokenizer tokenizer);

  const CharTokenizer& tokenizer() const { return tokenizer_; }
  int64_t vocab_size() const { return tokenizer_.vocab_size(); }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens_.size()); }  // both splits
  int64_t size(Split split) const;  // tokens in the split
  std::vector<int64_t> tokens(Split split) const;

  // The most tokens one batch may hold (2^31): far above any batch that fits a model in memory, and
  // small enough that batch_size x block_size and its byte size never overflow.
  static constexpr int64_t kMaxBatchTokens = int64_t{1} << 31;
  // x, y: (batch_size, block_size). Window starts are gen.randint(0, size(split) - block_size), one
  // per row in order. Throws std::invalid_argument when batch_size or block_size is not positive or
  // when the split holds fewer than block_size + 1 tokens, or batch_size x block_size exceeds
  // kMaxBatchTokens.
  Batch get_batch(Split split, int64_t batch_size, int64_t block_size, Generator& gen) const;

 private:
  TextDataset(std::vector<int64_t> tokens, CharTokenizer tokenizer);

  std::vector<int64_t> tokens_;  // train split first, then val
  int64_t train_size_ = 0;
  CharTokenizer tokenizer_;
};

}  // namespace minitrain::data
