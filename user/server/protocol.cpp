#include "server/protocol.h"

#include <cstring>

#include <nlohmann/json.hpp>

#include "util/text.h"

namespace fp {

const char* command_name(Command c) {
  switch (c) {
    case Command::Ping: return "ping";
    case Command::View: return "view";
    case Command::Status: return "status";
    case Command::Events: return "events";
  }
  return "?";
}

namespace {

// Deepest nesting of arrays/objects outside strings, stopping early once over
// the limit. nlohmann's parser is iterative, but the DOM it would build from
// 64 KiB of '[' is not worth building just to refuse it.
bool nested_deeper_than(std::string_view s, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : s) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; the
// client does not need the tag.
std::string parse_error_text(const char* what) {
  std::string s = what;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find("] ");
    if (close != std::string::npos) s.erase(0, close + 2);
  }
  return s;
}

Error bad(std::string msg) { return Error{EINVAL, std::move(msg)}; }

}  // namespace

Result<Request> parse_request(std::string_view line, size_t max_bytes) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > max_bytes)
    return bad("request too long: " + std::to_string(line.size()) + " bytes, the limit is " +
               std::to_string(max_bytes));
  if (line.find_first_not_of(" \t") == std::string_view::npos) return bad("empty request: expected a JSON object");
  if (std::memchr(line.data(), '\0', line.size()) != nullptr) return bad("request contains a NUL byte");
  if (nested_deeper_than(line, kMaxRequestDepth))
    return bad("request nested too deeply (more than " + std::to_string(kMaxRequestDepth) + " levels)");

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    // Not only parse_error: a number too large for a double ("1e999") is an
    // out_of_range, and an uncaught one would end the daemon.
    return bad("malformed JSON: " + parse_error_text(e.what()));
  }
  if (!j.is_object()) return bad(std::string("request must be a JSON object, got ") + j.type_name());

  auto cmd_it = j.find("cmd");
  if (cmd_it == j.end()) return bad("request has no \"cmd\" (one of ping, view, snapshot, status, events)");
  if (!cmd_it->is_string()) return bad(std::string("\"cmd\" must be a string, got ") + cmd_it->type_name());
  const std::string& cmd = cmd_it->get_ref<const std::string&>();

  Request r;
  if (cmd == "ping") {
    r.cmd = Command::Ping;
  } else if (cmd == "view" || cmd == "snapshot") {
    r.cmd = Command::View;
  } else if (cmd == "status") {
    r.cmd = Command::Status;
  } else if (cmd == "events") {
    r.cmd = Command::Events;
  } else {
    // The name came from the client: quoted and escaped like any string we did not choose.
    return bad("unknown cmd " + safe_dump(nlohmann::json(cmd)) + " (expected ping, view, snapshot, status or events)");
  }

  if (auto it = j.find("backlog"); it != j.end()) {
    // is_number_unsigned: non-negative integers only (no -1, 2.5, "10" or true).
    if (!it->is_number_unsigned())
      return bad(std::string("\"backlog\" must be a non-negative integer, got ") +
                 (it->is_number() ? it->dump() : it->type_name()));
    r.backlog = it->get<uint64_t>();
  }
  if (auto it = j.find("follow"); it != j.end()) {
    if (!it->is_boolean()) return bad(std::string("\"follow\" must be true or false, got ") + it->type_name());
    r.follow = it->get<bool>();
  }
  return r;
}

std::string error_reply(std::string_view message) {
  nlohmann::json j;
  j["ok"] = false;
  j["error"] = std::string(message);
  return safe_dump(j) + "\n";  // a parse error quotes the client's bytes
}

}  // namespace fp
