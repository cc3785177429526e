// The socket API's request side: one JSON object per line (see client.h for
// the whole protocol). Parsing is separate from the server so that it can be
// unit-tested and fuzzed on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace fp {

// A request line longer than this (newline excluded) is refused.
inline constexpr size_t kMaxRequestBytes = 64 * 1024;
// Requests are flat objects; anything nested deeper than this is refused before
// it is parsed, so a line of 64 Ki '[' costs nothing.
inline constexpr int kMaxRequestDepth = 8;

enum class Command { Ping, View, Status, Events };
const char* command_name(Command c);

struct Request {
  Command cmd = Command::Ping;
  uint64_t backlog = 0;  // events: how many recent events to send first
  bool follow = false;   // events: keep the connection and stream new events
};

// Parses one request line (without its newline; a trailing '\r' is allowed).
// Unknown keys are ignored so that newer clients can add optional fields; known
// keys must have the right type. The error says what was wrong.
Result<Request> parse_request(std::string_view line, size_t max_bytes = kMaxRequestBytes);

// {"ok":false,"error":MESSAGE} plus the newline. The message may hold bytes
// that are not UTF-8 (they are replaced).
std::string error_reply(std::string_view message);

}  // namespace fp
