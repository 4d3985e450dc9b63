// CharTokenizer: one token per Unicode character, as nanoGPT's shakespeare_char.
//
// The text is UTF-8; the tokenizer works on the code points it decodes to (so "é" is one token, not
// two bytes). The vocabulary is the sorted set of distinct code points of the text it was built
// from, and a character's id is its position in that sorted list. Sorting by code point is the order
// Python's sorted(set(text)) uses, so for the same text the ids equal nanoGPT's.
//
// Errors (std::invalid_argument): invalid UTF-8 (names the byte offset), a character that is not in
// the vocabulary (names the character, its byte offset and character index), an id outside
// [0, vocab_size()) (names the id and its position).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace minitrain::data {

class CharTokenizer {
 public:
  // The vocabulary of `utf8`: its distinct code points, sorted. The text must not be empty.
  static CharTokenizer from_text(const std::string& utf8);

  // Serialisation (e.g. into a checkpoint's metadata): the vocabulary as a UTF-8 string, the
  // characters in id order. from_string(t.to_string()) equals t; from_string requires a non-empty,
  // strictly increasing sequence of code points, so ids can never be silently renumbered.
  std::string to_string() const;
  static CharTokenizer from_string(const std::string& vocabulary_utf8);

  std::vector<int64_t> encode(const std::string& utf8) const;
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }
  const std::u32string& vocabulary() const { return vocab_; }  // id -> code point
  bool contains(char32_t code_point) const { return id_of(code_point) >= 0; }
  int64_t id_of(char32_t code_point) const;  // -1 when not in the vocabulary
  char32_t code_point_of(int64_t id) const;  // throws when out of range

  bool operator==(const CharTokenizer& other) const { return vocab_ == other.vocab_; }
  bool operator!=(const CharTokenizer& other) const { return !(*this == other); }

 private:
  explicit CharTokenizer(std::u32string sorted_unique_vocab);

  std::u32string vocab_;              // sorted, unique
  std::array<int32_t, 128> ascii_{};  // fast path: ASCII code point -> id, or -1
};

}  // namespace minitrain::data
