// Alert lines: their two formats, the rate limit, and the forwarder over real
// local sockets.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "alert/forwarder.h"
#include "alert/syslog.h"
#include "alert/syslog_format.h"
#include "util/text.h"

namespace fp {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kSecond = 1'000'000'000ull;

// ---- formatting ----

TEST(SyslogFormat, KeyValueQuotesOnlyWhatNeedsIt) {
  AlertFields f = {{"class", "cpu_runaway"}, {"pid", "123"},   {"comm", "x y"},
                   {"cgroup", "/a"},         {"empty", ""},    {"evidence", R"({"cores":0.98})"},
                   {"q", "\"lead"},          {"nl", "a\nb\\c"}};
  // Control bytes are \xHH (util/text.h), so a value with a newline is one
  // word; quotes are for spaces, and escape '\\' and '"'.
  EXPECT_EQ(format_kv(f),
            R"(class=cpu_runaway pid=123 comm="x y" cgroup=/a empty="" evidence={"cores":0.98} q="\"lead" )"
            R"(nl=a\x0ab\c)");
  EXPECT_EQ(kv_value("tab\there"), R"(tab\x09here)");
  EXPECT_EQ(kv_value(std::string("c\x01", 2)), R"(c\x01)");
  EXPECT_EQ(kv_value("a b\x0a"), R"("a b\\x0a")");
  EXPECT_EQ(kv_value("größe"), "größe");  // UTF-8 stays bare
  EXPECT_EQ(kv_value("x\xff\xfey"), R"(x\xff\xfey)");
}

TEST(SyslogFormat, StructuredDataEscapesQuoteBackslashBracket) {
  AlertFields f = {{"class", "crash"}, {"comm", R"(a"b\c]d)"}, {"bad name=", "v"}};
  EXPECT_EQ(format_structured_data(kSdId, f), R"([faultprobe@32473 class="crash" comm="a\"b\\c\]d" badname="v"])");
  EXPECT_EQ(format_structured_data(kSdId, {}), "-");
}

TEST(SyslogFormat, StructuredDataValuesAreOneLineOfUtf8) {
  AlertFields f = {{"comm", "x\xff\n]\"\\"}};
  EXPECT_EQ(format_structured_data(kSdId, f), R"([faultprobe@32473 comm="x\\xff\\x0a\]\"\\"])");
}

TEST(SyslogFormat, Rfc5424LineAndPri) {
  Rfc5424Header h;
  h.severity = LOG_WARNING;
  h.realtime_ns = 1795680000ull * kSecond + 123'456'789;  // 2026-11-26T08:00:00.123456Z
  h.hostname = "web-1";
  h.procid = 4242;
  h.msgid = "fault";
  std::string line = format_rfc5424(h, R"([faultprobe@32473 class="cpu_runaway"])", "fault class=cpu_runaway");
  EXPECT_EQ(line, "<28>1 2026-11-26T08:00:00.123456Z web-1 faultprobed 4242 fault "
                  R"([faultprobe@32473 class="cpu_runaway"] fault class=cpu_runaway)");
  // PRI = facility daemon (3) * 8 + severity.
  h.severity = LOG_CRIT;
  EXPECT_EQ(format_rfc5424(h, "-", "").substr(0, 6), "<26>1 ");
  h.severity = LOG_INFO;
  EXPECT_EQ(format_rfc5424(h, "-", "").substr(0, 6), "<30>1 ");

  // Empty header fields are NILVALUE; a newline never splits the line.
  Rfc5424Header empty;
  empty.app_name = "";
  EXPECT_EQ(format_rfc5424(empty, "-", "a\nb\xff"), "<30>1 - - - - - - a\\x0ab\\xff");
  EXPECT_EQ(rfc5424_token("with space", 255), "withspace");
  EXPECT_EQ(rfc5424_token(std::string(40, 'm'), 32), std::string(32, 'm'));
}

// ---- the alerter, against a sink that records ----

struct RecordingSink : SyslogSink {
  std::vector<AlertLine>* lines;
  explicit RecordingSink(std::vector<AlertLine>* out) : lines(out) {}
  void send(const AlertLine& line) override { lines->push_back(line); }
  std::string describe() const override { return "recording"; }
};

SyslogSinks recording(std::vector<AlertLine>* out) {
  SyslogSinks s;
  s.push_back(std::make_unique<RecordingSink>(out));
  return s;
}

FaultRecord fault(Severity sev = Severity::Warning, uint32_t pid = 123) {
  FaultRecord r;
  r.cls = FaultClass::CpuRunaway;
  r.severity = sev;
  r.rule = "cpu_runaway";
  r.culprit = {pid, 77};
  r.comm = "x y";
  r.cgroup = "/a";
  r.evidence = {{"cores", 0.98}};
  r.mono_ns = 10 * kSecond;
  return r;
}

DaemonConfig limits(uint32_t burst, std::chrono::nanoseconds per) {
  DaemonConfig c;
  c.syslog_burst = burst;
  c.syslog_per = per;
  return c;
}

TEST(Alerter, FaultOpenResolveActionLines) {
  FakeClock clock;
  std::vector<AlertLine> lines;
  Alerter a(limits(20, 10s), clock, recording(&lines));

  a.fault_opened(fault());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].severity, LOG_WARNING);
  EXPECT_EQ(lines[0].msgid, "fault");
  EXPECT_EQ(lines[0].text,
            R"(fault class=cpu_runaway severity=warning rule=cpu_runaway pid=123 comm="x y" cgroup=/a )"
            R"(evidence={"cores":0.98})");

  a.fault_opened(fault(Severity::Critical));
  EXPECT_EQ(lines[1].severity, LOG_CRIT);

  FaultRecord res = fault();
  res.kind = FaultRecord::Kind::Resolved;
  res.opened_mono_ns = 4 * kSecond;
  res.evidence = nlohmann::json::object();
  a.fault_resolved(res);
  EXPECT_EQ(lines[2].severity, LOG_NOTICE);
  EXPECT_EQ(lines[2].text, R"(resolved class=cpu_runaway rule=cpu_runaway pid=123 comm="x y" cgroup=/a duration_ms=6000)");

  ActionRecord act;
  act.cls = FaultClass::CpuRunaway;
  act.rule = "cpu_runaway";
  act.policy = "web";
  act.target.key = {123, 77};
  act.target.comm = "x y";
  act.target.cgroup = "/a";
  act.type = ActionType::Throttle;
  act.step = "throttle:cpu=20%";
  act.outcome.detail = "cpu.cfs_quota_us=20000";
  a.action(act);
  EXPECT_EQ(lines[3].severity, LOG_NOTICE);
  EXPECT_EQ(lines[3].msgid, "action");
  EXPECT_EQ(lines[3].text, "action class=cpu_runaway rule=cpu_runaway pid=123 comm=\"x y\" cgroup=/a policy=web "
                           "action=throttle step=throttle:cpu=20% result=ok detail=cpu.cfs_quota_us=20000");
  act.outcome.result = ActionResult::Failed;
  a.action(act);
  EXPECT_EQ(lines[4].severity, LOG_ERR);
  act.outcome.result = ActionResult::DryRun;
  a.action(act);
  EXPECT_EQ(lines[5].severity, LOG_INFO);
  act.outcome.result = ActionResult::Skipped;
  a.action(act);
  EXPECT_EQ(lines[6].severity, LOG_INFO);

  a.recovery({FaultClass::CpuRunaway, "cpu_runaway", 123, "x y", false, "still above 0.9 cores"});
  EXPECT_EQ(lines[7].severity, LOG_WARNING);
  EXPECT_EQ(lines[7].text, R"(recovery class=cpu_runaway rule=cpu_runaway pid=123 comm="x y" recovered=no )"
                           R"(detail="still above 0.9 cores")");
  a.service_event("web", LOG_CRIT, "crash-loop limit reached");
  EXPECT_EQ(lines[8].severity, LOG_CRIT);
  EXPECT_EQ(lines[8].text, R"(service service=web detail="crash-loop limit reached")");
  EXPECT_EQ(a.sent(), 9u);
  EXPECT_EQ(a.suppressed(), 0u);
}

// A process controls its name, its cgroup's name (a delegated subtree) and
// what ends up in the evidence: whatever bytes they hold, a line stays one
// line of UTF-8, and the fields read back to the original bytes.
TEST(Alerter, HostileNamesStayOneLineAndReadBack) {
  FakeClock clock;
  std::vector<AlertLine> lines;
  Alerter a(limits(20, 10s), clock, recording(&lines));
  FaultRecord r = fault();
  r.comm = "x\xff\xfey\n<13>1 forged";
  r.cgroup = "/user.slice/\x1b[2J\"q=\"";
  r.evidence = {{"device", "sd\x80"}, {"cores", 1.0}};
  a.fault_opened(r);
  a.recovery({FaultClass::CpuRunaway, "cpu_runaway", 123, "a\rb", true, "ok"});
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& l : lines) {
    EXPECT_EQ(l.text.find_first_of(std::string("\n\r\x1b", 3)), std::string::npos) << l.text;
    EXPECT_FALSE(needs_display_escape(l.text)) << l.text;
  }
  // Quoted (it has spaces): the quoting doubles the escapes' backslashes.
  EXPECT_NE(lines[0].text.find(R"(comm="x\\xff\\xfey\\x0a<13>1 forged")"), std::string::npos) << lines[0].text;
  EXPECT_NE(lines[0].text.find(R"(evidence={"cores":1.0,"device":"sd\\x80"})"), std::string::npos) << lines[0].text;
  bool found = false;
  for (const auto& [k, v] : lines[0].fields)
    if (k == "comm") {
      found = true;
      EXPECT_EQ(unescape_text(v), r.comm);
    }
  EXPECT_TRUE(found);
  // The forwarded form carries the same text in its structured data.
  Rfc5424Forwarder fwd(ForwardTarget{ForwardTarget::Proto::Udp, "127.0.0.1", 9});
  std::string line = fwd.format(lines[0], 1795680000ull * kSecond);
  EXPECT_EQ(line.find_first_of(std::string("\n\r\x1b", 3)), std::string::npos) << line;
  EXPECT_FALSE(needs_display_escape(line));
  EXPECT_NE(line.find(R"(comm="x\\xff\\xfey\\x0a<13>1 forged")"), std::string::npos) << line;
}

TEST(Alerter, RateLimitReportsSuppressedCountExactlyOnce) {
  FakeClock clock;
  std::vector<AlertLine> lines;
  Alerter a(limits(3, 10s), clock, recording(&lines));

  for (int i = 0; i < 10; ++i) a.fault_opened(fault(Severity::Warning, 100 + i));
  EXPECT_EQ(lines.size(), 3u);  // the burst
  EXPECT_EQ(a.suppressed(), 7u);

  a.tick(clock.now_ns());  // no token yet: nothing to report with
  EXPECT_EQ(lines.size(), 3u);

  // 3 per 10 s: one token after 3.4 s. The next line through carries the report.
  clock.advance(3'400'000'000ull);
  a.fault_opened(fault(Severity::Warning, 500));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[3].msgid, "suppressed");
  EXPECT_EQ(lines[3].text, "suppressed 7 alert lines (rate limit 3 per 10s)");
  EXPECT_EQ(lines[3].fields[0], (std::pair<std::string, std::string>{"suppressed", "7"}));
  EXPECT_EQ(lines[4].msgid, "fault");

  // Reported once: later lines and ticks do not repeat it.
  clock.advance(20 * kSecond);
  a.tick(clock.now_ns());
  a.fault_opened(fault());
  EXPECT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[5].msgid, "fault");
  EXPECT_EQ(a.suppressed(), 7u);
  EXPECT_EQ(a.sent(), 6u);
}

TEST(Alerter, TickFlushesTheReportWhenTheStormIsOver) {
  FakeClock clock;
  std::vector<AlertLine> lines;
  Alerter a(limits(2, 1s), clock, recording(&lines));
  for (int i = 0; i < 5; ++i) a.fault_opened(fault());
  ASSERT_EQ(lines.size(), 2u);
  clock.advance(kSecond);
  a.tick(clock.now_ns());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2].text, "suppressed 3 alert lines (rate limit 2 per 1s)");
  EXPECT_EQ(lines[2].severity, LOG_WARNING);
  a.tick(clock.now_ns() + kSecond);
  EXPECT_EQ(lines.size(), 3u);
}

TEST(Alerter, CriticalLinesHaveTheirOwnBucket) {
  FakeClock clock;
  std::vector<AlertLine> lines;
  Alerter a(limits(2, 10s), clock, recording(&lines));
  for (int i = 0; i < 50; ++i) a.fault_opened(fault(Severity::Warning));
  EXPECT_EQ(lines.size(), 2u);
  a.fault_opened(fault(Severity::Critical, 999));
  ASSERT_EQ(lines.size(), 4u);  // the report of 48 rides along, then the critical line
  EXPECT_EQ(lines[2].msgid, "suppressed");
  EXPECT_EQ(lines[3].severity, LOG_CRIT);
  EXPECT_NE(lines[3].text.find("pid=999"), std::string::npos);
  // Critical lines are limited too, on their own.
  a.fault_opened(fault(Severity::Critical));
  a.fault_opened(fault(Severity::Critical));
  EXPECT_EQ(lines.size(), 5u);
  EXPECT_EQ(a.suppressed(), 49u);
}

TEST(Alerter, ReconfigureChangesLimitsAndRebuildsSinks) {
  FakeClock clock;
  std::vector<AlertLine> lines;
  int built = 0;
  SinkFactory factory = [&](const DaemonConfig& c) -> Result<SyslogSinks> {
    if (c.syslog_forward == "bad") return Error{EINVAL, "syslog_forward: bad"};
    ++built;
    return recording(&lines);
  };
  auto a = Alerter::create(limits(1, 10s), clock, factory);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(built, 1);
  (*a)->fault_opened(fault());
  (*a)->fault_opened(fault());
  EXPECT_EQ(lines.size(), 1u);

  ASSERT_TRUE((*a)->reconfigure(limits(5, 10s)).ok());  // limits only: same sinks
  EXPECT_EQ(built, 1);
  for (int i = 0; i < 5; ++i) (*a)->fault_opened(fault());
  EXPECT_EQ(lines.size(), 1u + 1 + 5);  // the report of 1 suppressed, then 5

  DaemonConfig bad = limits(5, 10s);
  bad.syslog_forward = "bad";
  auto r = (*a)->reconfigure(bad);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ((*a)->sinks().size(), 1u);  // the old sink stays
  DaemonConfig off = limits(5, 10s);
  off.syslog = false;
  ASSERT_TRUE((*a)->reconfigure(off).ok());
  EXPECT_EQ(built, 2);
}

TEST(Alerter, NoSinksNothingSent) {
  FakeClock clock;
  Alerter a(limits(20, 10s), clock, {});
  a.fault_opened(fault());
  EXPECT_EQ(a.sent(), 0u);
}

TEST(Alerter, MakeSinksRejectsABadForwardUrl) {
  DaemonConfig c;
  c.syslog = false;
  c.syslog_forward = "http://collector:514";
  auto s = make_syslog_sinks(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("unknown scheme"), std::string::npos) << s.error().message;
}

// ---- forward target ----

TEST(ForwardTarget, Parses) {
  auto t = parse_forward_target("udp://collector.example:5514");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->proto, ForwardTarget::Proto::Udp);
  EXPECT_EQ(t->host, "collector.example");
  EXPECT_EQ(t->port, 5514);
  t = parse_forward_target("tcp://[::1]:6514");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "::1");
  EXPECT_EQ(t->url(), "tcp://[::1]:6514");
  t = parse_forward_target("tcp://10.0.0.1");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->port, 514);
  for (const char* bad : {"", "collector:514", "http://x:1", "udp://:514", "udp://x:0", "udp://x:70000", "udp://x:",
                          "udp://::1:514", "tcp://[::1", "udp://x:5a"})
    EXPECT_FALSE(parse_forward_target(bad).ok()) << bad;
}

// ---- forwarder over real sockets ----

struct Listener {
  int fd = -1;
  uint16_t port = 0;
  explicit Listener(int type) {
    fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    if (type == SOCK_STREAM) listen(fd, 4);
  }
  ~Listener() { close(fd); }
};

// Reads from `fd` until `want` bytes or the deadline.
std::string read_some(int fd, size_t want, std::chrono::milliseconds deadline) {
  std::string out;
  auto end = std::chrono::steady_clock::now() + deadline;
  while (out.size() < want && std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

ForwardTarget target(const std::string& url) {
  auto t = parse_forward_target(url);
  EXPECT_TRUE(t.ok()) << url;
  return t.ok() ? t.value() : ForwardTarget{};
}

AlertLine sample_line(const std::string& comm = "x y") {
  AlertLine l;
  l.severity = LOG_WARNING;
  l.msgid = "fault";
  l.fields = {{"class", "cpu_runaway"}, {"comm", comm}};
  l.text = "fault " + format_kv(l.fields);
  return l;
}

TEST(Forwarder, UdpOneDatagramPerLine) {
  Listener udp(SOCK_DGRAM);
  Rfc5424Forwarder fwd(target("udp://127.0.0.1:" + std::to_string(udp.port)));
  fwd.send(sample_line("a]b"));
  fwd.send(sample_line());
  ASSERT_TRUE(fwd.flush(2s));
  std::vector<std::string> got;
  for (int i = 0; i < 2; ++i) {
    pollfd p{udp.fd, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 2000), 1);
    char buf[2048];
    ssize_t n = recv(udp.fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    got.emplace_back(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got[0].rfind("<28>1 ", 0), 0u) << got[0];
  EXPECT_NE(got[0].find(" faultprobed " + std::to_string(getpid()) + " fault [faultprobe@32473 "
                        R"(class="cpu_runaway" comm="a\]b"] fault class=cpu_runaway comm=a]b)"),
            std::string::npos)
      << got[0];
  EXPECT_NE(got[1].find(R"(comm="x y"] fault class=cpu_runaway comm="x y")"), std::string::npos) << got[1];
  EXPECT_EQ(fwd.forwarded(), 2u);
  EXPECT_EQ(fwd.failures(), 0u);
}

TEST(Forwarder, TcpOctetCountingFraming) {
  Listener tcp(SOCK_STREAM);
  Rfc5424Forwarder fwd(target("tcp://127.0.0.1:" + std::to_string(tcp.port)));
  AlertLine a = sample_line(), b = sample_line("second");
  std::string fa = fwd.format(a, 0), fb = fwd.format(b, 0);
  fwd.send(a);
  fwd.send(b);
  pollfd p{tcp.fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);
  int conn = accept4(tcp.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  ASSERT_TRUE(fwd.flush(2s));
  // Lengths are of the formatted lines; timestamps differ from `fa`/`fb` but
  // have a fixed width, so the lengths match once "-" is replaced by one.
  size_t la = fa.size() + std::string("2026-11-26T08:00:00.000000Z").size() - 1;
  size_t lb = fb.size() + std::string("2026-11-26T08:00:00.000000Z").size() - 1;
  std::string want_prefix_a = std::to_string(la) + " <28>1 ";
  size_t total = std::to_string(la).size() + 1 + la + std::to_string(lb).size() + 1 + lb;
  std::string stream = read_some(conn, total, 2s);
  EXPECT_EQ(stream.size(), total);
  ASSERT_EQ(stream.rfind(want_prefix_a, 0), 0u) << stream;
  // Walk the frames: LEN SP MSG, LEN SP MSG.
  size_t pos = 0;
  std::vector<std::string> frames;
  while (pos < stream.size()) {
    size_t sp = stream.find(' ', pos);
    ASSERT_NE(sp, std::string::npos);
    size_t len = std::stoul(stream.substr(pos, sp - pos));
    ASSERT_LE(sp + 1 + len, stream.size());
    frames.push_back(stream.substr(sp + 1, len));
    pos = sp + 1 + len;
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_TRUE(frames[0].ends_with("fault class=cpu_runaway comm=\"x y\"")) << frames[0];
  EXPECT_TRUE(frames[1].ends_with("fault class=cpu_runaway comm=second")) << frames[1];
  close(conn);
}

TEST(Forwarder, TcpReconnectsAfterTheCollectorRestarts) {
  Listener tcp(SOCK_STREAM);
  Rfc5424Forwarder fwd(target("tcp://127.0.0.1:" + std::to_string(tcp.port)));
  fwd.send(sample_line("one"));
  int conn = accept4(tcp.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  ASSERT_TRUE(fwd.flush(2s));
  EXPECT_NE(read_some(conn, 1, 2s).find("comm=one"), std::string::npos);
  close(conn);  // the collector drops the connection
  std::this_thread::sleep_for(50ms);
  fwd.send(sample_line("two"));
  pollfd p{tcp.fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 3000), 1);
  conn = accept4(tcp.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  ASSERT_TRUE(fwd.flush(2s));
  EXPECT_NE(read_some(conn, 1, 2s).find("comm=two"), std::string::npos);
  EXPECT_EQ(fwd.forwarded(), 2u);
  EXPECT_EQ(fwd.failures(), 0u);
  close(conn);
}

// A port nobody listens on: bind one, note it, close it.
uint16_t dead_port(int type) {
  Listener l(type);
  return l.port;
}

TEST(Forwarder, UnreachableTcpCollectorIsCountedAndNeverBlocks) {
  Rfc5424Forwarder fwd(target("tcp://127.0.0.1:" + std::to_string(dead_port(SOCK_STREAM))));
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) fwd.send(sample_line());
  auto spent = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(spent, 50ms);
  ASSERT_TRUE(fwd.flush(3s));
  // The first connect fails: what was queued is dropped, and while the
  // collector is down new lines count at once.
  fwd.send(sample_line());
  ASSERT_TRUE(fwd.flush(3s));
  EXPECT_EQ(fwd.failures(), 101u);
  EXPECT_EQ(fwd.forwarded(), 0u);
  EXPECT_GE(fwd.connect_failures(), 1u);
}

TEST(Forwarder, UnreachableUdpCollectorIsCounted) {
  Rfc5424Forwarder fwd(target("udp://127.0.0.1:" + std::to_string(dead_port(SOCK_DGRAM))));
  // Each datagram draws an ICMP port-unreachable, reported on the next send.
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fwd.send(sample_line());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 20ms);
    ASSERT_TRUE(fwd.flush(2s));
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(fwd.failures(), 3u);
}

TEST(Forwarder, SlowCollectorFillsTheQueueNotTheCaller) {
  // A listener that never accepts nor reads: the kernel takes the connection
  // and buffers, then the forwarder's send times out. The caller never waits.
  Listener tcp(SOCK_STREAM);
  Rfc5424Forwarder::Options o;
  o.queue_max = 8;
  o.send_timeout = 200ms;
  Rfc5424Forwarder fwd(target("tcp://127.0.0.1:" + std::to_string(tcp.port)), o);
  AlertLine big = sample_line(std::string(16000, 'x'));
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; ++i) fwd.send(big);
  // Blocking on the collector would cost 200ms per line; formatting alone is
  // well under 2s even in a sanitizer build.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  // Every line is written, dropped and counted, or one of the <= 8 waiting
  // (+1 in flight).
  EXPECT_GE(fwd.forwarded() + fwd.failures(), 200u - 9);
}

}  // namespace
}  // namespace fp
