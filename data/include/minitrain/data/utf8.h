// Strict UTF-8 decoding and encoding (RFC 3629), used by the character tokenizer.
//
// Decoding rejects everything that is not well-formed UTF-8: stray continuation bytes, truncated
// sequences, overlong forms, UTF-16 surrogates (U+D800..U+DFFF) and code points above U+10FFFF. The
// std::invalid_argument it throws names the byte offset of the offending sequence.
#pragma once

#include <cstddef>
#include <string>

namespace minitrain::data {

// Decodes the code point that starts at byte `offset` of `text` and advances `offset` past it.
// Requires offset < text.size().
char32_t utf8_next(const std::string& text, std::size_t& offset);

// The whole text as code points.
std::u32string decode_utf8(const std::string& text);

// Appends the UTF-8 encoding of `code_point` (throws for surrogates and values above U+10FFFF).
void append_utf8(std::string& out, char32_t code_point);
std::string encode_utf8(const std::u32string& code_points);

// For error messages: the character in quotes (escaped when it is a control character) and its
// code point, e.g. "'é' (U+00E9)" or "'\n' (U+000A)".
std::string describe_code_point(char32_t code_point);

}  // namespace minitrain::data
