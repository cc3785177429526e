// faultprobed's local API: a UNIX stream socket speaking the line protocol of
// client.h. One thread multiplexes every client with epoll; requests are served
// inline on that thread, events are fanned out to followers from a ring.
//
// Bounded everywhere: a request line (max_request), the number of clients
// (max_clients), each client's unsent output (max_outbuf; a follower that
// does not read is disconnected rather than buffered without end), all
// clients' unsent output together (max_total_outbuf), the time a client may
// sit without a request (idle_timeout), and the event backlog, in events and
// in bytes. Every drop is counted in stats(). publish_event() never waits
// for a client.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "server/client.h"
#include "server/protocol.h"
#include "util/result.h"

namespace fp {

struct ServerOptions {
  std::string path = kDefaultSocketPath;
  std::string group;                        // clients must be in it (or root); "" = root only
  size_t max_request = kMaxRequestBytes;    // one request line
  size_t max_clients = 64;
  size_t max_outbuf = size_t(1) << 20;      // unsent bytes per follower before it is dropped
  size_t backlog_events = 1000;             // recent events kept for `events --backlog N`
  // The events kept for followers and the backlog, in bytes (their lines
  // carry names and paths of any length); the oldest go first.
  size_t max_backlog_bytes = size_t(8) << 20;
  // Unsent bytes of every client together: a reply (a view is MBs at 10,000
  // processes) to a client that does not read is held once per client, so
  // past this a new reply is refused ("busy") and a follower dropped.
  size_t max_total_outbuf = size_t(64) << 20;
  // A client that is not following and has not sent a whole request, nor
  // read what it was sent, for this long is dropped (it holds a slot of
  // max_clients). `faultprobe top` asks every second.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  // A client whose pending output has not moved for this long is dropped
  // (a reader that stopped reading a large reply holds memory and a slot).
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
};

// What the server asks the daemon for. Called on the server's thread, so an
// implementation must be safe against the daemon's own threads (a mutex
// around the latest view, or an atomically swapped shared_ptr, is enough).
// Exceptions are caught and become an error reply.
class ServerProvider {
 public:
  virtual ~ServerProvider() = default;
  // The current view, serialized on ONE line (nlohmann dump() without indent),
  // e.g. view_to_json(view).dump(). Sent as is, so it is not parsed again.
  virtual std::string view_json() = 0;
  virtual nlohmann::json status() = 0;
};

class SocketServer {
 public:
  // Creates the socket's directory (0755) if missing, replaces a stale socket
  // (only when nothing answers on it; a live one is an error, as is a path that
  // is not a socket), binds, sets mode 0660 and group `group`, and starts the
  // thread.
  static Result<std::unique_ptr<SocketServer>> start(const ServerOptions& opts, ServerProvider& provider);
  ~SocketServer();
  SocketServer(const SocketServer&) = delete;
  SocketServer& operator=(const SocketServer&) = delete;

  // One event-stream record (fault / resolved / action / recovery), serialized
  // on one line; a trailing newline is optional. Thread-safe; appended to the
  // backlog and sent to every follower. Never blocks on a client.
  void publish_event(std::string_view json_line);

  // Closes every client and removes the socket file (if it is still ours).
  // Idempotent; the destructor calls it.
  void stop();

  struct Stats {
    uint64_t accepted = 0;          // connections that passed the checks
    uint64_t refused = 0;           // peer check failed, or over max_clients
    uint64_t malformed = 0;         // requests answered with an error (connection closed)
    uint64_t truncated = 0;         // client closed in the middle of a request line
    uint64_t dropped_slow = 0;      // followers/readers dropped for not reading
    uint64_t dropped_behind = 0;    // followers dropped because the server fell a whole ring behind
    uint64_t dropped_idle = 0;      // clients dropped after idle_timeout without a request
    uint64_t dropped_memory = 0;    // replies refused / followers dropped over max_total_outbuf
    uint64_t backlog_dropped = 0;   // events pushed out of the backlog early by max_backlog_bytes
    uint64_t backlog_bytes = 0;     // what the backlog holds now
    uint64_t outbuf_bytes = 0;      // unsent bytes of every client now
    uint64_t requests = 0;          // well-formed requests served
    uint64_t events_published = 0;
    uint64_t clients_now = 0;
    uint64_t followers_now = 0;
  };
  Stats stats() const;

  // Decides whether a peer (from SO_PEERCRED) may talk to the daemon: nullopt
  // to allow, else the reason, sent as "permission denied: REASON". The
  // default is group_peer_check(opts.group). Tests inject their own.
  using PeerCheck = std::function<std::optional<std::string>(uid_t, gid_t, pid_t)>;
  void set_peer_check(PeerCheck check);

  const std::string& path() const;
  const ServerOptions& options() const;

 private:
  struct Impl;  // server.cpp
  explicit SocketServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// root always; otherwise the peer's primary gid or its user's groups
// (getgrouplist) must include `group`. An empty group admits only root. An
// unknown group is an error.
Result<SocketServer::PeerCheck> group_peer_check(const std::string& group);

}  // namespace fp
