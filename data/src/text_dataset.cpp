#include <minitrain/data/text_dataset.h>

#include <minitrain/core/factory.h>

#include <minitrain/core/regular_file.h>

#include <unistd.h>

#include <stdexcept>
#include <utility>

namespace minitrain::data {

const char* split_name(Split split) { return split == Split::Train ? "train" : "val"; }

TextDataset::TextDataset(std::vector<int64_t> tokens, CharTokenizer tokenizer)
    : tokens_(std::move(tokens)),
      train_size_(static_cast<int64_t>(tokens_.size()) * 9 / 10),
      tokenizer_(std::move(tokenizer)) {}

TextDataset TextDataset::from_file(const std::string& path) {
  // Each byte becomes at most one int64 token besides the text itself: a file needing more than the
  // machine's memory is refused by its size, before reading it.
  const double memory = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  const auto max_bytes = static_cast<uint64_t>(memory / (1 + sizeof(int64_t)));
  std::string text;
  try {
    text = read_regular_file(path, max_bytes);  // a FIFO or directory is refused, never waited on
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("TextDataset: ") + e.what());
  }
  if (text.empty()) throw std::runtime_error("TextDataset: file '" + path + "' is empty");
  try {
    return from_text(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("TextDataset: file '" + path + "': " + e.what());
  }
}

TextDataset TextDataset::from_text(const std::string& utf8) {
  if (utf8.empty()) throw std::invalid_argument("TextDataset: the text is empty");
  CharTokenizer tokenizer = CharTokenizer::from_text(utf8);
  return from_text(utf8, std::move(tokenizer));
}

TextDataset TextDataset::from_text(const std::string& utf8, CharTokenizer tokenizer) {
  if (utf8.empty()) throw std::invalid_argument("TextDataset: the text is empty");
  std::vector<int64_t> tokens = tokenizer.encode(utf8);
  return TextDataset(std::move(tokens), std::move(tokenizer));
}

int64_t TextDataset::size(Split split) const {
  return split == Split::Train ? train_size_ : num_tokens() - train_size_;
}

std::vector<int64_t> TextDataset::tokens(Split split) const {
  const auto begin = tokens_.begin() + (split == Split::Train ? 0 : train_size_);
  return std::vector<int64_t>(begin, begin + size(split));
}

Batch TextDataset::get_batch(Split split, int64_t batch_size, int64_t block_size, Generator& gen) const {
  if (batch_size <= 0)
    throw std::invalid_argument("TextDataset::get_batch: batch_size must be positive, got " +
                                std::to_string(batch_size));
  if (block_size <= 0)
    throw std::invalid_argument("TextDataset::get_batch: block_size must be positive, got " +
                                std::to_string(block_size));
  const int64_t n = size(split);
  if (block_size + 1 > n)
    throw std::invalid_argument("TextDataset::get_batch: block_size " + std::to_string(block_size) +
                                " needs at least block_size + 1 = " + std::to_string(block_size + 1) +
                                " tokens, but the " + split_name(split) + " split has only " +
                                std::to_string(n));
  int64_t numel = 0;
  if (__builtin_mul_overflow(batch_size, block_size, &numel) || numel > kMaxBatchTokens)
    throw std::invalid_argument("TextDataset::get_batch: batch_size " + std::to_string(batch_size) + " x block_size " +
                                std::to_string(block_size) + " is more than the " + std::to_string(kMaxBatchTokens) +
                                " tokens a batch may hold");
  const int64_t* data = tokens_.data() + (split == Split::Train ? 0 : train_size_);
  std::vector<int64_t> x(static_cast<std::size_t>(numel));
  std::vector<int64_t> y(x.size());
  for (int64_t b = 0; b < batch_size; ++b) {
    const int64_t start = gen.randint(0, n - block_size);  // window [start, start + T] fits the split
    for (int64_t t = 0; t < block_size; ++t) {
      x[static_cast<std::size_t>(b * block_size + t)] = data[start + t];
      y[static_cast<std::size_t>(b * block_size + t)] = data[start + t + 1];
    }
  }
  return Batch{from_vector(x, {batch_size, block_size}), from_vector(y, {batch_size, block_size})};
}

}  // namespace minitrain::data
