// Bytes from the kernel, /proc and users (process names, command lines,
// paths, cgroup names) made safe to write anywhere: the one place that
// decides how. Those bytes are not UTF-8 and may hold newlines, escape
// sequences and bidi overrides; the model keeps them as they are (a cgroup
// path must still name its directory, a respawn must exec the real argv) and
// every output goes through here:
//
//  - escape_text(): reversible. Printable valid UTF-8 passes unchanged; any
//    other byte becomes \xHH. For record fields (event JSON, state files,
//    syslog fields, Prometheus labels): unescape_text() gives the original
//    bytes back, so a forensic reader can match `x\xff\xfey` to the file.
//  - display_text(): the same bytes escaped, backslashes left alone. For whole
//    lines that already hold escaped fields (log lines, the CLI on a
//    terminal): idempotent, the identity on escape_text()'s output.
//  - safe_dump(): nlohmann::json's dump() with every string and key passed
//    through escape_text() first, so it cannot throw on invalid UTF-8
//    (nlohmann's error_handler_t::replace would lose the bytes instead).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace fp {

// Escaped: bytes 0x00-0x1f and 0x7f, every byte of an invalid UTF-8 sequence,
// and every byte of the code points a display acts on rather than shows (C1
// controls U+0080-U+009F, bidi and zero-width marks U+061C, U+200B-U+200F,
// U+202A-U+202E, U+2060-U+206F, line/paragraph separators U+2028/U+2029,
// U+FEFF). A backslash is written \x5c where it would otherwise read as the
// start of an escape (followed by `x` and two hex digits that decode).
std::string escape_text(std::string_view bytes);
// Whether escape_text() would change `bytes` (cheap: no allocation).
bool needs_escape(std::string_view bytes);
// The inverse of escape_text(): unescape_text(escape_text(b)) == b for all b.
std::string unescape_text(std::string_view text);

// Like escape_text() but backslashes pass unchanged (not reversible).
// keep_newlines: '\n' passes too (multi-line terminal text).
std::string display_text(std::string_view bytes, bool keep_newlines = false);
// Whether display_text() would change `bytes`.
bool needs_display_escape(std::string_view bytes, bool keep_newlines = false);

// Length of the valid UTF-8 sequence starting at s[i] (1-4), 0 when the
// bytes there are not one (RFC 3629: no overlongs, surrogates or > U+10FFFF).
size_t utf8_sequence_length(std::string_view s, size_t i);
// The longest prefix of `text` of at most max_bytes bytes that does not cut
// a UTF-8 sequence in two.
std::string_view utf8_prefix(std::string_view text, size_t max_bytes);
// Code points in `text` (an invalid byte counts as one): the terminal
// columns of display_text() output, wide characters aside.
size_t text_columns(std::string_view text);
// display_text(text) cut to `columns` code points, then padded with spaces
// to exactly `columns` (on the right when left_align, else on the left).
std::string fit_columns(std::string_view text, size_t columns, bool left_align);
// display_text(text) cut to at most `columns` code points, the last three
// replaced by "..." when cut (nothing is padded).
std::string cut_columns(std::string_view text, size_t columns);

// escape_text() on every string and object key, in place.
void escape_json_strings(nlohmann::json& j);
void escape_json_strings(nlohmann::ordered_json& j);
// unescape_text() on every string and object key, in place (reading back a
// file written with safe_dump()).
void unescape_json_strings(nlohmann::json& j);
// j.dump(indent) with escape_json_strings() applied to a copy when needed:
// valid UTF-8 with no control byte, never throws for the bytes it holds.
std::string safe_dump(const nlohmann::json& j, int indent = -1);
std::string safe_dump(const nlohmann::ordered_json& j, int indent = -1);

}  // namespace fp
