// The network detectors (net_retransmits, net_connect_failures, net_drops),
// their evidence (the remote endpoints, the drop reasons, printed safely)
// and the min_share key. Synthetic processes (detect_sim.h) through a real
// ProcessTable, and net_drops through the real Engine (hold, resolve); the
// probe's endpoint and drop reason maps are fakes.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "detect/engine.h"
#include "detect/net_drop_reasons.h"
#include "detect/net_endpoints.h"
#include "synthetic.h"
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

// ---- net_drops ----

RuleConfig drops_rule() { return rule(FaultClass::NetDrops, 20, 5, 10s, 100); }

class FakeDropReasons final : public NetDropReasonSource {
 public:
  bool read(const ProcKey& proc, std::vector<NetDropReason>& out) override {
    ++reads[proc.tgid];
    out.clear();
    for (const auto& [key, r] : reasons)
      if (key == proc) out.push_back(r);
    return ok;
  }
  std::vector<std::pair<ProcKey, NetDropReason>> reasons;
  bool ok = true;
  std::map<uint32_t, int> reads;  // by pid
};

NetDropReason reason(uint32_t value, const char* name, uint64_t count) {
  NetDropReason r;
  r.reason = value;
  r.name = name;
  r.count = count;
  return r;
}

TEST(NetDrops, DroppingProcessOpensNamingItsReasonsAndPeer) {
  Sim s;
  FakeDropReasons reasons;
  FakeEndpoints eps;
  s.world.net_drop_reasons = &reasons;
  s.world.net_endpoints = &eps;
  s.add(make_net_drops(drops_rule()));
  s.spawn(640, "streamer");
  s.spawn(641, "quiet");
  reasons.reasons = {{s.key(640), reason(77, "SOCKET_RCVBUFF", 40)},
                     {s.key(640), reason(58, "NEIGH_QUEUEFULL", 900)},
                     {s.key(640), reason(12, "", 3)},  // a number the kernel's BTF did not name
                     {s.key(641), reason(58, "NEIGH_QUEUEFULL", 5000)}};
  NetEndpoint peer = v4("10.0.0.9", 8125);
  peer.proc = s.key(640);
  peer.drops = 700;
  eps.eps = {peer};
  s.set_load(640, Load{.net_drops = 10});  // 100/s
  s.set_load(641, Load{.net_drops = 1});   // 10/s: below the threshold
  s.run(11);                               // seconds
  const Finding* f = s.finding_for(640);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_EQ(f->evidence["metric"], "drops_per_s");
  EXPECT_NEAR(f->evidence["value"].get<double>(), 100, 1);
  EXPECT_GE(f->evidence["drops"].get<uint64_t>(), 100u);
  const nlohmann::json& r = f->evidence["reasons"];
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0]["reason"], "NEIGH_QUEUEFULL");
  EXPECT_EQ(r[0]["drops"], 900);
  EXPECT_EQ(r[1]["reason"], "SOCKET_RCVBUFF");
  EXPECT_EQ(r[2]["reason"], "reason 12");
  EXPECT_EQ(f->evidence["endpoints"][0]["endpoint"], "10.0.0.9:8125");
  EXPECT_EQ(f->evidence["endpoints"][0]["drops"], 700);
  const std::string summary = f->evidence["summary"];
  EXPECT_NE(summary.find("pid 640 streamer"), std::string::npos) << summary;
  EXPECT_NE(summary.find("most NEIGH_QUEUEFULL (then SOCKET_RCVBUFF)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("most to 10.0.0.9:8125"), std::string::npos) << summary;
  EXPECT_FALSE(s.seen[641].strong);
  // The maps are walked at most once a second per process with a finding (11 s here), not at every tick.
  EXPECT_GE(reasons.reads[640], 1);
  EXPECT_LE(reasons.reads[640], 12);
}

TEST(NetDrops, FewDropsOrABurstUnderCountRaiseNothing) {
  Sim s;
  s.add(make_net_drops(drops_rule()));
  s.spawn(700, "resolver");
  s.run(1);
  // A few drops a second (a DNS reply after its socket closed, a lost ARP): under 20/s.
  for (int i = 0; i < 300; ++i) {
    s.set_load(700, Load{.net_drops = i % 2 == 0 ? 1u : 0u});
    s.tick();
  }
  EXPECT_EQ(s.seen[700].strong, 0);
  // 99 drops in one tick (above the rate for that window, under `count`): nothing.
  Sim t;
  t.add(make_net_drops(drops_rule()));
  t.spawn(701, "burst");
  t.run(1);
  t.set_load(701, Load{.net_drops = 99});
  t.tick();
  t.set_load(701, Load{});
  t.run(10);
  EXPECT_TRUE(t.seen.empty());
}

TEST(NetDrops, ReasonNamesArePrintedSafely) {
  EXPECT_EQ(drop_reason_text(reason(5, "NEIGH_FAILED", 1)), "NEIGH_FAILED");
  EXPECT_EQ(drop_reason_text(reason(5, "BAD\x1b[31m NAME\n", 1)), "BAD31mNAME");
  EXPECT_EQ(drop_reason_text(reason(65539, "", 1)), "reason 65539");
  EXPECT_EQ(drop_reason_text(reason(7, std::string(500, 'A').c_str(), 1)).size(), 64u);
  EXPECT_TRUE(top_drop_reasons({reason(1, "X", 0)}, 3).empty());  // nothing counted: not a reason
}

// Through the real Engine with the built-in rule (20/s, resolve 5/s, hold
// 5 s, window 10 s, at least 100): a process dropping 50 packets a second
// opens net_drops once the hold has passed, not before, and the fault
// resolves once its rate falls under the resolve threshold.
TEST(NetDrops, BuiltinRuleOpensAfterItsHoldAndResolvesBelow) {
  Config c;
  c.sample_interval = 100ms;
  for (const RuleConfig& r : default_config().rules)
    if (r.cls == FaultClass::NetDrops) c.rules.push_back(r);
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_EQ(c.rules[0].hold, 5s);
  synthetic::FakeInfos infos;
  Engine engine(c, HostInfo{4, 8ull << 30, 4096}, infos, 777);
  engine.set_exe_lookup([](const ProcKey&) -> std::optional<ExeIdentity> {
    return ExeIdentity{"/usr/bin/sender", true};
  });
  FakeDropReasons reasons;
  engine.set_net_drop_reasons(&reasons);
  fp_proc p = synthetic::proc(4242, 1234, "sender");
  reasons.reasons = {{key_of(p), reason(58, "NEIGH_QUEUEFULL", 1)}};
  uint64_t now = synthetic::kT0;
  std::vector<FaultRecord> all;
  int opened_at = -1, resolved_at = -1;
  auto tick = [&](int i, uint64_t drops) {
    p.net_drops += drops;
    std::vector<SlotChange> changed = {{0, &p}};
    for (auto& r : engine.tick(now, changed, {})) {
      if (r.kind == FaultRecord::Kind::Fault && opened_at < 0) opened_at = i;
      if (r.kind == FaultRecord::Kind::Resolved && resolved_at < 0) resolved_at = i;
      all.push_back(std::move(r));
    }
    now += synthetic::kTick;
  };
  int i = 0;
  for (; i < 10; ++i) tick(i, 0);  // quiet first
  const int start = i;
  for (; i < start + 200; ++i) tick(i, 5);  // 50/s for 20 s
  ASSERT_GE(opened_at, 0) << "never opened";
  // At least `count` (100) drops in the window first (2 s at 50/s), then the 5 s hold.
  EXPECT_GE(opened_at - start, 50) << "opened before its hold";
  EXPECT_LE(opened_at - start, 90);
  EXPECT_LT(resolved_at, 0);
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0].cls, FaultClass::NetDrops);
  EXPECT_EQ(all[0].culprit.tgid, 4242u);
  EXPECT_EQ(all[0].evidence["reasons"][0]["reason"], "NEIGH_QUEUEFULL");
  // 2 a second: under the resolve threshold once the window slides past the burst.
  const int calm = i;
  for (; i < calm + 400 && resolved_at < 0; ++i) tick(i, i % 5 == 0 ? 1 : 0);
  ASSERT_GE(resolved_at, 0) << "never resolved";
  EXPECT_LE(resolved_at - calm, 250);  // the window (10 s) slides, then `clear` (10 s)
}

}  // namespace
}  // namespace fp
