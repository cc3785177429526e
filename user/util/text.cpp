#include "util/text.h"

#include <cstdint>

namespace fp {
namespace {

constexpr char kHex[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The bytes a \xHH of escape_text() stands for: the ones it escapes (a
// control, or >= 0x80) and the backslash itself.
bool decodes(unsigned v) { return v < 0x20 || v >= 0x7f || v == '\\'; }

// `s` at i holds "\xHH" that unescape_text() would turn into one byte.
bool escape_at(std::string_view s, size_t i, unsigned* value = nullptr) {
  if (i + 4 > s.size()) return false;
  if (s[i] != '\\' || s[i + 1] != 'x') return false;
  int hi = hex_value(s[i + 2]), lo = hex_value(s[i + 3]);
  if (hi < 0 || lo < 0) return false;
  unsigned v = unsigned(hi * 16 + lo);
  if (!decodes(v)) return false;
  if (value) *value = v;
  return true;
}

uint32_t code_point(std::string_view s, size_t i, size_t len) {
  auto b = [&](size_t k) { return uint32_t(static_cast<unsigned char>(s[i + k])); };
  switch (len) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1f) << 6) | (b(1) & 0x3f);
    case 3: return ((b(0) & 0x0f) << 12) | ((b(1) & 0x3f) << 6) | (b(2) & 0x3f);
    default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3f) << 12) | ((b(2) & 0x3f) << 6) | (b(3) & 0x3f);
  }
}

// Code points a terminal or log viewer acts on instead of showing: they can
// reorder what follows (bidi), hide text (zero width) or break a line.
bool hidden(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || (cp >= 0x200b && cp <= 0x200f) ||
         (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff;
}

void append_hex(std::string& out, unsigned char c) {
  out += '\\';
  out += 'x';
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

// One pass for both escapes. reversible: a backslash that would decode is
// written \x5c. Returns whether anything changed (out untouched when not
// writing, i.e. out == nullptr).
bool escape(std::string_view s, std::string* out, bool reversible, bool keep_newlines) {
  bool changed = false;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      if (c == '\\' && reversible && escape_at(s, i)) {
        if (!out) return true;
        changed = true;
        append_hex(*out, c);
      } else if (out) {
        *out += char(c);
      }
      ++i;
      continue;
    }
    if (c < 0x80) {  // a control byte
      if (c == '\n' && keep_newlines) {
        if (out) *out += '\n';
      } else {
        if (!out) return true;
        changed = true;
        append_hex(*out, c);
      }
      ++i;
      continue;
    }
    const size_t len = utf8_sequence_length(s, i);
    if (len == 0 || hidden(code_point(s, i, len))) {
      if (!out) return true;
      changed = true;
      const size_t n = len == 0 ? 1 : len;
      for (size_t k = 0; k < n; ++k) append_hex(*out, static_cast<unsigned char>(s[i + k]));
      i += n;
      continue;
    }
    if (out) out->append(s.substr(i, len));
    i += len;
  }
  return changed;
}

std::string escaped(std::string_view s, bool reversible, bool keep_newlines) {
  if (!escape(s, nullptr, reversible, keep_newlines)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  escape(s, &out, reversible, keep_newlines);
  return out;
}

template <class J>
bool json_needs_escape(const J& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::string: return needs_escape(j.template get_ref<const std::string&>());
    case nlohmann::json::value_t::array:
      for (const auto& e : j)
        if (json_needs_escape(e)) return true;
      return false;
    case nlohmann::json::value_t::object:
      for (auto it = j.begin(); it != j.end(); ++it)
        if (needs_escape(it.key()) || json_needs_escape(it.value())) return true;
      return false;
    default: return false;
  }
}

// f(string) -> string on every string and key.
template <class J, class F>
void map_json_strings(J& j, const F& f) {
  if (j.is_string()) {
    j = f(j.template get_ref<const std::string&>());
  } else if (j.is_array()) {
    for (auto& e : j) map_json_strings(e, f);
  } else if (j.is_object()) {
    bool keys_change = false;
    for (auto it = j.begin(); it != j.end(); ++it)
      if (f(it.key()) != it.key()) keys_change = true;
    if (!keys_change) {
      for (auto it = j.begin(); it != j.end(); ++it) map_json_strings(it.value(), f);
      return;
    }
    J out = J::object();  // both maps are one-to-one: no two keys become one
    for (auto it = j.begin(); it != j.end(); ++it) {
      J v = std::move(it.value());
      map_json_strings(v, f);
      out[f(it.key())] = std::move(v);
    }
    j = std::move(out);
  }
}

template <class J>
std::string dump_escaped(const J& j, int indent) {
  // Every string is valid UTF-8 after escaping; `replace` only guards
  // against a bug here turning into an exception in an output path.
  if (!json_needs_escape(j)) return j.dump(indent, ' ', false, J::error_handler_t::replace);
  J copy = j;
  escape_json_strings(copy);
  return copy.dump(indent, ' ', false, J::error_handler_t::replace);
}

}  // namespace

size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k)
    if ((b(i + k) & 0xc0) != 0x80) return 0;
  if (c == 0xe0 && b(i + 1) < 0xa0) return 0;  // overlong
  if (c == 0xed && b(i + 1) > 0x9f) return 0;  // surrogate
  if (c == 0xf0 && b(i + 1) < 0x90) return 0;  // overlong
  if (c == 0xf4 && b(i + 1) > 0x8f) return 0;  // above U+10FFFF
  return len;
}

std::string escape_text(std::string_view bytes) { return escaped(bytes, true, false); }
bool needs_escape(std::string_view bytes) { return escape(bytes, nullptr, true, false); }

std::string unescape_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    unsigned v = 0;
    if (text[i] == '\\' && escape_at(text, i, &v)) {
      out += char(v);
      i += 4;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string display_text(std::string_view bytes, bool keep_newlines) { return escaped(bytes, false, keep_newlines); }
bool needs_display_escape(std::string_view bytes, bool keep_newlines) {
  return escape(bytes, nullptr, false, keep_newlines);
}

std::string_view utf8_prefix(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = 0;
  while (end < max_bytes) {
    size_t len = utf8_sequence_length(text, end);
    if (len == 0) len = 1;
    if (end + len > max_bytes) break;
    end += len;
  }
  return text.substr(0, end);
}

size_t text_columns(std::string_view text) {
  size_t n = 0;
  for (size_t i = 0; i < text.size(); ++n) {
    size_t len = utf8_sequence_length(text, i);
    i += len == 0 ? 1 : len;
  }
  return n;
}

namespace {
// The first `columns` code points of an already displayable text.
std::string_view first_columns(std::string_view text, size_t columns) {
  size_t i = 0;
  for (size_t n = 0; n < columns && i < text.size(); ++n) {
    size_t len = utf8_sequence_length(text, i);
    i += len == 0 ? 1 : len;
  }
  return text.substr(0, i);
}
}  // namespace

std::string fit_columns(std::string_view text, size_t columns, bool left_align) {
  std::string shown = display_text(text);
  std::string out(first_columns(shown, columns));
  const size_t pad = columns - text_columns(out);
  if (left_align) return out + std::string(pad, ' ');
  return std::string(pad, ' ') + out;
}

std::string cut_columns(std::string_view text, size_t columns) {
  std::string shown = display_text(text);
  if (text_columns(shown) <= columns) return shown;
  if (columns <= 3) return std::string(first_columns(shown, columns));
  return std::string(first_columns(shown, columns - 3)) + "...";
}

void escape_json_strings(nlohmann::json& j) { map_json_strings(j, [](const std::string& s) { return escape_text(s); }); }
void escape_json_strings(nlohmann::ordered_json& j) {
  map_json_strings(j, [](const std::string& s) { return escape_text(s); });
}
void unescape_json_strings(nlohmann::json& j) {
  map_json_strings(j, [](const std::string& s) { return unescape_text(s); });
}

std::string safe_dump(const nlohmann::json& j, int indent) { return dump_escaped(j, indent); }
std::string safe_dump(const nlohmann::ordered_json& j, int indent) { return dump_escaped(j, indent); }

}  // namespace fp
