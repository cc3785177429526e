// libFuzzer target: the sanitizer every output goes through (util/text.h).
// Whatever the bytes: escape_text() is printable UTF-8 on one line and
// unescape_text() gives the bytes back; display_text() is the identity on
// that and idempotent anywhere; safe_dump() never throws and reads back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/text.h"
#include "fuzz_check.h"

using fuzz::check;
using fuzz::clean;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string e = fp::escape_text(in);
  check(clean(e));
  check(fp::unescape_text(e) == in);
  check(fp::needs_escape(in) == (e != in));
  check(fp::display_text(e) == e);
  const std::string d = fp::display_text(in);
  check(clean(d));
  check(fp::display_text(d) == d);
  check(clean(fp::display_text(in, true), true));
  for (size_t cols : {size_t(0), size_t(1), size_t(3), size_t(7), size_t(40)}) {
    std::string f = fp::fit_columns(in, cols, cols % 2 == 0);
    check(clean(f) && fp::text_columns(f) == cols);
    std::string c = fp::cut_columns(in, cols);
    check(clean(c) && fp::text_columns(c) <= cols);
  }
  check(fp::utf8_prefix(in, size / 2).size() <= size / 2);

  // The bytes as a string, a key and inside an array of a JSON document.
  nlohmann::json j;
  j["s"] = std::string(in);
  j[std::string(in.substr(0, 32))] = {std::string(in), 1};
  std::string text = fp::safe_dump(j);
  check(clean(text));
  auto back = nlohmann::json::parse(text);
  fp::unescape_json_strings(back);
  check(back == j);
  return 0;
}
