// Internal to repo/tree: a cursor over JSON text that follows nlohmann's lexical rules
// (strict JSON; invalid UTF-8, lone surrogates, control characters in strings and non-finite
// numbers are rejected), used by the single-pass tree blob parser.
//
// Thread contract: a Scanner is used by one thread; it views (does not own) the text, which
// must outlive it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace coffer::repo::detail {

// A cursor over JSON text with nlohmann's lexical rules.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  const char* pos() const { return p_; }
  void rewind(const char* p) { p_ = p; }
  // Next non-blank byte without consuming it; '\0' at the end.
  char peek() {
    ws();
    return p_ < end_ ? *p_ : '\0';
  }
  bool eat(char c) {
    if (peek() != c || p_ == end_)
      return false;
    ++p_;
    return true;
  }
  // Only blanks remain; like nlohmann, a NUL byte ends the input (what follows is ignored).
  bool at_end() { return peek() == '\0'; }
  bool literal(std::string_view lit) {
    ws();
    if (static_cast<std::size_t>(end_ - p_) < lit.size() || std::memcmp(p_, lit.data(), lit.size()))
      return false;
    p_ += lit.size();
    return true;
  }
  // A string; `out` views the text, or `buf` when the string has escapes.
  bool string(std::string_view& out, std::string& buf);
  // `null` (0) or a non-negative integer that is at most `max`.
  bool uint(std::uint64_t max, std::uint64_t& out);
  // Consumes one well-formed JSON value of any kind. A failure marks the text broken.
  bool skip_value();
  // A skip_value failed: the text is not well-formed JSON, so no rewind can help.
  bool broken() const { return broken_; }

 private:
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool hex4(char32_t& out);
  bool escape(std::string& buf);
  bool utf8();
  bool digits();
  bool number();
  bool skip_scalar();
  bool skip_any();
  int after_value(std::vector<char>& open);

  const char* p_;
  const char* end_;
  bool broken_ = false;
};

}  // namespace coffer::repo::detail
