#include "server/server.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "server/listen.h"
#include "util/text.h"

#ifndef FAULTPROBE_VERSION
#define FAULTPROBE_VERSION "unknown"
#endif

namespace fp {
namespace {

using Clock = std::chrono::steady_clock;
using Line = std::shared_ptr<const std::string>;  // shared by the ring and every follower's queue

// Followers read from the ring by sequence number. It holds at least this many
// events whatever backlog_events says, so a burst does not drop followers the
// server thread merely has not caught up with yet.
constexpr size_t kMinRing = 4096;

struct Conn {
  int fd = -1;
  uid_t uid = 0;
  pid_t pid = 0;
  std::string in;
  std::deque<Line> out;
  size_t out_off = 0;     // bytes of out.front() already sent
  size_t out_bytes = 0;   // unsent bytes in out
  size_t out_cap = 0;     // followers: out_bytes above this drops the client
  Clock::time_point last_progress;
  // Connect, a whole request, or output read: a client with nothing of that
  // for idle_timeout (and not following) is dropped.
  Clock::time_point last_activity;
  bool follower = false;
  uint64_t next_seq = 0;  // followers: the next event to send
  bool read_eof = false;
  bool close_after_flush = false;
  bool dead = false;
  uint32_t interest = 0;  // current epoll mask
};

void send_and_close(int fd, const std::string& line) {
  // A few bytes into an empty socket buffer: this does not block.
  (void)!::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::close(fd);
}

}  // namespace

struct SocketServer::Impl {
  ServerOptions opts;
  ServerProvider& provider;
  ListenSocket listen;
  int epfd = -1;
  int wakefd = -1;
  int spare_fd = -1;  // closed to accept-and-refuse when out of file descriptors
  std::thread thread;
  std::atomic<bool> stopping{false};
  bool stopped = false;

  // Shared with publish_event().
  mutable std::mutex mu;
  std::deque<std::pair<uint64_t, Line>> ring;  // (seq, line), oldest first
  uint64_t next_seq = 0;
  size_t ring_cap = kMinRing;
  size_t ring_bytes = 0;
  std::atomic<bool> wake_pending{false};
  PeerCheck peer_check;  // guarded by mu

  // Server thread only.
  std::unordered_map<int, std::unique_ptr<Conn>> conns;
  uint64_t delivered_up_to = 0;  // next_seq at the last delivery pass
  size_t followers = 0;
  size_t total_out = 0;  // unsent bytes of every client

  struct {
    std::atomic<uint64_t> accepted{0}, refused{0}, malformed{0}, truncated{0}, dropped_slow{0}, dropped_behind{0},
        dropped_idle{0}, dropped_memory{0}, backlog_dropped{0}, backlog_bytes{0}, outbuf_bytes{0}, requests{0},
        events_published{0}, clients_now{0}, followers_now{0};
  } st;

  Impl(const ServerOptions& o, ServerProvider& p) : opts(o), provider(p) {}

  void run();
  bool run_once(std::vector<epoll_event>& evs);  // false: stop the thread
  void accept_all();
  void handle(Conn& c, uint32_t events);
  void read_input(Conn& c);
  void process_requests(Conn& c);
  void serve(Conn& c, const Request& r);
  void queue(Conn& c, Line line);
  void queue(Conn& c, std::string line) { queue(c, std::make_shared<const std::string>(std::move(line))); }
  bool flush(Conn& c);
  // Whether `bytes` more unsent output would pass max_total_outbuf.
  bool over_total(size_t bytes) const { return total_out + bytes > opts.max_total_outbuf; }
  void refuse_busy(Conn& c);
  void deliver_events();
  void update_interest(Conn& c);
  void kill(Conn& c) { c.dead = true; }
  void reap();
  void check_stalls();
  void check_idle();
  void close_all();
};

Result<std::unique_ptr<SocketServer>> SocketServer::start(const ServerOptions& opts, ServerProvider& provider) {
  auto check = group_peer_check(opts.group);
  if (!check) return check.error();
  auto impl = std::make_unique<Impl>(opts, provider);
  impl->peer_check = std::move(*check);
  impl->ring_cap = std::max(opts.backlog_events, kMinRing);

  auto ls = open_listen_socket(opts.path, opts.group);
  if (!ls) return ls.error();
  impl->listen = *ls;
  auto fail = [&](int err, const char* what) -> Error {
    Error e = Error::from_errno(err, what);
    impl->close_all();
    return e;
  };
  impl->wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wakefd < 0) return fail(errno, "eventfd");
  impl->epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (impl->epfd < 0) return fail(errno, "epoll_create1");
  impl->spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  for (int fd : {impl->listen.fd, impl->wakefd}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(impl->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return fail(errno, "epoll_ctl");
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  spdlog::info("socket API listening on {} (group {})", opts.path, opts.group.empty() ? "root only" : opts.group);
  return std::unique_ptr<SocketServer>(new SocketServer(std::move(impl)));
}

SocketServer::SocketServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SocketServer::~SocketServer() {
  stop();
  if (impl_->wakefd >= 0) ::close(impl_->wakefd);
}

void SocketServer::stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  uint64_t one = 1;
  (void)!::write(s.wakefd, &one, sizeof one);
  if (s.thread.joinable()) s.thread.join();
  s.close_all();
}

const std::string& SocketServer::path() const { return impl_->opts.path; }
const ServerOptions& SocketServer::options() const { return impl_->opts; }

void SocketServer::set_peer_check(PeerCheck check) {
  std::lock_guard lk(impl_->mu);
  impl_->peer_check = std::move(check);
}

SocketServer::Stats SocketServer::stats() const {
  const auto& st = impl_->st;
  Stats s;
  s.accepted = st.accepted;
  s.refused = st.refused;
  s.malformed = st.malformed;
  s.truncated = st.truncated;
  s.dropped_slow = st.dropped_slow;
  s.dropped_behind = st.dropped_behind;
  s.dropped_idle = st.dropped_idle;
  s.dropped_memory = st.dropped_memory;
  s.backlog_dropped = st.backlog_dropped;
  s.backlog_bytes = st.backlog_bytes;
  s.outbuf_bytes = st.outbuf_bytes;
  s.requests = st.requests;
  s.events_published = st.events_published;
  s.clients_now = st.clients_now;
  s.followers_now = st.followers_now;
  return s;
}

void SocketServer::publish_event(std::string_view json_line) {
  Impl& s = *impl_;
  while (!json_line.empty() && (json_line.back() == '\n' || json_line.back() == '\r')) json_line.remove_suffix(1);
  if (json_line.find('\n') != std::string_view::npos) {
    // It would split into two protocol lines; the producer has a bug.
    spdlog::warn("socket API: dropping an event that spans several lines");
    return;
  }
  std::string text;
  text.reserve(json_line.size() + 1);
  text.append(json_line);
  text.push_back('\n');
  auto line = std::make_shared<const std::string>(std::move(text));
  {
    std::lock_guard lk(s.mu);
    s.ring_bytes += line->size();
    s.ring.emplace_back(s.next_seq++, std::move(line));
    while (s.ring.size() > s.ring_cap) {
      s.ring_bytes -= s.ring.front().second->size();
      s.ring.pop_front();
    }
    // The newest stays whatever its size: publish never fails.
    while (s.ring_bytes > s.opts.max_backlog_bytes && s.ring.size() > 1) {
      s.ring_bytes -= s.ring.front().second->size();
      s.ring.pop_front();
      s.st.backlog_dropped++;
    }
    s.st.backlog_bytes = s.ring_bytes;
  }
  s.st.events_published++;
  // One wake-up per delivery pass is enough: the thread clears the flag before
  // it looks at the ring.
  if (!s.wake_pending.exchange(true)) {
    uint64_t one = 1;
    (void)!::write(s.wakefd, &one, sizeof one);
  }
}

void SocketServer::Impl::run() {
  std::vector<epoll_event> evs(64);
  while (!stopping) {
    // Nothing may leave this thread: an exception here (bad_alloc while a
    // client's reply is built, a bug) is logged and the loop goes on.
    try {
      if (!run_once(evs)) break;
    } catch (const std::exception& e) {
      spdlog::error("socket API: {} (continuing)", e.what());
    }
  }
}

bool SocketServer::Impl::run_once(std::vector<epoll_event>& evs) {
  // Idle clients are looked for this often (at most once a second).
  const int idle_tick_ms = int(std::clamp<int64_t>(opts.idle_timeout.count() / 4, 10, 1000));
  bool pending_output = false, requesters = false;
  for (auto& [fd, c] : conns) {
    pending_output |= c->out_bytes > 0;
    requesters |= !c->follower;
  }
  // Stall and idle checks need a clock only then.
  int timeout = pending_output ? 1000 : -1;
  if (requesters) timeout = timeout < 0 ? idle_tick_ms : std::min(timeout, idle_tick_ms);
  int n = ::epoll_wait(epfd, evs.data(), int(evs.size()), timeout);
  if (n < 0) {
    if (errno == EINTR) return true;
    spdlog::error("socket API: epoll_wait: {}", std::strerror(errno));
    return false;
  }
  for (int i = 0; i < n; i++) {
    int fd = evs[size_t(i)].data.fd;
    if (fd == listen.fd) {
      accept_all();
    } else if (fd == wakefd) {
      // Consume the wake-up before clearing the flag: a publish after the
      // clear writes a new one, a publish before it is in the ring already
      // when deliver_events() looks.
      uint64_t v;
      (void)!::read(wakefd, &v, sizeof v);
      wake_pending = false;
    } else if (auto it = conns.find(fd); it != conns.end() && !it->second->dead) {
      // Whatever one client's input provokes (bad_alloc, a bug) must not
      // end the daemon: that client goes, the others stay.
      try {
        handle(*it->second, evs[size_t(i)].events);
      } catch (const std::exception& e) {
        spdlog::error("socket API: dropping pid {} after an error: {}", it->second->pid, e.what());
        kill(*it->second);
      }
    }
  }
  deliver_events();
  if (pending_output) check_stalls();
  if (requesters) check_idle();
  // Closing only here keeps a closed fd number from being reused by an
  // accept() while events for the old client are still in this batch.
  reap();
  return true;
}

void SocketServer::Impl::accept_all() {
  for (;;) {
    int fd = ::accept4(listen.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
        // Out of descriptors: accept with the spare and hang up, or the listen
        // socket stays readable and the loop spins.
        ::close(spare_fd);
        int victim = ::accept4(listen.fd, nullptr, nullptr, SOCK_CLOEXEC);
        st.refused++;
        if (victim >= 0) send_and_close(victim, error_reply("faultprobed is out of file descriptors"));
        spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        spdlog::warn("socket API: out of file descriptors, refusing a client");
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) spdlog::warn("socket API: accept: {}", std::strerror(errno));
      return;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      spdlog::warn("socket API: SO_PEERCRED: {}", std::strerror(errno));
      ::close(fd);
      st.refused++;
      continue;
    }
    if (conns.size() >= opts.max_clients) {
      st.refused++;  // counted before the reply, so whoever sees the refusal sees the count
      send_and_close(fd, error_reply("too many clients (limit " + std::to_string(opts.max_clients) + ")"));
      spdlog::warn("socket API: refusing pid {}: {} clients connected", cred.pid, conns.size());
      continue;
    }
    std::optional<std::string> why;
    {
      std::lock_guard lk(mu);
      if (peer_check) why = peer_check(cred.uid, cred.gid, cred.pid);
    }
    if (why) {
      st.refused++;
      send_and_close(fd, error_reply("permission denied: " + *why));
      spdlog::warn("socket API: refused pid {} uid {}: {}", cred.pid, cred.uid, *why);
      continue;
    }
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->uid = cred.uid;
    c->pid = cred.pid;
    c->last_progress = c->last_activity = Clock::now();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::warn("socket API: epoll_ctl: {}", std::strerror(errno));
      ::close(fd);
      continue;
    }
    c->interest = ev.events;
    conns.emplace(fd, std::move(c));
    st.accepted++;
    st.clients_now = conns.size();
    spdlog::debug("socket API: client pid {} uid {} connected", cred.pid, cred.uid);
  }
}

void SocketServer::Impl::handle(Conn& c, uint32_t events) {
  if (events & EPOLLERR) {
    kill(c);
    return;
  }
  if (events & EPOLLHUP) {
    // Both directions are gone: nothing more can be sent. Still tell a
    // request cut short from a client that merely went away.
    read_input(c);
    if (!c.follower && !c.in.empty() && c.in.find('\n') == std::string::npos) st.truncated++;
    kill(c);
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP)) read_input(c);
  if (!c.dead && c.out_bytes > 0 && !flush(c)) return;
  if (!c.dead) process_requests(c);
  if (!c.dead) update_interest(c);
}

void SocketServer::Impl::read_input(Conn& c) {
  char buf[16384];
  for (;;) {
    // Enough buffered to find the end of a line or to know it is too long.
    if (!c.follower && c.in.size() > opts.max_request) return;
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n > 0) {
      if (!c.follower) c.in.append(buf, size_t(n));  // a follower's input means nothing: dropped
      if (!c.follower && c.in.find('\n', c.in.size() - size_t(n)) != std::string::npos) return;
      continue;
    }
    if (n == 0) {
      c.read_eof = true;
      return;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) kill(c);
    return;
  }
}

void SocketServer::Impl::process_requests(Conn& c) {
  // One request at a time: the next line is only looked at once the reply to
  // the previous one has left, so a client that sends without reading is
  // held back by its own socket buffer instead of by our memory.
  while (!c.dead && !c.follower && !c.close_after_flush && c.out_bytes == 0) {
    size_t nl = c.in.find('\n');
    if (nl == std::string::npos) {
      if (c.in.size() > opts.max_request) {
        st.malformed++;
        queue(c, error_reply("request too long: no newline within " + std::to_string(opts.max_request) + " bytes"));
        c.close_after_flush = true;
      } else if (c.read_eof) {
        if (!c.in.empty()) {
          st.truncated++;
          spdlog::debug("socket API: pid {} closed in the middle of a request", c.pid);
        }
        kill(c);
      }
      break;
    }
    std::string_view line(c.in.data(), nl);
    auto req = parse_request(line, opts.max_request);
    if (!req) {
      st.malformed++;
      spdlog::debug("socket API: malformed request from pid {}: {}", c.pid, req.error().message);
      queue(c, error_reply(req.error().message));
      c.close_after_flush = true;
      break;
    }
    c.in.erase(0, nl + 1);
    st.requests++;
    c.last_activity = Clock::now();
    serve(c, *req);
    // Usually the whole reply fits the socket buffer at once: then go on with
    // any request already buffered (no further EPOLLIN may come for it).
    if (!flush(c)) return;
  }
  if (!c.dead && c.out_bytes > 0) flush(c);
  if (!c.dead && c.close_after_flush && c.out_bytes == 0) kill(c);
  // A follower whose peer half-closed keeps receiving until the peer is gone.
}

void SocketServer::Impl::serve(Conn& c, const Request& r) {
  auto dump = [](const nlohmann::json& j) { return safe_dump(j) + "\n"; };  // names and paths are bytes
  try {
    switch (r.cmd) {
      case Command::Ping:
        queue(c, dump({{"ok", true}, {"version", FAULTPROBE_VERSION}}));
        return;
      case Command::View: {
        std::string view = provider.view_json();
        if (view.empty() || view.find('\n') != std::string::npos) {
          queue(c, error_reply("internal error: the daemon's view is not one JSON line"));
          return;
        }
        if (over_total(view.size() + 24)) return refuse_busy(c);
        std::string reply;
        reply.reserve(view.size() + 24);
        reply += R"({"ok":true,"view":)";
        reply += view;
        reply += "}\n";
        queue(c, std::move(reply));
        return;
      }
      case Command::Status: {
        std::string reply = dump({{"ok", true}, {"status", provider.status()}});
        if (over_total(reply.size())) return refuse_busy(c);
        queue(c, std::move(reply));
        return;
      }
      case Command::Events: {
        std::vector<Line> backlog;
        {
          std::lock_guard lk(mu);
          size_t n = size_t(std::min<uint64_t>({r.backlog, opts.backlog_events, ring.size()}));
          for (size_t i = ring.size() - n; i < ring.size(); i++) backlog.push_back(ring[i].second);
          c.next_seq = next_seq;
        }
        size_t bytes = 0;
        for (const auto& l : backlog) bytes += l->size();
        if (over_total(bytes)) return refuse_busy(c);
        queue(c, std::string("{\"ok\":true}\n"));
        for (auto& l : backlog) queue(c, std::move(l));
        if (r.follow) {
          c.follower = true;
          c.in.clear();
          // The backlog is the reply; only what comes after it counts against
          // the follower's buffer.
          c.out_cap = opts.max_outbuf + c.out_bytes;
          followers++;
          st.followers_now = followers;
        } else {
          c.close_after_flush = true;
        }
        return;
      }
    }
  } catch (const std::exception& e) {
    spdlog::warn("socket API: {} failed: {}", command_name(r.cmd), e.what());
    queue(c, error_reply(std::string("internal error: ") + e.what()));
  }
}

void SocketServer::Impl::queue(Conn& c, Line line) {
  if (c.out_bytes == 0) c.last_progress = Clock::now();  // the stall clock starts with the output
  c.out_bytes += line->size();
  total_out += line->size();
  st.outbuf_bytes = total_out;
  c.out.push_back(std::move(line));
}

// Over max_total_outbuf: a short error instead of the reply, and hang up.
void SocketServer::Impl::refuse_busy(Conn& c) {
  st.dropped_memory++;
  spdlog::warn("socket API: refusing a reply to pid {}: {} bytes are unsent to clients already (limit {})", c.pid,
               total_out, opts.max_total_outbuf);
  queue(c, error_reply("faultprobed is busy: too much output is waiting for clients to read it; try again"));
  c.close_after_flush = true;
}

// Writes what the socket takes. False when the client is gone.
bool SocketServer::Impl::flush(Conn& c) {
  while (c.out_bytes > 0) {
    iovec iov[16];
    int cnt = 0;
    size_t off = c.out_off;
    for (auto it = c.out.begin(); it != c.out.end() && cnt < 16; ++it, off = 0)
      iov[cnt++] = iovec{const_cast<char*>((*it)->data() + off), (*it)->size() - off};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = size_t(cnt);
    ssize_t n = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      kill(c);
      return false;
    }
    c.last_progress = c.last_activity = Clock::now();
    size_t left = size_t(n);
    c.out_bytes -= left;
    total_out -= left;
    st.outbuf_bytes = total_out;
    while (left > 0) {
      size_t avail = c.out.front()->size() - c.out_off;
      if (left >= avail) {
        left -= avail;
        c.out.pop_front();
        c.out_off = 0;
      } else {
        c.out_off += left;
        left = 0;
      }
    }
  }
  return true;
}

void SocketServer::Impl::deliver_events() {
  if (followers == 0) return;
  std::vector<std::pair<uint64_t, Line>> fresh;
  uint64_t oldest = 0;
  {
    std::lock_guard lk(mu);
    if (next_seq == delivered_up_to) return;
    uint64_t from = next_seq;
    for (auto& [fd, c] : conns)
      if (c->follower && !c->dead) from = std::min(from, c->next_seq);
    oldest = ring.empty() ? next_seq : ring.front().first;
    for (auto& e : ring)
      if (e.first >= from) fresh.push_back(e);
    delivered_up_to = next_seq;
  }
  for (auto& [fd, cp] : conns) {
    Conn& c = *cp;
    if (!c.follower || c.dead) continue;
    if (c.next_seq < oldest) {
      // The ring moved past events this follower never got: better a clean
      // hang-up than a silent gap.
      st.dropped_behind++;
      spdlog::warn("socket API: dropping follower pid {}: it fell {} events behind", c.pid, oldest - c.next_seq);
      kill(c);
      continue;
    }
    for (auto& [seq, line] : fresh) {
      if (seq < c.next_seq) continue;
      // Over the cap: first see whether the socket takes some of it now.
      if (c.out_bytes + line->size() > c.out_cap && flush(c) && c.out_bytes + line->size() > c.out_cap) {
        st.dropped_slow++;
        spdlog::warn("socket API: dropping follower pid {}: it does not read ({} bytes unsent)", c.pid, c.out_bytes);
        kill(c);
        break;
      }
      if (!c.dead && over_total(line->size()) && flush(c) && over_total(line->size())) {
        st.dropped_memory++;
        spdlog::warn("socket API: dropping follower pid {}: {} bytes are unsent to clients (limit {})", c.pid,
                     total_out, opts.max_total_outbuf);
        kill(c);
        break;
      }
      if (c.dead) break;
      queue(c, line);
      c.next_seq = seq + 1;
    }
    if (!c.dead && flush(c)) update_interest(c);
  }
}

void SocketServer::Impl::update_interest(Conn& c) {
  uint32_t want = 0;
  if (c.follower) {
    if (!c.read_eof) want |= EPOLLIN | EPOLLRDHUP;
  } else if (c.out_bytes == 0 && !c.close_after_flush && !c.read_eof) {
    want |= EPOLLIN | EPOLLRDHUP;
  }
  if (c.out_bytes > 0) want |= EPOLLOUT;
  if (want == c.interest) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.fd = c.fd;
  if (::epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev) != 0) {
    kill(c);
    return;
  }
  c.interest = want;
}

void SocketServer::Impl::check_stalls() {
  auto now = Clock::now();
  for (auto& [fd, c] : conns) {
    if (c->dead || c->out_bytes == 0 || now - c->last_progress < opts.write_timeout) continue;
    st.dropped_slow++;
    spdlog::warn("socket API: dropping pid {}: {} bytes unread for {} ms", c->pid, c->out_bytes,
                 opts.write_timeout.count());
    kill(*c);
  }
}

void SocketServer::Impl::check_idle() {
  auto now = Clock::now();
  for (auto& [fd, c] : conns) {
    if (c->dead || c->follower || c->out_bytes > 0 || now - c->last_activity < opts.idle_timeout) continue;
    st.dropped_idle++;
    spdlog::info("socket API: dropping pid {}: no request for {} ms", c->pid, opts.idle_timeout.count());
    kill(*c);
  }
}

void SocketServer::Impl::reap() {
  for (auto it = conns.begin(); it != conns.end();) {
    if (!it->second->dead) {
      ++it;
      continue;
    }
    total_out -= it->second->out_bytes;
    st.outbuf_bytes = total_out;
    if (it->second->follower) followers--;
    ::close(it->first);  // also removes it from the epoll set
    it = conns.erase(it);
  }
  st.clients_now = conns.size();
  st.followers_now = followers;
}

void SocketServer::Impl::close_all() {
  for (auto& [fd, c] : conns) ::close(fd);
  conns.clear();
  followers = 0;
  total_out = 0;
  st.outbuf_bytes = 0;
  st.clients_now = 0;
  st.followers_now = 0;
  if (listen.fd >= 0) {
    ::close(listen.fd);
    remove_listen_socket(opts.path, listen);
    listen.fd = -1;
  }
  if (epfd >= 0) ::close(epfd);
  epfd = -1;
  if (spare_fd >= 0) ::close(spare_fd);
  spare_fd = -1;
}

}  // namespace fp
