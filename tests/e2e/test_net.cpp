// Network faults end to end: the real daemon (real probe) against real
// clients. A client hammering a closed port opens net_connect_failures
// naming it; a client whose packets are dropped opens net_drops naming it
// and the reason; normal network use (a loopback HTTP load, DNS lookups)
// raises nothing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "e2e_fixture.h"
#include "loopback_port.h"
#include "services.h"
#include "veth_netns.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;

namespace {

using fp::test_support::unused_loopback_port;

// A client that connects to 127.0.0.1:PORT every 20 ms for a while, as a
// service whose backend is down would; its first line names it for FaultGen.
const char* kHammer = R"(
import json, os, socket, sys, time
print(json.dumps({"culprit": os.getpid()}), flush=True)
port, secs = int(sys.argv[1]), float(sys.argv[2])
end = time.time() + secs
while time.time() < end:
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        pass
    s.close()
    time.sleep(0.02)
)";

// Requests to a loopback HTTP server as fast as one client goes, for a while.
const char* kHttpLoad = R"(
import sys, time, urllib.request
port, secs = int(sys.argv[1]), float(sys.argv[2])
end = time.time() + secs
ok = 0
while time.time() < end:
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2) as r:
            r.read()
            ok += 1
    except OSError:
        time.sleep(0.05)
print(ok, flush=True)
)";

bool net_fault(const json& r) {
  const std::string cls = r.value("class", "");
  return r.value("kind", "") == "fault" && cls.rfind("net_", 0) == 0;
}

}  // namespace

TEST(NetE2E, ClientHammeringAClosedPortOpensConnectFailures) {
  Daemon d(kBase);  // the built-in rule: 2 failures/s for 5 s, at least 10
  ASSERT_TRUE(d.ready());
  const uint16_t port = unused_loopback_port();
  ASSERT_NE(port, 0);
  FaultGen g("/usr/bin/python3", {"-c", kHammer, std::to_string(port), "30"});
  ASSERT_TRUE(g.started());
  auto f = d.wait_fault("net_connect_failures", g.culprit(), 25s);
  ASSERT_TRUE(f) << describe(d.records());
  const json& ev = (*f)["evidence"];
  EXPECT_EQ(ev["metric"], "connect_failures_per_s");
  EXPECT_GE(ev["value"].get<double>(), 2.0);
  ASSERT_FALSE(ev["endpoints"].empty()) << f->dump();
  EXPECT_EQ(ev["endpoints"][0]["endpoint"], "127.0.0.1:" + std::to_string(port)) << f->dump();
  EXPECT_EQ(ev["endpoints"][0]["last_error"], "ECONNREFUSED") << f->dump();
  EXPECT_NE(ev["summary"].get<std::string>().find("pid " + std::to_string(g.culprit())), std::string::npos)
      << f->dump();
  // The daemon's view has the rate too.
  json row = d.view_row(g.culprit());
  if (!row.is_null()) {
    EXPECT_GT(row.value("net_connect_fail_per_s", 0.0), 1.0) << row.dump();
  }
  g.stop();
  EXPECT_TRUE(d.wait_resolved("net_connect_failures", g.culprit(), 30s)) << describe(d.records());
}

TEST(NetE2E, CleanNetworkUseRaisesNothing) {
  Daemon d(kBase);
  ASSERT_TRUE(d.ready());
  const uint16_t port = unused_loopback_port();
  ASSERT_NE(port, 0);
  const std::string logs = d.dir();
  ChildProcess server({"/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", std::to_string(port),
                       "--directory", logs},
                      logs + "/http.log");
  // Up when it answers.
  ASSERT_TRUE(wait_for(
      [&] {
        std::string out;
        return run_capture({"/usr/bin/curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:" + std::to_string(port) + "/"},
                           &out, 2s) == 0;
      },
      10s))
      << "the HTTP server never answered";
  ChildProcess load({"/usr/bin/python3", "-c", kHttpLoad, std::to_string(port), "20"}, logs + "/load.log");
  ChildProcess curls({"/bin/sh", "-c",
                      "end=$(($(date +%s) + 20)); while [ $(date +%s) -lt $end ]; do curl -sf -o /dev/null "
                      "http://127.0.0.1:" + std::to_string(port) + "/; done"},
                     logs + "/curl.log");
  ChildProcess lookups({"/bin/sh", "-c",
                        "end=$(($(date +%s) + 20)); while [ $(date +%s) -lt $end ]; do getent hosts localhost; "
                        "getent hosts debian.org; getent ahosts example.com; sleep 0.2; done"},
                       logs + "/dns.log");
  // The spell, then as long as the rules hold a condition before opening
  // (net_retransmits 10 s with its window, net_connect_failures and
  // net_drops 5 s): a
  // fault building up during the spell would open by then.
  wait_for([&] { return !load.alive() && !curls.alive() && !lookups.alive(); }, 30s);
  std::this_thread::sleep_for(11s);
  const std::string served = slurp(logs + "/load.log");
  EXPECT_GT(std::atoi(served.c_str()), 100) << "the HTTP load did not run: " << served;
  auto bad = first_match(d.records(), net_fault);
  EXPECT_FALSE(bad) << bad->dump();
}

// Nonblocking TCP connects to ADDR every 10 ms for a while, each socket
// closed 2 s later; its first line names it for FaultGen.
const char* kUnreachable = R"(
import json, os, socket, sys, time
print(json.dumps({"culprit": os.getpid()}), flush=True)
addr, secs = sys.argv[1], float(sys.argv[2])
end = time.time() + secs
live = []
while time.time() < end:
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((addr, 9))
    except OSError:
        pass
    live.append((time.time(), s))
    while live and time.time() - live[0][0] > 2:
        live.pop(0)[1].close()
    time.sleep(0.01)
)";

// A client whose packets the kernel drops: the peer's neighbour never
// resolves and the host end queues one packet for it, so every SYN pushes
// the one before out (NEIGH_QUEUEFULL), ~100 a second, charged to the
// client. The built-in rule (20/s for 5 s, at least 100) opens naming it
// and the reason, and resolves once it stops.
TEST(NetE2E, ClientWhosePacketsAreDroppedOpensNetDropsNamingTheReason) {
  ASSERT_EQ(std::system("ip -V >/dev/null 2>&1"), 0) << "this test needs iproute2's ip";
  fp::test_support::NetNs ns;
  ASSERT_TRUE(ns.ok()) << "cannot set up a veth pair into a network namespace: `" << ns.failed() << "` failed";
  ASSERT_TRUE(ns.peer_gone());
  ASSERT_TRUE(ns.tiny_neighbour_queue());
  Daemon d(kBase);
  ASSERT_TRUE(d.ready());
  FaultGen g("/usr/bin/python3", {"-c", kUnreachable, ns.peer_ip(), "30"});
  ASSERT_TRUE(g.started());
  auto f = d.wait_fault("net_drops", g.culprit(), 25s);
  ASSERT_TRUE(f) << describe(d.records());
  const json& ev = (*f)["evidence"];
  RecordProperty("fault", f->dump());
  EXPECT_EQ(ev["metric"], "drops_per_s");
  EXPECT_GE(ev["value"].get<double>(), 20.0);
  ASSERT_FALSE(ev["reasons"].empty()) << f->dump();
  const std::string top = ev["reasons"][0]["reason"];
  EXPECT_TRUE(top == "NEIGH_QUEUEFULL" || top == "NEIGH_FAILED") << f->dump();
  EXPECT_NE(ev["summary"].get<std::string>().find("pid " + std::to_string(g.culprit())), std::string::npos)
      << f->dump();
  json row = d.view_row(g.culprit());
  if (!row.is_null()) {
    EXPECT_GT(row.value("net_drops_per_s", 0.0), 10.0) << row.dump();
  }
  g.stop();
  EXPECT_TRUE(d.wait_resolved("net_drops", g.culprit(), 40s)) << describe(d.records());
  // Nothing else: the connects never complete or fail within the spell (no RST, no ICMP).
  auto other = first_match(d.records(), [&](const json& r) {
    return net_fault(r) && r.value("class", "") != "net_drops" && r.value("pid", 0) == int(g.culprit());
  });
  EXPECT_FALSE(other) << other->dump();
}

namespace {

// A UDP service that stopped reading (a stuck syslog collector): a 4 KB
// receive buffer, bound to 127.0.0.1:PORT, never read. It never calls
// recv, so the probe never sees it run on that socket: its owner comes from
// the daemon's resolver walk.
const char* kDeafUdp = R"(
import json, os, signal, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(("127.0.0.1", int(sys.argv[1])))
print(json.dumps({"culprit": os.getpid()}), flush=True)
signal.pause()
)";

// Datagrams to 127.0.0.1:PORT, 200 a second, for a while.
const char* kUdpSender = R"(
import socket, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + secs
while time.time() < end:
    for _ in range(20):
        s.sendto(b"x" * 1000, ("127.0.0.1", port))
    time.sleep(0.1)
)";

bool kfree_skb_names_rx_sk() {
  return slurp("/sys/kernel/tracing/events/skb/kfree_skb/format").find("rx_sk") != std::string::npos;
}

}  // namespace

// The receiver's drops are charged to it although it never ran on the
// socket: the daemon's resolver found it (status says so), and net_drops
// opens naming it with the kernel's reason (a full receive buffer).
TEST(NetE2E, UdpServiceThatStoppedReadingOpensNetDropsFoundByTheResolver) {
  if (!kfree_skb_names_rx_sk())
    GTEST_SKIP() << "skb:kfree_skb has no rx_sk before v6.11: a full UDP receive buffer's drops have no socket";
  Daemon d(kBase);
  ASSERT_TRUE(d.ready());
  const uint16_t port = fp::test_support::unused_udp_loopback_port();
  ASSERT_NE(port, 0);
  FaultGen deaf("/usr/bin/python3", {"-c", kDeafUdp, std::to_string(port)});
  ASSERT_TRUE(deaf.started());
  ChildProcess sender({"/usr/bin/python3", "-c", kUdpSender, std::to_string(port), "20"}, d.dir() + "/sender.log");
  auto f = d.wait_fault("net_drops", deaf.culprit(), 25s);
  ASSERT_TRUE(f) << describe(d.records());
  const json& ev = (*f)["evidence"];
  ASSERT_FALSE(ev["reasons"].empty()) << f->dump();
  EXPECT_EQ(ev["reasons"][0]["reason"], "SOCKET_RCVBUFF") << f->dump();
  json status = d.query({{"cmd", "status"}});
  const json& nr = status["status"]["net_resolve"];
  EXPECT_EQ(nr["walk"], true) << nr.dump();
  EXPECT_GE(nr["charged"].get<uint64_t>(), 1u) << nr.dump();
  EXPECT_GE(nr["events_charged"].get<uint64_t>(), 1u) << nr.dump();
  // Once found, its socket's owner is known: no walk per datagram.
  EXPECT_LE(nr["walks"].get<uint64_t>(), 10u) << nr.dump();
}
