// What the fuzz targets assert about any output: the oracle is written
// here, apart from the sanitizer it checks (util/text.h decides what to
// escape; this only says what must never come out).
#pragma once

#include <cstdlib>
#include <string_view>

#include "util/text.h"

namespace fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
}

// Valid UTF-8 with no control byte (newlines allowed when asked).
inline bool clean(std::string_view s, bool newlines = false) {
  for (size_t i = 0; i < s.size();) {
    size_t len = fp::utf8_sequence_length(s, i);
    if (len == 0) return false;
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (len == 1 && (c == 0x7f || (c < 0x20 && !(newlines && c == '\n')))) return false;
    i += len;
  }
  return true;
}

}  // namespace fuzz
