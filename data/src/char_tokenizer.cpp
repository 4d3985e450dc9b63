#include <minitrain/data/char_tokenizer.h>

#include <algorithm>
#include <stdexcept>

#include <minitrain/data/utf8.h>

namespace minitrain::data {

namespace {
// utf8_next with the caller's name in front of the error message.
char32_t next_code_point(const char* caller, const std::string& text, std::size_t& offset) {
  try {
    return utf8_next(text, offset);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(caller) + ": " + e.what());
  }
}
}  // namespace

CharTokenizer::CharTokenizer(std::u32string sorted_unique_vocab) : vocab_(std::move(sorted_unique_vocab)) {
  ascii_.fill(-1);
  for (std::size_t id = 0; id < vocab_.size(); ++id)
    if (vocab_[id] < 128) ascii_[vocab_[id]] = static_cast<int32_t>(id);
}

CharTokenizer CharTokenizer::from_text(const std::string& utf8) {
  if (utf8.empty()) throw std::invalid_argument("CharTokenizer::from_text: the text is empty");
  std::u32string chars;
  for (std::size_t offset = 0; offset < utf8.size();)
    chars.push_back(next_code_point("CharTokenizer::from_text", utf8, offset));
  std::sort(chars.begin(), chars.end());
  chars.erase(std::unique(chars.begin(), chars.end()), chars.end());
  return CharTokenizer(std::move(chars));
}

std::string CharTokenizer::to_string() const { return encode_utf8(vocab_); }

CharTokenizer CharTokenizer::from_string(const std::string& vocabulary_utf8) {
  if (vocabulary_utf8.empty())
    throw std::invalid_argument("CharTokenizer::from_string: the vocabulary is empty");
  std::u32string chars;
  std::size_t offset = 0;
  while (offset < vocabulary_utf8.size()) {
    const std::size_t start = offset;
    const char32_t cp = next_code_point("CharTokenizer::from_string", vocabulary_utf8, offset);
    if (!chars.empty() && cp <= chars.back())
      throw std::invalid_argument("CharTokenizer::from_string: character " + describe_code_point(cp) +
                                  " at byte offset " + std::to_string(start) + " (id " +
                                  std::to_string(chars.size()) + ") " +
                                  (cp == chars.back() ? "repeats the previous character"
                                                      : "is not after the previous character " +
                                                            describe_code_point(chars.back())) +
                                  "; a vocabulary lists distinct characters in increasing code point order");
    chars.push_back(cp);
  }
  return CharTokenizer(std::move(chars));
}

int64_t CharTokenizer::id_of(char32_t code_point) const {
  if (code_point < 128) return ascii_[code_point];
  const auto it = std::lower_bound(vocab_.begin(), vocab_.end(), code_point);
  if (it == vocab_.end() || *it != code_point) return -1;
  return it - vocab_.begin();
}

char32_t CharTokenizer::code_point_of(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::invalid_argument("CharTokenizer: id " + std::to_string(id) + " is out of range [0, " +
                                std::to_string(vocab_size()) + ")");
  return vocab_[static_cast<std::size_t>(id)];
}

std::vector<int64_t> CharTokenizer::encode(const std::string& utf8) const {
  std::vector<int64_t> ids;
  ids.reserve(utf8.size());
  std::size_t offset = 0;
  while (offset < utf8.size()) {
    const std::size_t start = offset;
    const char32_t cp = next_code_point("CharTokenizer::encode", utf8, offset);
    const int64_t id = id_of(cp);
    if (id < 0)
      throw std::invalid_argument("CharTokenizer::encode: character " + describe_code_point(cp) +
                                  " at byte offset " + std::to_string(start) + " (character " +
                                  std::to_string(ids.size()) + ") is not in the vocabulary");
    ids.push_back(id);
  }
  return ids;
}

std::string CharTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    if (id < 0 || id >= vocab_size())
      throw std::invalid_argument("CharTokenizer::decode: id " + std::to_string(id) + " at position " +
                                  std::to_string(i) + " is out of range [0, " +
                                  std::to_string(vocab_size()) + ")");
    append_utf8(out, vocab_[static_cast<std::size_t>(id)]);
  }
  return out;
}

}  // namespace minitrain::data
