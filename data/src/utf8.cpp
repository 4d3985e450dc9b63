#include <minitrain/data/utf8.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>

namespace minitrain::data {

namespace {

std::string hex_byte(unsigned char byte) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%02X", static_cast<unsigned>(byte));
  return buf;
}

std::string code_point_str(char32_t code_point) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "U+%04X", static_cast<unsigned>(code_point));
  return buf;
}

[[noreturn]] void fail(std::size_t offset, const std::string& what) {
  throw std::invalid_argument("invalid UTF-8 at byte offset " + std::to_string(offset) + ": " + what);
}

bool is_continuation(unsigned char byte) { return (byte & 0xC0u) == 0x80u; }

}  // namespace

char32_t utf8_next(const std::string& text, std::size_t& offset) {
  if (offset >= text.size())
    throw std::out_of_range("utf8_next: offset " + std::to_string(offset) + " is past the end (" +
                            std::to_string(text.size()) + " bytes)");
  const auto lead = static_cast<unsigned char>(text[offset]);
  if (lead < 0x80u) {
    ++offset;
    return lead;
  }
  std::size_t length;
  char32_t code_point;
  char32_t minimum;
  if (is_continuation(lead)) {
    fail(offset, "unexpected continuation byte " + hex_byte(lead));
  } else if ((lead & 0xE0u) == 0xC0u) {
    length = 2, code_point = lead & 0x1Fu, minimum = 0x80;
  } else if ((lead & 0xF0u) == 0xE0u) {
    length = 3, code_point = lead & 0x0Fu, minimum = 0x800;
  } else if ((lead & 0xF8u) == 0xF0u) {
    length = 4, code_point = lead & 0x07u, minimum = 0x10000;
  } else {
    fail(offset, "invalid lead byte " + hex_byte(lead));
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (offset + i >= text.size())
      fail(offset, "truncated sequence: lead byte " + hex_byte(lead) + " needs " +
                       std::to_string(length) + " bytes, the text ends after " + std::to_string(i));
    const auto byte = static_cast<unsigned char>(text[offset + i]);
    if (!is_continuation(byte))
      fail(offset, "lead byte " + hex_byte(lead) + " is followed by " + hex_byte(byte) +
                       ", which is not a continuation byte");
    code_point = (code_point << 6) | (byte & 0x3Fu);
  }
  if (code_point < minimum)
    fail(offset, "overlong " + std::to_string(length) + "-byte encoding of " + code_point_str(code_point));
  if (code_point >= 0xD800 && code_point <= 0xDFFF)
    fail(offset, "encoded UTF-16 surrogate " + code_point_str(code_point));
  if (code_point > 0x10FFFF) fail(offset, "code point " + code_point_str(code_point) + " is above U+10FFFF");
  offset += length;
  return code_point;
}

std::u32string decode_utf8(const std::string& text) {
  std::u32string out;
  out.reserve(text.size());
  std::size_t offset = 0;
  while (offset < text.size()) out.push_back(utf8_next(text, offset));
  return out;
}

void append_utf8(std::string& out, char32_t code_point) {
  const auto cp = static_cast<uint32_t>(code_point);
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    throw std::invalid_argument("append_utf8: " + code_point_str(code_point) +
                                " is not a Unicode scalar value");
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(const std::u32string& code_points) {
  std::string out;
  out.reserve(code_points.size());
  for (char32_t cp : code_points) append_utf8(out, cp);
  return out;
}

std::string describe_code_point(char32_t code_point) {
  std::string shown;
  switch (code_point) {
    case U'\n': shown = "\\n"; break;
    case U'\r': shown = "\\r"; break;
    case U'\t': shown = "\\t"; break;
    case U'\'': shown = "\\'"; break;
    case U'\\': shown = "\\\\"; break;
    default:
      if (code_point < 0x20 || code_point == 0x7F || (code_point >= 0x80 && code_point < 0xA0) ||
          (code_point >= 0xD800 && code_point <= 0xDFFF) || code_point > 0x10FFFF)
        shown = "?";  // control character or not a scalar value: the code point says it all
      else
        append_utf8(shown, code_point);
  }
  return "'" + shown + "' (" + code_point_str(code_point) + ")";
}

}  // namespace minitrain::data
