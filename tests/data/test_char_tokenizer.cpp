// CharTokenizer and the UTF-8 decoder under it.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include <minitrain/data/char_tokenizer.h>
#include <minitrain/data/utf8.h>

#include "error_of.h"

namespace minitrain::data {
namespace {


TEST(CharTokenizer, VocabularyIsSortedUniqueCharacters) {
  const CharTokenizer tok = CharTokenizer::from_text("hello world\n");
  // sorted(set("hello world\n")) in Python: ['\n', ' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']
  EXPECT_EQ(tok.vocabulary(), U"\n dehlorw");
  EXPECT_EQ(tok.vocab_size(), 9);
  EXPECT_EQ(tok.id_of(U'\n'), 0);
  EXPECT_EQ(tok.id_of(U'w'), 8);
  EXPECT_EQ(tok.id_of(U'z'), -1);
  EXPECT_EQ(tok.encode("hello"), (std::vector<int64_t>{4, 3, 5, 5, 6}));
}

TEST(CharTokenizer, RoundTrip) {
  const std::string text = "First Citizen:\nBefore we proceed any further, hear me speak.\n";
  const CharTokenizer tok = CharTokenizer::from_text(text);
  const std::vector<int64_t> ids = tok.encode(text);
  EXPECT_EQ(ids.size(), text.size());
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_TRUE(tok.encode("").empty());
}

TEST(CharTokenizer, MultiByteCharactersAreOneTokenEach) {
  // 2-, 3- and 4-byte sequences: é (U+00E9), € (U+20AC), 😀 (U+1F600).
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80!";
  const CharTokenizer tok = CharTokenizer::from_text(text);
  EXPECT_EQ(tok.vocabulary(), (std::u32string{U' ', U'!', U'a', U'c', U'f', U'\u00E9', U'\u20AC', U'\U0001F600'}));
  const std::vector<int64_t> ids = tok.encode(text);
  EXPECT_EQ(ids, (std::vector<int64_t>{3, 2, 4, 5, 0, 6, 7, 1}));
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.decode({5}), "\xC3\xA9");
}

TEST(CharTokenizer, UnknownCharacterNamesCharacterAndOffset) {
  const CharTokenizer tok = CharTokenizer::from_text("abc\xC3\xA9");
  const std::string msg = error_of<std::invalid_argument>([&] { tok.encode("ab\xC3\xA9x"); });
  EXPECT_NE(msg.find("'x' (U+0078)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte offset 4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("character 3"), std::string::npos) << msg;
  const std::string newline = error_of<std::invalid_argument>([&] { tok.encode("a\n"); });
  EXPECT_NE(newline.find("'\\n' (U+000A)"), std::string::npos) << newline;
}

TEST(CharTokenizer, DecodeRejectsOutOfRangeIds) {
  const CharTokenizer tok = CharTokenizer::from_text("abc");
  const std::string msg = error_of<std::invalid_argument>([&] { tok.decode({0, 1, 3}); });
  EXPECT_NE(msg.find("id 3 at position 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[0, 3)"), std::string::npos) << msg;
  EXPECT_THROW(tok.decode({-1}), std::invalid_argument);
  EXPECT_THROW(tok.code_point_of(3), std::invalid_argument);
}

TEST(CharTokenizer, InvalidUtf8NamesByteOffset) {
  struct Case {
    std::string text;
    std::size_t offset;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"ab\x80", 2, "unexpected continuation byte 0x80"},
      {"abc\xC3", 3, "truncated"},
      {"a\xE2\x82", 1, "truncated"},
      {"a\xC3(", 1, "not a continuation byte"},
      {"xy\xC0\xAF", 2, "overlong"},                // '/' in two bytes
      {"\xE0\x80\xAF", 0, "overlong"},              // '/' in three bytes
      {"ok\xED\xA0\x80", 2, "surrogate U+D800"},
      {"\xF4\x90\x80\x80", 0, "above U+10FFFF"},
      {"abcd\xFF", 4, "invalid lead byte 0xFF"},
  };
  for (const Case& c : cases) {
    const std::string msg = error_of<std::invalid_argument>([&] { CharTokenizer::from_text(c.text); });
    EXPECT_NE(msg.find("byte offset " + std::to_string(c.offset) + ":"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.what), std::string::npos) << msg;
  }
  const CharTokenizer tok = CharTokenizer::from_text("abc");
  const std::string msg = error_of<std::invalid_argument>([&] { tok.encode("ab\xC3"); });
  EXPECT_NE(msg.find("CharTokenizer::encode: invalid UTF-8 at byte offset 2"), std::string::npos) << msg;
}

TEST(CharTokenizer, EmptyTextIsAnError) {
  EXPECT_THROW(CharTokenizer::from_text(""), std::invalid_argument);
  EXPECT_THROW(CharTokenizer::from_string(""), std::invalid_argument);
}

TEST(CharTokenizer, SerialisesToItsVocabularyString) {
  const CharTokenizer tok = CharTokenizer::from_text("to be, or not to be\xE2\x80\x94that is\n");
  const std::string saved = tok.to_string();
  EXPECT_EQ(saved, "\n ,abehinorst\xE2\x80\x94");
  const CharTokenizer restored = CharTokenizer::from_string(saved);
  EXPECT_EQ(restored, tok);
  EXPECT_EQ(restored.encode("not to be"), tok.encode("not to be"));
  EXPECT_NE(restored, CharTokenizer::from_text("abc"));
}

TEST(CharTokenizer, FromStringRejectsUnsortedOrRepeatedCharacters) {
  const std::string unsorted = error_of<std::invalid_argument>([] { CharTokenizer::from_string("abdc"); });
  EXPECT_NE(unsorted.find("'c' (U+0063) at byte offset 3"), std::string::npos) << unsorted;
  const std::string repeated = error_of<std::invalid_argument>([] { CharTokenizer::from_string("abb"); });
  EXPECT_NE(repeated.find("repeats"), std::string::npos) << repeated;
  EXPECT_THROW(CharTokenizer::from_string("a\xFF"), std::invalid_argument);
}

TEST(Utf8, EncodeDecodeRoundTripsEveryLength) {
  const std::u32string cps = {U'A', U'\u00E9', U'\u07FF', U'\u0800', U'\uFFFD', U'\U00010000', U'\U0010FFFF'};
  const std::string bytes = encode_utf8(cps);
  EXPECT_EQ(bytes.size(), 1u + 2 + 2 + 3 + 3 + 4 + 4);
  EXPECT_EQ(decode_utf8(bytes), cps);
  EXPECT_THROW(encode_utf8(std::u32string{static_cast<char32_t>(0xD800)}), std::invalid_argument);
  EXPECT_THROW(encode_utf8(std::u32string{static_cast<char32_t>(0x110000)}), std::invalid_argument);
}

}  // namespace
}  // namespace minitrain::data
