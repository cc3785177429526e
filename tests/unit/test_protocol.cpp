// The socket API's request parser: what it accepts and how it refuses the rest.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "server/protocol.h"

namespace fp {
namespace {

Request ok(std::string_view line) {
  auto r = parse_request(line);
  EXPECT_TRUE(r.ok()) << line << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : Request{};
}

std::string err(std::string_view line, size_t max = kMaxRequestBytes) {
  auto r = parse_request(line, max);
  EXPECT_FALSE(r.ok()) << line;
  return r.ok() ? std::string() : r.error().message;
}

TEST(Protocol, ValidCommands) {
  EXPECT_EQ(ok(R"({"cmd":"ping"})").cmd, Command::Ping);
  EXPECT_EQ(ok(R"({"cmd":"view"})").cmd, Command::View);
  EXPECT_EQ(ok(R"({"cmd":"snapshot"})").cmd, Command::View);
  EXPECT_EQ(ok(R"(  {"cmd" : "status"}  )").cmd, Command::Status);
  EXPECT_EQ(ok("{\"cmd\":\"status\"}\r").cmd, Command::Status);  // a CRLF client
  Request e = ok(R"({"cmd":"events","backlog":25,"follow":true})");
  EXPECT_EQ(e.cmd, Command::Events);
  EXPECT_EQ(e.backlog, 25u);
  EXPECT_TRUE(e.follow);
  Request d = ok(R"({"cmd":"events"})");
  EXPECT_EQ(d.backlog, 0u);
  EXPECT_FALSE(d.follow);
  // Unknown keys are ignored: newer clients may add optional fields.
  EXPECT_EQ(ok(R"({"cmd":"ping","client":"top","n":[1,2]})").cmd, Command::Ping);
}

TEST(Protocol, UnknownOrMissingCmd) {
  EXPECT_NE(err(R"({"cmd":"reboot"})").find("unknown cmd \"reboot\""), std::string::npos);
  EXPECT_NE(err(R"({"command":"ping"})").find("no \"cmd\""), std::string::npos);
  EXPECT_NE(err(R"({"cmd":""})").find("unknown cmd"), std::string::npos);
  EXPECT_NE(err(R"({"cmd":"PING"})").find("unknown cmd"), std::string::npos);
}

TEST(Protocol, NotAnObject) {
  EXPECT_NE(err(R"(["cmd","ping"])").find("must be a JSON object, got array"), std::string::npos);
  EXPECT_NE(err(R"("ping")").find("got string"), std::string::npos);
  EXPECT_NE(err("42").find("got number"), std::string::npos);
  EXPECT_NE(err("null").find("got null"), std::string::npos);
  EXPECT_NE(err("").find("empty request"), std::string::npos);
  EXPECT_NE(err("   ").find("empty request"), std::string::npos);
}

TEST(Protocol, Garbage) {
  EXPECT_NE(err("hello").find("malformed JSON"), std::string::npos);
  EXPECT_NE(err(R"({"cmd":"ping")").find("malformed JSON"), std::string::npos);  // truncated
  EXPECT_NE(err(R"({"cmd":"ping"}{"cmd":"ping"})").find("malformed JSON"), std::string::npos);
  EXPECT_NE(err("\xff\xfe{}").find("malformed JSON"), std::string::npos);
  EXPECT_NE(err("{\"cmd\":\"p\xc3\"}").find("malformed JSON"), std::string::npos);  // bad UTF-8 in a string
  // Numbers no double holds are out_of_range in nlohmann, not parse_error (found by fuzz_request).
  EXPECT_NE(err("1e999").find("number overflow"), std::string::npos);
  EXPECT_NE(err(R"({"cmd":"ping","x":-1E400})").find("malformed JSON"), std::string::npos);
  EXPECT_NE(err(R"({"cmd":"events","backlog":333333333333333333E33366636366666666666670})").find("malformed JSON"),
            std::string::npos);
  // The message does not carry nlohmann's exception tag.
  EXPECT_EQ(err("hello").find("[json.exception"), std::string::npos);
}

TEST(Protocol, BadTypes) {
  EXPECT_NE(err(R"({"cmd":1})").find("\"cmd\" must be a string, got number"), std::string::npos);
  EXPECT_NE(err(R"({"cmd":null})").find("got null"), std::string::npos);
  EXPECT_NE(err(R"({"cmd":"events","backlog":-1})").find("\"backlog\" must be a non-negative integer, got -1"),
            std::string::npos);
  EXPECT_NE(err(R"({"cmd":"events","backlog":2.5})").find("got 2.5"), std::string::npos);
  EXPECT_NE(err(R"({"cmd":"events","backlog":"10"})").find("got string"), std::string::npos);
  EXPECT_NE(err(R"({"cmd":"events","backlog":true})").find("got boolean"), std::string::npos);
  EXPECT_NE(err(R"({"cmd":"events","backlog":1e3})").find("non-negative integer"), std::string::npos);
  EXPECT_NE(err(R"({"cmd":"events","follow":1})").find("\"follow\" must be true or false, got number"),
            std::string::npos);
  EXPECT_NE(err(R"({"cmd":"events","follow":"yes"})").find("got string"), std::string::npos);
  // Huge integers do not wrap into something plausible.
  EXPECT_EQ(ok(R"({"cmd":"events","backlog":18446744073709551615})").backlog, 18446744073709551615ull);
  EXPECT_FALSE(parse_request(R"({"cmd":"events","backlog":18446744073709551616})").ok());
}

TEST(Protocol, Oversized) {
  std::string pad(kMaxRequestBytes, ' ');
  std::string line = R"({"cmd":"ping","pad":")" + pad + "\"}";
  EXPECT_NE(err(line).find("request too long"), std::string::npos);
  // Exactly at the limit is fine; the server may choose a smaller one.
  std::string at = R"({"cmd":"ping"})";
  at.append(kMaxRequestBytes - at.size(), ' ');
  EXPECT_EQ(ok(at).cmd, Command::Ping);
  EXPECT_NE(err(R"({"cmd":"ping"})", 8).find("limit is 8"), std::string::npos);
}

TEST(Protocol, EmbeddedNul) {
  std::string line = R"({"cmd":"ping"})";
  line.insert(5, 1, '\0');
  EXPECT_NE(err(line).find("NUL"), std::string::npos);
  std::string trailing = R"({"cmd":"ping"})";
  trailing.push_back('\0');
  EXPECT_NE(err(trailing).find("NUL"), std::string::npos);
}

TEST(Protocol, DeepNesting) {
  std::string deep(kMaxRequestBytes / 2, '[');
  EXPECT_NE(err(deep).find("nested too deeply"), std::string::npos);
  std::string deep_obj = R"({"cmd":"ping","x":)" + std::string(100, '{');
  EXPECT_NE(err(deep_obj).find("nested too deeply"), std::string::npos);
  // Brackets inside strings are not nesting, even after escaped quotes.
  std::string in_string = R"({"cmd":"ping","x":"\"[[[[[[[[[[[[[[[[[[[[[[[[[[[["})";
  EXPECT_EQ(ok(in_string).cmd, Command::Ping);
  // Modest nesting in an ignored field is allowed.
  EXPECT_EQ(ok(R"({"cmd":"ping","x":[[[{"a":[1]}]]]})").cmd, Command::Ping);
}

TEST(Protocol, ErrorReply) {
  std::string r = error_reply("bad \"thing\"\n");
  ASSERT_FALSE(r.empty());
  EXPECT_EQ(r.back(), '\n');
  EXPECT_EQ(r.find('\n'), r.size() - 1);  // one line whatever the message holds
  auto j = nlohmann::json::parse(r);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error"], "bad \"thing\"\\x0a");
  // Not UTF-8: escaped (util/text.h), not thrown.
  auto j2 = nlohmann::json::parse(error_reply("comm \xff\xfe"));
  EXPECT_EQ(j2["ok"], false);
  EXPECT_EQ(j2["error"], "comm \\xff\\xfe");
}

}  // namespace
}  // namespace fp
