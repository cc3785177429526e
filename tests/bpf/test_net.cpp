// Network: events the kernel handles in softirq or a timer (a RST arriving,
// the retransmit timer) are charged to the process that owns the socket,
// not to whoever was interrupted (bpf/net.bpf.c), and the probe's endpoint
// map names the peer.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <atomic>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "probe/loader/net_drop_reasons.h"
#include "probe/loader/net_endpoints.h"
#include "../support/loopback_port.h"
#include "../support/veth_netns.h"
#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

namespace {

using fp::test_support::NetNs;
using fp::test_support::unused_loopback_port;

int connect_to(const char* addr, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, addr, &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

std::vector<NetEndpoint> endpoints_of(const ProcKey& k) {
  NetEndpointReader reader(probe().net_endpoints_fd());
  std::vector<NetEndpoint> out;
  EXPECT_TRUE(reader.read(k, out));
  return out;
}

int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// skb:kfree_skb passes rx_sk (v6.11+) and the probe attached it.
bool kfree_skb_has_rx_sk() {
  for (const auto& h : probe().hooks())
    if (h.name == "kfree_skb" && h.mode == AttachMode::Unavailable) return false;
  std::ifstream f("/sys/kernel/tracing/events/skb/kfree_skb/format");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return text.find("rx_sk") != std::string::npos;
}

}  // namespace

TEST(Net, ConnectToClosedPortIsAFailedConnectWithAResetReceived) {
  probe();
  reset_events();
  const uint16_t port = unused_loopback_port();
  ASSERT_NE(port, 0);
  const uint32_t self = uint32_t(getpid());
  std::optional<fp_proc> before = live_slot(self);
  constexpr int kTries = 20;
  Child c([port] {
    int refused = 0;
    for (int i = 0; i < kTries; ++i)
      if (connect_to("127.0.0.1", port) < 0 && errno == ECONNREFUSED) ++refused;
    return refused == kTries ? 0 : 1;
  });
  const uint32_t pid = uint32_t(c.pid());
  c.release();
  const int status = c.wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the connects were not all refused";
  auto ex = wait_exit(pid, 3s);
  ASSERT_TRUE(ex);
  RecordProperty("connect_failures", std::to_string(ex->final.net_connect_failures));
  EXPECT_EQ(ex->final.net_connects, uint64_t(kTries));
  EXPECT_EQ(ex->final.net_connect_failures, uint64_t(kTries));
  EXPECT_EQ(ex->final.net_resets_received, uint64_t(kTries));
  EXPECT_EQ(ex->final.net_retransmits, 0u);

  // The peer, from the probe's endpoint map.
  auto eps = endpoints_of(key_of(ex->final));
  const NetEndpoint* ep = nullptr;
  for (const auto& e : eps)
    if (e.port == port) ep = &e;
  ASSERT_NE(ep, nullptr) << eps.size() << " endpoints for the child";
  EXPECT_EQ(endpoint_text(*ep), "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(ep->connect_failures, uint64_t(kTries));
  EXPECT_EQ(ep->resets_received, uint64_t(kTries));
  EXPECT_EQ(ep->last_err, ECONNREFUSED);

  // Nothing of it went to the test process, which only waited.
  std::optional<fp_proc> after = live_slot(self);
  ASSERT_TRUE(before && after);
  EXPECT_EQ(after->net_connect_failures, before->net_connect_failures);
  EXPECT_EQ(after->net_resets_received, before->net_resets_received);
}

// The peer going away under a TCP sender (tests/support/veth_netns.h): the
// sender's retransmit timer (softirq) retransmits, charged to the sender.
TEST(Net, PeerGoingDownMakesTheSenderRetransmit) {
  probe();
  ASSERT_EQ(sh("ip -V"), 0) << "this test needs iproute2's ip";
  NetNs ns;
  ASSERT_TRUE(ns.ok()) << "cannot set up a veth pair into a network namespace: `" << ns.failed() << "` failed";
  const uint16_t port = 47000 + uint16_t(getpid() % 1000);
  // The reader: accepts one connection and reads it to the end.
  const std::string reader = ns.in_ns(
      "python3 -c \"import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
      "s.bind(('" + ns.peer_ip() + "', " + std::to_string(port) + ")); s.listen(1); c, _ = s.accept(); "
      "exec('while c.recv(65536): pass')\"");
  Child server([reader] {
    execl("/bin/sh", "sh", "-c", ("exec " + reader).c_str(), static_cast<char*>(nullptr));
    return 127;
  });
  server.release();
  const std::string peer = ns.peer_ip();
  // Set by the sender once connected (shared with the forked child).
  void* shared = mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  auto* connected = new (shared) std::atomic<int>(0);
  Child sender([peer, port, connected] {
    int fd = -1;
    for (int i = 0; i < 500 && fd < 0; ++i) {  // until the reader listens (5 s)
      fd = connect_to(peer.c_str(), port);
      if (fd < 0) usleep(10'000);
    }
    if (fd < 0) return 2;
    connected->store(1);
    static char buf[16384];
    std::memset(buf, 'x', sizeof buf);
    for (;;)
      if (send(fd, buf, sizeof buf, 0) < 0) return 3;
  });
  const uint32_t pid = uint32_t(sender.pid());
  sender.release();
  // Connected, then sending for a moment on a clean veth.
  const bool up = wait_until([&] { return connected->load() == 1; }, 8s);
  munmap(shared, sizeof(std::atomic<int>));  // the child has its own mapping
  connected = nullptr;
  ASSERT_TRUE(up) << "the sender never connected";
  auto sending = live_slot(pid);
  ASSERT_TRUE(sending);
  EXPECT_GE(sending->net_connects, 1u);
  ASSERT_TRUE(ns.peer_gone());
  // The retransmit timer: 200 ms at least, doubling.
  const bool retransmitted = wait_until(
      [&] {
        auto s = live_slot(pid);
        return s && s->net_retransmits >= 3;
      },
      15s, 20ms);
  auto after = live_slot(pid);
  ASSERT_TRUE(after);
  RecordProperty("retransmits", std::to_string(after->net_retransmits));
  RecordProperty("segs_out", std::to_string(after->net_segs_out));
  EXPECT_TRUE(retransmitted) << "retransmits: " << after->net_retransmits;
  EXPECT_GT(after->net_segs_out, sending->net_segs_out) << "retransmits are segments sent too";
  EXPECT_EQ(after->net_connect_failures, sending->net_connect_failures) << "the connection did not fail";

  auto eps = endpoints_of(key_of(*after));
  const NetEndpoint* ep = nullptr;
  for (const auto& e : eps)
    if (e.port == port) ep = &e;
  ASSERT_NE(ep, nullptr);
  EXPECT_EQ(endpoint_text(*ep), peer + ":" + std::to_string(port));
  EXPECT_GE(ep->retransmits, 3u);
  EXPECT_GT(ep->segs_out, 0u);
  sender.kill(SIGKILL);
  sender.wait();
  server.kill(SIGKILL);
  server.wait();
}

// A client that aborts its connection (SO_LINGER 0, close()) sends a RST:
// charged to it although close() set CLOSE first; the server's accepted
// socket, born in softirq, has its owner from its first read, and the RST
// it receives (softirq) is charged to the server (here the test process).
TEST(Net, AbortiveCloseIsAResetSentByTheClientAndReceivedByTheServer) {
  probe();
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(lfd, 1), 0);
  ASSERT_EQ(getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const uint16_t port = ntohs(a.sin_port);
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  Child client([port, go] {
    int fd = connect_to("127.0.0.1", port);
    if (fd < 0 || send(fd, "x", 1, 0) != 1) return 2;
    char c;
    if (read(go[0], &c, 1) != 1) return 3;  // until the server has read
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
    return 0;
  });
  const uint32_t pid = uint32_t(client.pid());
  const uint32_t self = uint32_t(getpid());
  client.release();
  int cfd = accept(lfd, nullptr, nullptr);
  ASSERT_GE(cfd, 0);
  char c;
  ASSERT_EQ(recv(cfd, &c, 1, 0), 1);  // the server's first read: its owner
  std::optional<fp_proc> before = live_slot(self);
  ASSERT_TRUE(before);
  ASSERT_EQ(write(go[1], "g", 1), 1);
  const int status = client.wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto ex = wait_exit(pid, 3s);
  ASSERT_TRUE(ex);
  EXPECT_EQ(ex->final.net_resets_sent, 1u);
  EXPECT_EQ(ex->final.net_resets_received, 0u);
  EXPECT_EQ(ex->final.net_connect_failures, 0u);
  const bool received = wait_until(
      [&] {
        auto s = live_slot(self);
        return s && s->net_resets_received > before->net_resets_received;
      },
      3s);
  EXPECT_TRUE(received) << "the server's reset was not charged to the server";
  close(cfd);
  close(lfd);
  close(go[0]);
  close(go[1]);
}

namespace {

// Walks for socket owners (the daemon does it from its loop) until `done`.
template <class F>
bool resolve_until(F done, std::chrono::milliseconds deadline) {
  return wait_until(
      [&] {
        probe().resolve_net_owners();
        return done();
      },
      deadline);
}

bool resolver_walks() { return probe().net_resolve_status().walk; }

// A UDP receiver on loopback with a 4 KB receive buffer that never reads, in
// a child: started, released, and its bound port read back (port 0: it
// reported none).
struct UdpReceiver {
  int ready[2] = {-1, -1};
  std::unique_ptr<Child> child;
  uint32_t pid = 0;
  uint16_t port = 0;

  UdpReceiver() {
    if (pipe(ready) != 0) return;
    const int w = ready[1];
    child = std::make_unique<Child>([w] {
      int fd = socket(AF_INET, SOCK_DGRAM, 0);
      int small = 4096;
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof a;
      if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
          getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        return 2;
      uint16_t p = ntohs(a.sin_port);
      if (write(w, &p, sizeof p) != sizeof p) return 3;
      pause();
      return 0;
    });
    pid = uint32_t(child->pid());
    child->release();
    if (read(ready[0], &port, sizeof port) != ssize_t(sizeof port)) port = 0;
  }
  ~UdpReceiver() {
    for (int f : ready)
      if (f >= 0) close(f);
  }
  void kill() {
    child->kill(SIGKILL);
    child->wait();
  }
};

void flood_udp(uint16_t port, int n) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  static char payload[1000];
  for (int i = 0; i < n; ++i) sendto(s, payload, sizeof payload, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  close(s);
}

}  // namespace

// A UDP receiver that never reads: datagrams past its receive buffer are
// dropped in softirq (udp_fail_queue_rcv_skb), charged to the receiver. The
// probe never saw the receiver run on that socket: the overflows wait in
// net_pending until the resolver's walk finds the process that has the
// socket open (the daemon walks from its loop; here the test does). Where
// skb:kfree_skb has rx_sk (v6.11+) they are drops with reason SOCKET_RCVBUFF
// too (net_drops); before it the dropped skb has no socket and 6.1 counts
// them only as overflows. Without the walk (< 5.11) they are unowned.
TEST(Net, UdpReceiveBufferOverflowIsChargedToTheReceiver) {
  probe();
  UdpReceiver receiver;
  ASSERT_NE(receiver.port, 0) << "the receiver did not bind";
  const uint32_t pid = receiver.pid;
  const uint16_t port = receiver.port;
  const uint64_t unowned_before = probe().drops()[FP_DROP_NET_UNOWNED];
  const uint64_t charged_before = probe().net_resolve_status().charged;
  flood_udp(port, 200);
  if (resolver_walks()) {
    EXPECT_TRUE(resolve_until(
        [&] {
          auto p = live_slot(pid);
          return p && p->net_rcvq_overflows >= 100;
        },
        3s))
        << "overflows charged: " << (live_slot(pid) ? live_slot(pid)->net_rcvq_overflows : 0);
    EXPECT_GT(probe().net_resolve_status().charged, charged_before);
    std::printf("resolver walk: %.2f ms (max %.2f) over this host's processes\n",
                probe().net_resolve_status().last_ms, probe().net_resolve_status().max_ms);
    // Where skb:kfree_skb names the socket a received packet was for (rx_sk,
    // v6.11+), each is also a drop with its reason, charged to the receiver.
    if (kfree_skb_has_rx_sk()) {
      EXPECT_TRUE(resolve_until(
          [&] {
            auto p = live_slot(pid);
            return p && p->net_drops >= 100;
          },
          3s))
          << "drops charged: " << (live_slot(pid) ? live_slot(pid)->net_drops : 0);
      auto p = live_slot(pid);
      ASSERT_TRUE(p);
      NetDropReasonReader reader(probe().net_drop_reasons_fd(), kernel_drop_reason_names());
      std::vector<NetDropReason> reasons;
      ASSERT_TRUE(reader.read(key_of(*p), reasons));
      uint64_t rcvbuff = 0;
      for (const auto& r : reasons)
        if (r.name == "SOCKET_RCVBUFF") rcvbuff = r.count;
      EXPECT_GE(rcvbuff, 100u);
    }
    // Once known, the owner is charged directly: no walk runs while these wait.
    auto before = live_slot(pid);
    ASSERT_TRUE(before);
    flood_udp(port, 50);
    EXPECT_TRUE(wait_until(
        [&] {
          auto p = live_slot(pid);
          return p && p->net_rcvq_overflows >= before->net_rcvq_overflows + 50;
        },
        3s));
  } else {
    EXPECT_TRUE(resolve_until([&] { return probe().drops()[FP_DROP_NET_UNOWNED] >= unowned_before + 100; }, 3s));
  }
  receiver.kill();
}

// Events on a socket nobody has open by the time of the walk (its receiver
// died first) are charged to nobody: counted unowned, once, and the entry is
// gone; the walk charges no other process with them.
TEST(Net, EventsOnASocketClosedBeforeTheWalkAreCountedUnowned) {
  probe();
  probe().resolve_net_owners();  // whatever earlier tests left
  UdpReceiver receiver;
  ASSERT_NE(receiver.port, 0) << "the receiver did not bind";
  const uint32_t pid = receiver.pid;
  const uint16_t port = receiver.port;
  const uint64_t pending_before = probe().net_pending_events();
  flood_udp(port, 200);
  ASSERT_TRUE(wait_until([&] { return probe().net_pending_events() >= pending_before + 100; }, 3s));
  const uint64_t waited = probe().net_pending_events() - pending_before;
  receiver.kill();
  auto ex = wait_exit(pid, 3s);
  ASSERT_TRUE(ex);
  EXPECT_EQ(ex->final.net_rcvq_overflows, 0u);
  const uint64_t unowned_before = probe().drops()[FP_DROP_NET_UNOWNED];
  const uint64_t charged_before = probe().net_resolve_status().events;
  const uint64_t unresolved_before = probe().net_resolve_status().unresolved_sockets;
  // The entry is swept by the first walk that starts after it was made.
  EXPECT_TRUE(resolve_until([&] { return probe().net_resolve_status().unresolved_sockets > unresolved_before; }, 3s));
  const uint64_t unowned = probe().drops()[FP_DROP_NET_UNOWNED] - unowned_before;
  EXPECT_GE(unowned, 100u);
  EXPECT_LE(unowned, waited);  // overflows only; its drops (rx_sk) are not unowned events
  // Nobody was charged with its >= 100 overflows (what else the host had waiting may be).
  EXPECT_LT(probe().net_resolve_status().events - charged_before, 100u);
}

// An accepted TCP socket its server never read from: the probe never saw
// the server run on it. The client aborts (RST): the reset the server's
// socket receives (softirq) waits for its owner, and the walk finds the
// server, which still has the descriptor open (a reset closes the socket,
// not the file).
TEST(Net, ResetOnAnAcceptedSocketNeverReadIsChargedToTheServerByTheResolver) {
  probe();
  if (!resolver_walks()) GTEST_SKIP() << "no resolver walk on this kernel: " << probe().net_resolve_status().reason;
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  Child server([ready, go] {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return 2;
    uint16_t port = ntohs(a.sin_port);
    if (write(ready[1], &port, sizeof port) != sizeof port) return 3;
    int cfd = accept(lfd, nullptr, nullptr);
    if (cfd < 0) return 4;
    if (write(go[1], "a", 1) != 1) return 5;  // accepted; never reads
    pause();
    return 0;
  });
  const uint32_t pid = uint32_t(server.pid());
  server.release();
  uint16_t port = 0;
  ASSERT_EQ(read(ready[0], &port, sizeof port), ssize_t(sizeof port));
  int fd = connect_to("127.0.0.1", port);
  ASSERT_GE(fd, 0);
  char c;
  ASSERT_EQ(read(go[0], &c, 1), 1);
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
  EXPECT_TRUE(resolve_until(
      [&] {
        auto p = live_slot(pid);
        return p && p->net_resets_received == 1;
      },
      3s))
      << "resets charged to the server: " << (live_slot(pid) ? live_slot(pid)->net_resets_received : 0);
  auto p = live_slot(pid);
  ASSERT_TRUE(p);
  bool named = false;
  for (const auto& e : endpoints_of(key_of(*p)))
    if (e.resets_received == 1) named = true;
  EXPECT_TRUE(named) << "the reset's endpoint is not in the server's endpoint map";
  server.kill(SIGKILL);
  server.wait();
  for (int f : {ready[0], ready[1], go[0], go[1]}) close(f);
}

// Packets dropped with a reason (skb:kfree_skb), charged to the process
// whose socket sent them. The drop: the peer's address is gone, so its
// neighbour entry never resolves, and the host end may queue only one packet
// for it (unres_qlen_bytes 1): each connect's SYN pushes the one queued
// before out of the queue, dropped with NEIGH_QUEUEFULL in the sender's
// context, the skb still the connecting socket's (6.1 and 6.18 alike), and
// the socket's owner known from connect() itself.
TEST(Net, NeighbourQueueOverflowIsADropChargedToTheSenderWithItsReason) {
  probe();
  const HookStatus* hook = nullptr;
  for (const auto& h : probe().hooks())
    if (h.name == "kfree_skb") hook = &h;
  ASSERT_NE(hook, nullptr);
  if (hook->mode == AttachMode::Unavailable) GTEST_SKIP() << "skb:kfree_skb unavailable: " << hook->reason;
  ASSERT_EQ(sh("ip -V"), 0) << "this test needs iproute2's ip";
  NetNs ns;
  ASSERT_TRUE(ns.ok()) << "cannot set up a veth pair into a network namespace: `" << ns.failed() << "` failed";
  ASSERT_TRUE(ns.peer_gone());
  ASSERT_TRUE(ns.tiny_neighbour_queue());
  const std::string peer = ns.peer_ip();
  constexpr int kConnects = 20;
  Child sender([peer] {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(9);
    inet_pton(AF_INET, peer.c_str(), &a.sin_addr);
    for (int i = 0; i < kConnects; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (fd < 0) return 2;
      (void)connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);  // EINPROGRESS: the SYN waits for ARP
    }
    pause();
    return 0;
  });
  const uint32_t pid = uint32_t(sender.pid());
  sender.release();
  const bool charged = wait_until(
      [&] {
        auto p = live_slot(pid);
        return p && p->net_drops >= uint64_t(kConnects - 1);
      },
      5s);
  auto after = live_slot(pid);
  ASSERT_TRUE(after);
  RecordProperty("net_drops", std::to_string(after->net_drops));
  EXPECT_TRUE(charged) << "drops charged to the sender: " << after->net_drops;
  EXPECT_GE(after->net_connects, uint64_t(kConnects));

  // The reasons, named from the kernel's own enum.
  NetDropReasonReader reader(probe().net_drop_reasons_fd(), kernel_drop_reason_names());
  std::vector<NetDropReason> reasons;
  ASSERT_TRUE(reader.read(key_of(*after), reasons));
  uint64_t queuefull = 0, total = 0;
  std::string seen;
  for (const auto& r : reasons) {
    seen += drop_reason_text(r) + "=" + std::to_string(r.count) + " ";
    total += r.count;
    if (r.name == "NEIGH_QUEUEFULL") queuefull = r.count;
  }
  EXPECT_GE(queuefull, uint64_t(kConnects - 1)) << "reasons: " << seen;
  EXPECT_LE(total, after->net_drops) << "reasons: " << seen;
  EXPECT_EQ(probe().drops()[FP_DROP_NET_DROP_REASONS_FULL], 0u);
  // Nobody else's: this process's drops only.
  auto me = live_slot(uint32_t(getpid()));
  ASSERT_TRUE(me);
  std::vector<NetDropReason> mine;
  ASSERT_TRUE(reader.read(key_of(*me), mine));
  for (const auto& r : mine) EXPECT_NE(r.name, "NEIGH_QUEUEFULL");
  sender.kill(SIGKILL);
  sender.wait();
}
