// The network detectors (net_retransmits, net_connect_failures), their
// evidence (the remote endpoints, printed safely) and the min_share key.
// Synthetic processes (detect_sim.h) through a real ProcessTable; the
// probe's endpoint map is a fake.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "config/config.h"
#include "detect/net_endpoints.h"
#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

RuleConfig connect_rule() {
  RuleConfig r = rule(FaultClass::NetConnectFailures, 2, 0.5, 10s, 10);
  return r;
}

RuleConfig retrans_rule() {
  RuleConfig r = rule(FaultClass::NetRetransmits, 5, 1, 10s, 20);
  r.min_share = 0.05;
  return r;
}

NetEndpoint v4(const char* addr, uint16_t port) {
  NetEndpoint e;
  e.family = AF_INET;
  e.port = port;
  inet_pton(AF_INET, addr, e.addr.data());
  return e;
}

NetEndpoint v6(const char* addr, uint16_t port) {
  NetEndpoint e;
  e.family = AF_INET6;
  e.port = port;
  inet_pton(AF_INET6, addr, e.addr.data());
  return e;
}

class FakeEndpoints final : public NetEndpointSource {
 public:
  bool read(const ProcKey& proc, std::vector<NetEndpoint>& out) override {
    ++reads;
    out.clear();
    for (const auto& e : eps)
      if (e.proc == proc) out.push_back(e);
    return ok;
  }
  std::vector<NetEndpoint> eps;
  bool ok = true;
  int reads = 0;
};

TEST(NetConnectFailures, HammeringClientOpensNamingItsPeer) {
  Sim s;
  FakeEndpoints fake;
  s.world.net_endpoints = &fake;
  s.add(make_net_connect_failures(connect_rule()));
  s.spawn(500, "client");
  s.spawn(501, "web");
  NetEndpoint closed = v4("127.0.0.1", 9);
  closed.proc = s.key(500);
  closed.connect_failures = 300;
  closed.last_err = ECONNREFUSED;
  NetEndpoint other = v4("10.0.0.7", 5432);
  other.proc = s.key(500);
  other.connect_failures = 2;
  other.last_err = ETIMEDOUT;
  fake.eps = {other, closed};
  s.set_load(500, Load{.net_connects = 3, .net_connect_failures = 3});  // 30/s
  s.set_load(501, Load{.net_connects = 5});                            // all succeed
  s.run(11);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_EQ(f->evidence["metric"], "connect_failures_per_s");
  EXPECT_NEAR(f->evidence["value"].get<double>(), 30, 1);
  EXPECT_EQ(f->evidence["failure_share"].get<double>(), 1.0);
  ASSERT_EQ(f->evidence["endpoints"].size(), 2u);
  EXPECT_EQ(f->evidence["endpoints"][0]["endpoint"], "127.0.0.1:9");
  EXPECT_EQ(f->evidence["endpoints"][0]["last_error"], "ECONNREFUSED");
  EXPECT_EQ(f->evidence["endpoints"][1]["last_error"], "ETIMEDOUT");
  const std::string summary = f->evidence["summary"];
  EXPECT_NE(summary.find("pid 500 client"), std::string::npos) << summary;
  EXPECT_NE(summary.find("127.0.0.1:9 (ECONNREFUSED)"), std::string::npos) << summary;
  EXPECT_EQ(s.finding_for(501), nullptr);
  // The probe's map is walked at most once a second per process with a finding, not at every tick.
  EXPECT_GE(fake.reads, 1);
  EXPECT_LE(fake.reads, 12);
}

TEST(NetConnectFailures, OccasionalFailuresRaiseNothing) {
  Sim s;
  s.add(make_net_connect_failures(connect_rule()));
  s.spawn(500, "resolver");
  s.run(1);
  // One failed connect a second (a retrying client, a flaky peer): under
  // the 2/s threshold, never strong.
  for (int i = 0; i < 300; ++i) {
    s.set_load(500, Load{.net_connects = 1, .net_connect_failures = i % 10 == 0 ? 1u : 0u});
    s.tick();
  }
  EXPECT_EQ(s.seen[500].strong, 0);
  // A burst under `count` failures in the window: nothing either.
  Sim t;
  t.add(make_net_connect_failures(connect_rule()));
  t.spawn(501, "burst");
  t.run(1);
  t.set_load(501, Load{.net_connects = 9, .net_connect_failures = 9});
  t.tick();
  t.set_load(501, Load{});
  t.run(10);
  EXPECT_TRUE(t.seen.empty());
}

TEST(NetConnectFailures, WithoutEndpointSourceStillReports) {
  Sim s;
  s.add(make_net_connect_failures(connect_rule()));
  s.spawn(500, "client");
  s.set_load(500, Load{.net_connects = 3, .net_connect_failures = 3});
  s.run(11);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->evidence["endpoints"].empty());
}

TEST(NetRetransmits, LossyPeerOpensWithShareAndEndpoint) {
  Sim s;
  FakeEndpoints fake;
  s.world.net_endpoints = &fake;
  s.add(make_net_retransmits(retrans_rule()));
  s.spawn(812, "postgres");
  NetEndpoint db = v4("10.0.0.7", 5432);
  db.proc = s.key(812);
  db.retransmits = 400;
  db.segs_out = 1000;
  fake.eps = {db};
  s.set_load(812, Load{.net_segs_out = 10, .net_retransmits = 4});  // 40/s, 40 %
  s.run(11);
  const Finding* f = s.finding_for(812);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_EQ(f->evidence["metric"], "retransmits_per_s");
  EXPECT_NEAR(f->evidence["retransmit_share"].get<double>(), 0.4, 1e-6);
  EXPECT_EQ(f->evidence["endpoints"][0]["endpoint"], "10.0.0.7:5432");
  EXPECT_EQ(f->evidence["summary"], "pid 812 postgres: 40 % of segments to 10.0.0.7:5432 retransmitted");
}

TEST(NetRetransmits, BusySenderWithOrdinaryLossRaisesNothing) {
  Sim s;
  s.add(make_net_retransmits(retrans_rule()));
  s.spawn(600, "backup");
  // 10 retransmits/s, but of 100000 segments/s: 0.01 %.
  s.set_load(600, Load{.net_segs_out = 10000, .net_retransmits = 1});
  s.run(30);
  EXPECT_EQ(s.seen[600].strong, 0);
  EXPECT_EQ(s.seen[600].weak, 0);
}

TEST(NetRetransmits, ProtectedAndKernelThreadsAreNotCulprits) {
  Sim s;
  s.add(make_net_retransmits(retrans_rule()));
  s.spawn(7, "kworker/u8:1", 2, FP_PROC_KTHREAD);
  s.set_load(7, Load{.net_segs_out = 10, .net_retransmits = 4});
  s.spawn(900, "sshd");
  s.protected_comms = {"sshd"};
  s.set_load(900, Load{.net_segs_out = 10, .net_retransmits = 4});
  s.run(11);
  EXPECT_TRUE(s.seen.empty());
}

TEST(NetEvidence, HostileCommIsEscapedInTheSummary) {
  Sim s;
  s.add(make_net_connect_failures(connect_rule()));
  s.spawn(500, "a\x1b[31m\nb\xff");
  s.set_load(500, Load{.net_connects = 3, .net_connect_failures = 3});
  s.run(11);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  const std::string summary = f->evidence["summary"];
  for (unsigned char c : summary) EXPECT_TRUE(c >= 0x20 && c != 0x7f) << summary;
  EXPECT_NO_THROW((void)f->evidence.dump());
}

TEST(NetEvidence, EndpointText) {
  EXPECT_EQ(endpoint_text(v4("10.0.0.7", 5432)), "10.0.0.7:5432");
  EXPECT_EQ(endpoint_text(v6("2001:db8::1", 443)), "[2001:db8::1]:443");
  EXPECT_EQ(endpoint_text(v6("::ffff:192.0.2.1", 80)), "192.0.2.1:80");  // IPv4-mapped
  NetEndpoint junk;
  junk.family = 99;
  std::memset(junk.addr.data(), 0xff, junk.addr.size());
  EXPECT_EQ(endpoint_text(junk), "?:0");
  EXPECT_EQ(errno_name(ECONNREFUSED), "ECONNREFUSED");
  EXPECT_EQ(errno_name(12345), "12345");
}

TEST(NetEvidence, TopEndpointsOrderAndLimit) {
  std::vector<NetEndpoint> eps;
  for (uint16_t i = 1; i <= 5; ++i) {
    NetEndpoint e = v4("192.0.2.1", i);
    e.retransmits = i * 10;
    e.segs_out = 100;
    eps.push_back(e);
  }
  eps.push_back(v4("192.0.2.9", 9));  // no retransmits: left out
  nlohmann::json top = top_endpoints(eps, NetMetric::Retransmits, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0]["endpoint"], "192.0.2.1:5");
  EXPECT_EQ(top[0]["retransmit_share"], 0.5);
  EXPECT_EQ(top[2]["endpoint"], "192.0.2.1:3");
  EXPECT_TRUE(top_endpoints(eps, NetMetric::ConnectFailures, 3).empty());
}

// ---- config ----

TEST(NetConfig, MinShareOnlyForRetransmitsAndAShare) {
  auto ok = parse_config("[rules.net_retransmits]\nmin_share = 0.2\nthreshold = 10\n", "t.toml");
  ASSERT_TRUE(ok) << ok.error().message;
  bool found = false;
  for (const auto& r : ok->rules) {
    if (r.cls != FaultClass::NetRetransmits) continue;
    found = true;
    EXPECT_EQ(r.min_share, 0.2);
    EXPECT_EQ(r.threshold, 10);
  }
  EXPECT_TRUE(found);

  auto big = parse_config("[rules.net_retransmits]\nmin_share = 5\n", "t.toml");
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("t.toml:2:13: \"min_share\" must be a share between 0 and 1"),
            std::string::npos)
      << big.error().message;
  auto neg = parse_config("[rules.net_retransmits]\nmin_share = -0.1\n", "t.toml");
  ASSERT_FALSE(neg);
  EXPECT_NE(neg.error().message.find("\"min_share\""), std::string::npos) << neg.error().message;
  auto other = parse_config("[rules.net_connect_failures]\nmin_share = 0.1\n", "t.toml");
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message.find("\"min_share\" is a net_retransmits rule's"), std::string::npos)
      << other.error().message;
  auto text = parse_config("[[rule]]\nname = \"lossy\"\nclass = \"net_retransmits\"\nmin_share = \"lots\"\n", "t.toml");
  ASSERT_FALSE(text);
  EXPECT_NE(text.error().message.find("\"min_share\" must be a non-negative number"), std::string::npos)
      << text.error().message;
}

TEST(NetConfig, BuiltinRetransmitShare) {
  for (const auto& r : default_config().rules) {
    if (r.cls == FaultClass::NetRetransmits) {
      EXPECT_EQ(r.min_share, 0.05);
    } else if (r.cls == FaultClass::NetConnectFailures) {
      EXPECT_EQ(r.min_share, 0);
    }
  }
}

}  // namespace
}  // namespace fp
