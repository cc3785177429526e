// The sanitizer every output goes through (util/text.h): what it escapes,
// that it round-trips, and that JSON built from hostile bytes always dumps.
#include "util/text.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace fp {
namespace {

using namespace std::string_literals;

// Valid UTF-8 with no control byte and nothing a display acts on.
bool displayable(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = utf8_sequence_length(s, i);
    if (len == 0) return false;
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (len == 1 && (c < 0x20 || c == 0x7f)) return false;
    i += len;
  }
  return !needs_display_escape(s);
}

TEST(Text, PrintableUtf8PassesUnchanged) {
  for (std::string s : {"", "sshd", "python3", "kworker/0:1H", "/system.slice/system-getty.slice",
                        "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "a b=c \"q\" 'x' [1]", "\xf0\x9f\x98\x80"}) {
    EXPECT_FALSE(needs_escape(s)) << s;
    EXPECT_EQ(escape_text(s), s);
    EXPECT_EQ(display_text(s), s);
  }
  // systemd's own escapes in unit and cgroup names are text, not ours.
  EXPECT_EQ(escape_text("system-systemd\\x2dfsck.slice"), "system-systemd\\x2dfsck.slice");
}

TEST(Text, InvalidUtf8AndControlsBecomeHexEscapes) {
  EXPECT_EQ(escape_text("x\xff\xfey"), "x\\xff\\xfey");
  EXPECT_EQ(escape_text("a\nb"), "a\\x0ab");
  EXPECT_EQ(escape_text("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(escape_text("tab\there\r"), "tab\\x09here\\x0d");
  EXPECT_EQ(escape_text("del\x7f"), "del\\x7f");
  EXPECT_EQ(escape_text("nul"s + '\0' + "x"), "nul\\x00x");
  // Overlong, surrogate, above U+10FFFF, truncated sequence.
  EXPECT_EQ(escape_text("\xc0\xaf"), "\\xc0\\xaf");
  EXPECT_EQ(escape_text("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  EXPECT_EQ(escape_text("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
  EXPECT_EQ(escape_text("ab\xe6\x97"), "ab\\xe6\\x97");
}

TEST(Text, CodePointsADisplayActsOnAreEscaped) {
  EXPECT_EQ(escape_text("\xc2\x9b" "31m"), "\\xc2\\x9b31m");          // C1 CSI
  EXPECT_EQ(escape_text("abc\xe2\x80\xaetxt.exe"), "abc\\xe2\\x80\\xaetxt.exe");  // RIGHT-TO-LEFT OVERRIDE
  EXPECT_EQ(escape_text("a\xe2\x80\xa8" "b"), "a\\xe2\\x80\\xa8b");  // LINE SEPARATOR
  EXPECT_EQ(escape_text("\xef\xbb\xbfx"), "\\xef\\xbb\\xbfx");       // BOM
  EXPECT_EQ(escape_text("zero\xe2\x80\x8bwidth"), "zero\\xe2\\x80\\x8bwidth");
}

TEST(Text, BackslashThatWouldDecodeIsEscaped) {
  // A name that spells an escape must not read back as the byte.
  EXPECT_EQ(escape_text("x\\xffy"), "x\\x5cxffy");
  EXPECT_EQ(unescape_text(escape_text("x\\xffy")), "x\\xffy");
  EXPECT_EQ(escape_text("\\x5c"), "\\x5cx5c");
  // Backslashes that cannot be misread stay as they are.
  EXPECT_EQ(escape_text("C:\\dir\\"), "C:\\dir\\");
  EXPECT_EQ(escape_text("\\x41"), "\\x41");  // 'A' is never escaped, so \x41 decodes to nothing
  // A backslash before an escaped byte: the escape that follows starts with '\', not 'x'.
  EXPECT_EQ(escape_text("\\\xff"), "\\\\xff");
  EXPECT_EQ(unescape_text("\\\\xff"), "\\\xff");
}

TEST(Text, RoundTripsEveryByteString) {
  std::mt19937 rng(12345);
  const std::string alphabet = "\\x5cfF0A\xff\xc3\xa9\n\x1b\x80\xe2";
  for (int n = 0; n < 20000; ++n) {
    std::string s;
    size_t len = rng() % 12;
    for (size_t i = 0; i < len; ++i)
      s += (rng() % 4 == 0) ? char(rng() % 256) : alphabet[rng() % alphabet.size()];
    std::string e = escape_text(s);
    ASSERT_EQ(unescape_text(e), s) << e;
    ASSERT_TRUE(displayable(e)) << e;
    ASSERT_EQ(needs_escape(s), e != s);
    // display_text is the identity on escaped text and idempotent anywhere.
    ASSERT_EQ(display_text(e), e);
    ASSERT_EQ(display_text(display_text(s)), display_text(s));
    ASSERT_TRUE(displayable(display_text(s)));
  }
}

TEST(Text, DisplayTextLeavesBackslashesAndOptionallyNewlines) {
  EXPECT_EQ(display_text("x\\xffy\xff"), "x\\xffy\\xff");
  EXPECT_EQ(display_text("two\nlines"), "two\\x0alines");
  EXPECT_EQ(display_text("two\nlines\x1b", true), "two\nlines\\x1b");
}

TEST(Text, Utf8AwareCutsAndColumns) {
  const std::string e = "caf\xc3\xa9";  // 4 code points, 5 bytes
  EXPECT_EQ(text_columns(e), 4u);
  EXPECT_EQ(utf8_prefix(e, 4), "caf");
  EXPECT_EQ(utf8_prefix(e, 5), e);
  EXPECT_EQ(fit_columns(e, 6, true), e + "  ");
  EXPECT_EQ(fit_columns(e, 6, false), "  " + e);
  EXPECT_EQ(fit_columns("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 2, true), "\xe6\x97\xa5\xe6\x9c\xac");
  // Columns count the escape as shown: a cut may end inside it, never inside a UTF-8 sequence.
  EXPECT_EQ(fit_columns("a\xff", 3, true), "a\\x");
  EXPECT_EQ(cut_columns("abcdefgh", 6), "abc...");
  EXPECT_EQ(cut_columns("abc", 6), "abc");
}

TEST(Text, SafeDumpNeverThrowsAndRoundTrips) {
  nlohmann::json j;
  j["comm"] = "x\xff\xfey";
  j["cgroup"] = "/user.slice/evil\n[fake] line";
  j["nested"] = {{"list", {"ok", "bad\x80"}}, {"n", 3}};
  j["key\xff"] = "v";
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);
  std::string text;
  ASSERT_NO_THROW(text = safe_dump(j));
  EXPECT_EQ(text.find('\n'), std::string::npos);
  EXPECT_TRUE(displayable(text));
  auto back = nlohmann::json::parse(text);
  EXPECT_EQ(back["comm"], "x\\xff\\xfey");
  EXPECT_EQ(back["nested"]["list"][1], "bad\\x80");
  EXPECT_TRUE(back.contains("key\\xff"));
  unescape_json_strings(back);
  EXPECT_EQ(back, j);

  nlohmann::ordered_json o;
  o["b"] = "\x1b]0;title\x07";
  o["a"] = 1;
  EXPECT_EQ(safe_dump(o), R"({"b":"\\x1b]0;title\\x07","a":1})");
  // Nothing to escape: the same text as dump().
  nlohmann::json plain = {{"comm", "sshd"}, {"pid", 1}};
  EXPECT_EQ(safe_dump(plain), plain.dump());
  EXPECT_EQ(safe_dump(plain, 2), plain.dump(2));
}

}  // namespace
}  // namespace fp
