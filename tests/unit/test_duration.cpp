#include "util/duration.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace fp {
namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

nanoseconds parsed(std::string_view text) {
  auto r = parse_duration(text);
  EXPECT_TRUE(r.ok()) << "\"" << text << "\": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : nanoseconds(-1);
}

TEST(ParseDuration, EveryUnit) {
  EXPECT_EQ(parsed("7ns"), 7ns);
  EXPECT_EQ(parsed("7us"), 7us);
  EXPECT_EQ(parsed("7ms"), 7ms);
  EXPECT_EQ(parsed("7s"), 7s);
  EXPECT_EQ(parsed("7m"), 7min);
  EXPECT_EQ(parsed("7h"), 7h);
}

TEST(ParseDuration, CommonForms) {
  EXPECT_EQ(parsed("1s"), 1s);
  EXPECT_EQ(parsed("250ms"), 250ms);
  EXPECT_EQ(parsed("100ms"), 100ms);
  EXPECT_EQ(parsed("2m"), 120s);
  EXPECT_EQ(parsed("0s"), 0ns);
  EXPECT_EQ(parsed("0ms"), 0ns);
  EXPECT_EQ(parsed("007s"), 7s);
}

TEST(ParseDuration, FractionsAreExact) {
  EXPECT_EQ(parsed("1.5s"), 1500ms);
  EXPECT_EQ(parsed("0.1s"), 100ms);  // no binary floating point on the way
  EXPECT_EQ(parsed("0.3s"), 300ms);
  EXPECT_EQ(parsed("1.5m"), 90s);
  EXPECT_EQ(parsed("0.25h"), 15min);
  EXPECT_EQ(parsed("2.000000001s"), 2000000001ns);
  EXPECT_EQ(parsed("1.10ms"), 1100us);
}

TEST(ParseDuration, SubNanosecondFractionTruncates) {
  EXPECT_EQ(parsed("1.9ns"), 1ns);
  EXPECT_EQ(parsed("0.0000000019s"), 1ns);
  // More fraction digits than matter are accepted and ignored.
  EXPECT_EQ(parsed("1.0000000000000000000000001s"), 1s);
}

TEST(ParseDuration, SurroundingWhitespace) {
  EXPECT_EQ(parsed(" 10ms "), 10ms);
  EXPECT_EQ(parsed("\t2s\n"), 2s);
}

void expect_invalid(std::string_view text) {
  auto r = parse_duration(text);
  ASSERT_FALSE(r.ok()) << "\"" << text << "\" parsed as " << r.value().count() << "ns";
  // The message quotes the input and says what was expected.
  EXPECT_NE(r.error().message.find("invalid duration \"" + std::string(text) + "\""), std::string::npos)
      << r.error().message;
}

TEST(ParseDuration, RejectsMalformed) {
  for (std::string_view bad : {"", "   ", "10", "abc", "s", "1x", "1.2.3s", "1.s", ".5s", "1 s", "1s2",
                               "1ss", "1S", "1sec", "1 ms", "+1s", "1e3ms", "0x10s", "1s 2m", "ms10"}) {
    SCOPED_TRACE(std::string("input: \"") + std::string(bad) + "\"");
    expect_invalid(bad);
  }
}

TEST(ParseDuration, MessageNamesTheUnits) {
  auto r = parse_duration("10");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "invalid duration \"10\": expected a number followed by a unit (ns, us, ms, s, m, h), "
            "e.g. 500ms or 2s");
  EXPECT_EQ(r.error().code, 0);
}

TEST(ParseDuration, RejectsNegative) {
  auto r = parse_duration("-1s");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("negative"), std::string::npos) << r.error().message;
  expect_invalid("-0s");
  expect_invalid(" -5ms");
}

TEST(ParseDuration, Overflow) {
  // int64 nanoseconds hold about 292 years.
  EXPECT_EQ(parsed("9223372036854775807ns"), nanoseconds(std::numeric_limits<int64_t>::max()));
  expect_invalid("9223372036854775808ns");
  expect_invalid("9223372036854775807.9us");
  expect_invalid("3000000h");
  expect_invalid("99999999999999999999999999999999999s");
  auto r = parse_duration("3000000h");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("too large"), std::string::npos) << r.error().message;
  EXPECT_EQ(parsed("2562047h"), 2562047h);  // just fits
}

TEST(FormatDuration, NaturalForms) {
  EXPECT_EQ(format_duration(0ns), "0s");
  EXPECT_EQ(format_duration(1s), "1s");
  EXPECT_EQ(format_duration(1500ms), "1.5s");
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(100ms), "100ms");
  EXPECT_EQ(format_duration(2min), "2m");
  EXPECT_EQ(format_duration(90min), "90m");
  EXPECT_EQ(format_duration(1h), "1h");
  EXPECT_EQ(format_duration(48h), "48h");
  EXPECT_EQ(format_duration(90s), "90s");  // not a whole number of minutes
  EXPECT_EQ(format_duration(61s), "61s");
  EXPECT_EQ(format_duration(1us), "1us");
  EXPECT_EQ(format_duration(1500ns), "1.5us");
  EXPECT_EQ(format_duration(999ns), "999ns");
  EXPECT_EQ(format_duration(1ns), "1ns");
  EXPECT_EQ(format_duration(1234us), "1.234ms");
}

TEST(FormatDuration, RoundsToThreeDecimals) {
  EXPECT_EQ(format_duration(1234567ns), "1.235ms");
  EXPECT_EQ(format_duration(1000213457ns), "1s");
  // Rounding up to 1000 of a unit moves to the next unit.
  EXPECT_EQ(format_duration(999999600ns), "1s");
  EXPECT_EQ(format_duration(999999ns), "1ms");
  EXPECT_EQ(format_duration(120000400us), "2m");
}

TEST(FormatDuration, Negative) {
  EXPECT_EQ(format_duration(-1500ms), "-1.5s");
  EXPECT_EQ(format_duration(-2min), "-2m");
  EXPECT_EQ(format_duration(nanoseconds(std::numeric_limits<int64_t>::min())), "-9223372036.855s");
}

TEST(FormatDuration, RoundTripsThroughParse) {
  for (nanoseconds d : {nanoseconds(0), nanoseconds(1), nanoseconds(999), nanoseconds(1500), nanoseconds(250ms),
                        nanoseconds(1500ms), nanoseconds(90s), nanoseconds(2min), nanoseconds(90min),
                        nanoseconds(1h), nanoseconds(100ms), nanoseconds(1234us), nanoseconds(3601s)}) {
    std::string text = format_duration(d);
    EXPECT_EQ(parsed(text), d) << text;
  }
}

}  // namespace
}  // namespace fp
