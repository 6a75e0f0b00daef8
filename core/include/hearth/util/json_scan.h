#pragma once
// One pass over JSON text without building a document: where each value is and what it is.
// For text that is passed on as it is (a request's params, an event's data) or read a few
// members at a time (json::Params): the text is checked in full, and only what is asked for is
// decoded.
//
// It accepts exactly what Poco's parser (1.11, pdjson) accepts, so that reading a text here or
// with Poco::JSON::Parser gives the same answer (tests/unit/json_util_test.cc compares them on
// every case and on mutations of them): RFC 8259 JSON with valid UTF-8, escapes and surrogate
// pairs, at most 128 levels of nesting, and the numbers Poco can hold (an integer that is no
// Int64 or UInt64 to Poco's NumberParser, or a number beyond a double, is refused as Poco
// refuses it). Header-only, part of hearth/util/ (not of the ABI hash).

#include <Poco/NumberParser.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace hearth::json {

enum class Kind : uint8_t { kNull, kBool, kNumber, kString, kObject, kArray };

// One value found in a text: its kind and its text (a string's with its quotes).
struct Token {
  Kind kind = Kind::kNull;
  std::string_view text;
  bool spaced = false;   // a container with whitespace between its tokens (compactText drops it)
  bool escaped = false;  // a string with a backslash escape (decodeString resolves it)
  bool integer = false;  // a number without a fraction or an exponent
};

class Scanner {
 public:
  static constexpr int kMaxDepth = 128;  // Poco's parser refuses deeper nesting too

  explicit Scanner(std::string_view text)
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

  // Reads the value at the cursor (whitespace before it skipped). false: not JSON (error()).
  bool value(Token& out) {
    skipSpace();
    if (p_ == end_) return fail("unexpected end of text");
    if (*p_ == '{' || *p_ == '[') return container(out);
    return scalar(out);
  }
  // Skips whitespace; whether the text ends there.
  bool atEnd() {
    skipSpace();
    return p_ == end_;
  }
  // Whether the next byte (after whitespace) is c; consumes it if so.
  bool take(char c) {
    skipSpace();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  bool fail(const char* what) {
    if (!error_) {
      error_ = what;
      errorAt_ = static_cast<size_t>(p_ - begin_);
    }
    return false;
  }
  // What is wrong, and where (a byte offset), once a read returned false.
  std::string error() const {
    return std::string(error_ ? error_ : "no error") + " at byte " + std::to_string(errorAt_);
  }

  // Reads one object member by member: first call beginObject(), then member() until it returns
  // false with no error() (the closing brace) or with one.
  bool beginObject() {
    skipSpace();
    if (p_ == end_ || *p_ != '{') return fail("expected '{'");
    ++p_;
    first_ = true;
    outer_ = 1;  // the members' values are one level down
    return true;
  }
  // The next member's key (a string token) and value; false at the end of the object.
  bool member(Token& key, Token& val) {
    skipSpace();
    if (p_ == end_) return fail("unexpected end of text");
    if (*p_ == '}' && first_) {
      ++p_;
      return false;
    }
    if (!first_) {
      if (*p_ == '}') {
        ++p_;
        return false;
      }
      if (*p_ != ',') return fail("expected ',' or '}' after an object member");
      ++p_;
      skipSpace();
      if (p_ == end_) return fail("unexpected end of text");
    }
    first_ = false;
    if (*p_ != '"') return fail("expected a member name");
    if (!string(key)) return false;
    if (!take(':')) return fail("expected ':' after a member name");
    return value(val);
  }
  bool failed() const { return error_ != nullptr; }

 private:
  static bool isSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
  void skipSpace() {
    while (p_ != end_ && isSpace(*p_)) ++p_;
  }

  bool container(Token& out) {
    const char* start = p_;
    char open[kMaxDepth];  // '{' or '[' per level
    int depth = 0;
    bool spaced = false;
    if (outer_ + 1 > kMaxDepth) return fail("nesting deeper than 128 levels");
    enum { kFirst, kNext, kAfter } state = kFirst;  // just opened, after ',', after a value
    open[depth++] = *p_++;
    for (;;) {
      if (p_ != end_ && isSpace(*p_)) {
        spaced = true;
        skipSpace();
      }
      if (p_ == end_) return fail("unexpected end of text");
      const bool inObject = open[depth - 1] == '{';
      if (state != kNext && *p_ == (inObject ? '}' : ']')) {
        ++p_;
        if (--depth == 0) break;
        state = kAfter;
        continue;
      }
      if (state == kAfter) {
        if (*p_ != ',') return fail(inObject ? "expected ',' or '}'" : "expected ',' or ']'");
        ++p_;
        state = kNext;
        continue;
      }
      if (inObject) {
        Token key;
        if (*p_ != '"') return fail("expected a member name");
        if (!string(key)) return false;
        if (p_ != end_ && isSpace(*p_)) spaced = true;
        if (!take(':')) return fail("expected ':' after a member name");
        if (p_ != end_ && isSpace(*p_)) {
          spaced = true;
          skipSpace();
        }
        if (p_ == end_) return fail("unexpected end of text");
      }
      if (*p_ == '{' || *p_ == '[') {
        if (depth + outer_ == kMaxDepth) return fail("nesting deeper than 128 levels");
        open[depth++] = *p_++;
        state = kFirst;
        continue;
      }
      Token item;
      if (!scalar(item)) return false;
      state = kAfter;
    }
    out = Token{};
    out.kind = *start == '{' ? Kind::kObject : Kind::kArray;
    out.text = std::string_view(start, static_cast<size_t>(p_ - start));
    out.spaced = spaced;
    return true;
  }

  bool scalar(Token& out) {
    out = Token{};
    const char* start = p_;
    switch (*p_) {
      case '"':
        return string(out);
      case 't':
        out.kind = Kind::kBool;
        return literal("true", out, start);
      case 'f':
        out.kind = Kind::kBool;
        return literal("false", out, start);
      case 'n':
        out.kind = Kind::kNull;
        return literal("null", out, start);
      default:
        if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return number(out);
        return fail("expected a value");
    }
  }

  bool literal(std::string_view word, Token& out, const char* start) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      return fail("invalid literal");
    }
    p_ += word.size();
    out.text = std::string_view(start, word.size());
    return true;
  }

  static bool isDigit(char c) { return c >= '0' && c <= '9'; }

  bool number(Token& out) {
    const char* start = p_;
    if (*p_ == '-') ++p_;
    if (p_ == end_ || !isDigit(*p_)) return fail("expected a digit");
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ != end_ && isDigit(*p_)) ++p_;
    }
    bool integer = true;
    if (p_ != end_ && *p_ == '.') {
      integer = false;
      ++p_;
      if (p_ == end_ || !isDigit(*p_)) return fail("expected a digit after '.'");
      while (p_ != end_ && isDigit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !isDigit(*p_)) return fail("expected a digit in the exponent");
      while (p_ != end_ && isDigit(*p_)) ++p_;
    }
    out.kind = Kind::kNumber;
    out.integer = integer;
    out.text = std::string_view(start, static_cast<size_t>(p_ - start));
    // What Poco's NumberParser cannot hold, Poco's parser refuses: an integer of 19 digits or
    // more may be one, any other number may be beyond a double. Asked of the same functions.
    const size_t digits = out.text.size() - (*start == '-' ? 1 : 0);
    if (integer && digits < 19) return true;
    std::string s(out.text);
    if (integer) {
      Poco::Int64 i = 0;
      Poco::UInt64 u = 0;
      if (Poco::NumberParser::tryParse64(s, i) || Poco::NumberParser::tryParseUnsigned64(s, u)) {
        return true;
      }
      return fail("integer out of range");
    }
    double d = 0;
    if (!Poco::NumberParser::tryParseFloat(s, d)) return fail("number out of range");
    return true;
  }

  static int hexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // Four hex digits after "\u" (p_ at the first); -1 if not.
  int hex4() {
    if (end_ - p_ < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hexDigit(p_[i]);
      if (h < 0) return -1;
      v = v * 16 + h;
    }
    p_ += 4;
    return v;
  }

  // A string token (p_ at its quote): escapes and UTF-8 checked, nothing decoded.
  bool string(Token& out) {
    const char* start = p_++;
    out = Token{};
    out.kind = Kind::kString;
    for (;;) {
      while (p_ != end_) {
        unsigned char c = static_cast<unsigned char>(*p_);
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
        ++p_;
      }
      if (p_ == end_) return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        break;
      }
      if (c < 0x20) return fail("unescaped control character in a string");
      if (c == '\\') {
        out.escaped = true;
        if (++p_ == end_) return fail("unterminated string");
        char e = *p_++;
        if (e == 'u') {
          int h = hex4();
          if (h < 0) return fail("invalid \\u escape");
          if (h >= 0xDC00 && h <= 0xDFFF) return fail("unpaired low surrogate");
          if (h >= 0xD800 && h <= 0xDBFF) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return fail("unpaired surrogate");
            p_ += 2;
            int l = hex4();
            if (l < 0xDC00 || l > 0xDFFF) return fail("invalid surrogate pair");
          }
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                   e != 'r' && e != 't') {
          --p_;
          return fail("invalid escape");
        }
        continue;
      }
      if (!utf8()) return false;
    }
    out.text = std::string_view(start, static_cast<size_t>(p_ - start));
    return true;
  }

  // One UTF-8 sequence of two to four bytes (p_ at its first): well-formed, shortest form, no
  // surrogates, at most U+10FFFF.
  bool utf8() {
    auto b = [&](ptrdiff_t i) { return static_cast<unsigned char>(p_[i]); };
    auto cont = [](unsigned char c) { return (c & 0xC0) == 0x80; };
    unsigned char c = b(0);
    ptrdiff_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0) return fail("invalid UTF-8");
    if (end_ - p_ < n) return fail("invalid UTF-8");
    unsigned char c1 = b(1);
    if (!cont(c1)) return fail("invalid UTF-8");
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 > 0x8F)) {
      return fail("invalid UTF-8");
    }
    for (ptrdiff_t i = 2; i < n; ++i) {
      if (!cont(b(i))) return fail("invalid UTF-8");
    }
    p_ += n;
    return true;
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  const char* error_ = nullptr;
  size_t errorAt_ = 0;
  bool first_ = true;
  int outer_ = 0;  // levels open around the value being read (beginObject's)
};

// Whether text is one JSON value with nothing but whitespace around it (what Poco's parser
// accepts; see above).
inline bool isJson(std::string_view text) {
  Scanner s(text);
  Token t;
  return s.value(t) && s.atEnd();
}

// The value of a string token (its quotes dropped, its escapes resolved, "\u0000" kept as a
// NUL byte, as Poco's parser does).
inline std::string decodeString(const Token& t) {
  std::string_view in = t.text.substr(1, t.text.size() - 2);
  if (!t.escaped) return std::string(in);
  std::string out;
  out.reserve(in.size());
  auto hex4 = [&](size_t at) {
    unsigned v = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = in[at + k];
      v = v * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    char e = in[++i];
    switch (e) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        unsigned cp = hex4(i + 1);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // the scan saw its low half follow
          cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(i + 3) - 0xDC00);
          i += 6;
        }
        if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else if (cp < 0x800) {
          out += static_cast<char>(0xC0 | (cp >> 6));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
          out += static_cast<char>(0xE0 | (cp >> 12));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
          out += static_cast<char>(0xF0 | (cp >> 18));
          out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        break;
      }
      default: out += e; break;  // '"', '\\', '/'
    }
  }
  return out;
}

// A token's text without the whitespace between its tokens (a scanned token: valid JSON).
inline std::string compactText(const Token& t) {
  if (!t.spaced) return std::string(t.text);
  std::string out;
  out.reserve(t.text.size());
  bool inString = false;
  for (size_t i = 0; i < t.text.size(); ++i) {
    char c = t.text[i];
    if (inString) {
      out += c;
      if (c == '\\') {
        out += t.text[++i];
      } else if (c == '"') {
        inString = false;
      }
    } else if (c == '"') {
      inString = true;
      out += c;
    } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
      out += c;
    }
  }
  return out;
}

}  // namespace hearth::json
