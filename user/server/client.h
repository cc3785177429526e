// Client side of the daemon's UNIX socket API (the CLI's `top`, `status`,
// `events`). Protocol: one JSON object per line each way.
//   {"cmd": "ping"}                          -> {"ok": true, "version": "..."}
//   {"cmd": "view"} (alias "snapshot")       -> {"ok": true, "view": view_to_json(DaemonView)}
//   {"cmd": "status"}                        -> {"ok": true, "status": {...}}
//   {"cmd": "events", "backlog": N, "follow": true|false}
//        -> {"ok": true}, then the last N event lines (fault/resolved/action/recovery records as in
//           the event stream), then, with follow, every new one until the client goes away.
// Errors: {"ok": false, "error": "what was wrong"}; the server closes after a malformed request.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "util/result.h"

namespace fp {

inline constexpr const char* kDefaultSocketPath = "/run/faultprobe/faultprobe.sock";

class Client {
 public:
  static Result<Client> connect(const std::string& path, std::chrono::milliseconds timeout);
  Client(Client&& o) noexcept;
  Client& operator=(Client&& o) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  // Sends one request and reads one reply line. An {"ok": false} reply is an Error.
  Result<nlohmann::json> request(const nlohmann::json& req, std::chrono::milliseconds timeout);
  // The next line after an "events" request; nullopt on timeout; Error when the daemon closed.
  Result<std::optional<nlohmann::json>> next_line(std::chrono::milliseconds timeout);

 private:
  explicit Client(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::string buf_;
};

}  // namespace fp
