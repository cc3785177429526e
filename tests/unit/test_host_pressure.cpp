// host_pressure: the PSI parser and its triggers, the pressure files of the
// host and of a cgroup v2 directory (a fake filesystem in a temp dir), the
// utilisation math, the rule's config keys, and the detector on synthetic
// processes (detect_sim.h) with a HostPressure the test sets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "detect/host_pressure.h"
#include "probe/psi.h"
#include "threshold_rules.h"
#include "util/file.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

const char* kMemory =
    "some avg10=12.50 avg60=3.10 avg300=0.75 total=1234567\n"
    "full avg10=4.00 avg60=1.00 avg300=0.25 total=654321\n";

TEST(Psi, ParsesSomeAndFull) {
  auto r = parse_psi(kMemory);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_DOUBLE_EQ(r->some.avg10, 12.5);
  EXPECT_DOUBLE_EQ(r->some.avg60, 3.1);
  EXPECT_DOUBLE_EQ(r->some.avg300, 0.75);
  EXPECT_EQ(r->some.total_us, 1234567u);
  ASSERT_TRUE(r->full);
  EXPECT_DOUBLE_EQ(r->full->avg10, 4.0);
  EXPECT_EQ(r->full->total_us, 654321u);
}

TEST(Psi, FullIsOptionalAndNewFieldsAreSkipped) {
  auto r = parse_psi("some avg10=1.00 avg60=0.00 avg300=0.00 avg3600=0.00 total=5\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->full);
  EXPECT_EQ(r->some.total_us, 5u);
}

TEST(Psi, GarbageIsAnErrorThatSaysWhat) {
  EXPECT_NE(parse_psi("").error().message.find("no \"some\" line"), std::string::npos);
  EXPECT_NE(parse_psi("some avg10=x total=1\n").error().message.find("bad avg10"), std::string::npos);
  EXPECT_NE(parse_psi("some avg10=-1 total=1\n").error().message.find("bad avg10"), std::string::npos);
  EXPECT_NE(parse_psi("some avg10=1.0 avg60=1.0\n").error().message.find("lacks avg10 or total"),
            std::string::npos);
  EXPECT_NE(parse_psi("some avg10=1 total=99999999999999999999999\n").error().message.find("bad total"),
            std::string::npos);
  EXPECT_FALSE(parse_psi("some avg10 total\n"));
}

TEST(Psi, TriggerText) {
  EXPECT_EQ(psi_trigger_text(PsiTrigger{}), "some 200000 2000000");
  EXPECT_EQ(psi_trigger_text(PsiTrigger{true, 50000, 2000000}), "full 50000 2000000");
}

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/fp_psi_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(path + "/" + name) << text; }
  std::string path;
};

TEST(Psi, HostAndCgroupFilesShareOneReader) {
  TempDir host, cg;
  host.write("memory", kMemory);
  cg.write("memory.pressure", kMemory);
  EXPECT_EQ(PsiFiles::host(host.path).path(PsiResource::Io), host.path + "/io");
  EXPECT_EQ(PsiFiles::cgroup(cg.path).path(PsiResource::Cpu), cg.path + "/cpu.pressure");
  auto a = PsiFiles::host(host.path).read(PsiResource::Memory);
  auto b = PsiFiles::cgroup(cg.path).read(PsiResource::Memory);
  ASSERT_TRUE(a && b);
  EXPECT_DOUBLE_EQ(a->some.avg10, b->some.avg10);
  // An absent file names itself.
  auto c = PsiFiles::cgroup(cg.path).read(PsiResource::Io);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find(cg.path + "/io.pressure"), std::string::npos) << c.error().message;
  auto t = PsiFiles::cgroup(cg.path).open_trigger(PsiResource::Io, PsiTrigger{});
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find(cg.path + "/io.pressure"), std::string::npos) << t.error().message;
}

TEST(Psi, TriggerRefusesASymlink) {
  TempDir d;
  d.write("target", kMemory);
  std::filesystem::create_symlink(d.path + "/target", d.path + "/memory");
  auto t = PsiFiles::host(d.path).open_trigger(PsiResource::Memory, PsiTrigger{});
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ELOOP);
}

TEST(PressureInputs, StallDeltasAndAnAbsentResource) {
  TempDir d;
  d.write("cpu", "some avg10=1.00 avg60=0 avg300=0 total=1000\nfull avg10=0 avg60=0 avg300=0 total=0\n");
  d.write("memory", kMemory);
  PressureInputs in(PsiFiles::host(d.path));
  in.read(1);
  EXPECT_TRUE(in.now().of(PsiResource::Cpu).ok);
  EXPECT_EQ(in.now().of(PsiResource::Cpu).some_delta_us, 0u);  // nothing to compare with yet
  const ResourcePressure& io = in.now().of(PsiResource::Io);
  EXPECT_FALSE(io.ok);
  EXPECT_NE(io.error.find(d.path + "/io"), std::string::npos) << io.error;
  d.write("cpu", "some avg10=2.00 avg60=0 avg300=0 total=251000\nfull avg10=0 avg60=0 avg300=0 total=7\n");
  in.read(2);
  EXPECT_EQ(in.now().of(PsiResource::Cpu).some_delta_us, 250000u);
  EXPECT_EQ(in.now().of(PsiResource::Cpu).full_delta_us, 7u);
  EXPECT_DOUBLE_EQ(in.now().of(PsiResource::Cpu).psi.some.avg10, 2.0);
  nlohmann::json st = in.status();
  EXPECT_TRUE(st["io"].contains("error"));
  EXPECT_EQ(st["cpu"]["some_stall_us"], 250000);
  // A counter that went backwards (a cgroup recreated) is no stall.
  d.write("cpu", "some avg10=2.00 avg60=0 avg300=0 total=10\n");
  in.read(3);
  EXPECT_EQ(in.now().of(PsiResource::Cpu).some_delta_us, 0u);
}

// The files are kept open between reads (pread at 0): a rewrite is seen, a
// file that appears later is read, one that turns bad is an error that
// names it, and one that turns good again is read again.
TEST(Psi, KeptOpenFilesFollowTheirContent) {
  TempDir d;
  const PsiFiles f = PsiFiles::host(d.path);
  EXPECT_FALSE(f.read(PsiResource::Cpu));  // not there yet
  d.write("cpu", "some avg10=1.00 avg60=0 avg300=0 total=1000\n");
  auto a = f.read(PsiResource::Cpu);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->some.total_us, 1000u);
  d.write("cpu", "some avg10=1.00 avg60=0 avg300=0 total=123456789\n");
  auto b = f.read(PsiResource::Cpu);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->some.total_us, 123456789u);
  d.write("cpu", "garbage\n");
  auto c = f.read(PsiResource::Cpu);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find(d.path + "/cpu"), std::string::npos) << c.error().message;
  d.write("cpu", "some avg10=1.00 avg60=0 avg300=0 total=5\n");
  auto e = f.read(PsiResource::Cpu);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->some.total_us, 5u);
  const PsiFiles copy = f;  // a copy opens its own
  auto g = copy.read(PsiResource::Cpu);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->some.total_us, 5u);
}

TEST(PressureInputs, TriggersPerResourceAndOneThatErrsIsDropped) {
  TempDir d;
  d.write("cpu", "");
  d.write("memory", "");
  PressureInputs in(PsiFiles::host(d.path));
  in.arm();  // regular files here take the write; io is absent
  ASSERT_EQ(in.trigger_fds().size(), 2u);
  EXPECT_EQ(read_file(d.path + "/cpu").value(), std::string("some 200000 2000000") + '\0');  // with its NUL, as psi.rst writes it
  in.fired(in.trigger_fds().front(), false);
  EXPECT_EQ(in.status()["trigger_wakeups"], 1);
  in.fired(in.trigger_fds().front(), true);
  EXPECT_EQ(in.trigger_fds().size(), 1u);
}

TEST(HostUtil, Math) {
  HostUtil u = host_util(81.5, 8ull << 30, 2ull << 30, 1e6, 3e6);
  EXPECT_DOUBLE_EQ(u.cpu_pct, 81.5);
  EXPECT_DOUBLE_EQ(u.mem_used_pct, 75.0);
  EXPECT_DOUBLE_EQ(u.io_bps, 4e6);
  EXPECT_DOUBLE_EQ(host_util(150, 0, 0, -1, 0).cpu_pct, 100.0);
  EXPECT_DOUBLE_EQ(host_util(0, 0, 0, -1, 0).mem_used_pct, 0.0);  // no MemTotal: nothing known
  EXPECT_DOUBLE_EQ(host_util(0, 100, 200, 0, 0).mem_used_pct, 0.0);  // available above total
}

// ---- config ----

TEST(HostPressureConfig, BuiltInAndAddedRules) {
  auto c = parse_config(R"(
[rules.host_pressure]
resource = "io"
kind = "full"
threshold = 30
[[rule]]
name = "cpu_busy"
class = "host_pressure"
resource = "cpu"
kind = "used"
threshold = 80
resolve = 70
for = "30s"
)",
                        "t.toml");
  ASSERT_TRUE(c) << c.error().message;
  const RuleConfig* builtin = nullptr;
  const RuleConfig* added = nullptr;
  for (const RuleConfig& r : c->rules) {
    if (r.name == "host_pressure") builtin = &r;
    if (r.name == "cpu_busy") added = &r;
  }
  ASSERT_TRUE(builtin && added);
  EXPECT_EQ(builtin->pressure.resource, PressureRule::Resource::Io);
  EXPECT_EQ(builtin->pressure.kind, PressureRule::Kind::Full);
  EXPECT_EQ(builtin->threshold, 30);
  EXPECT_EQ(added->pressure.resource, PressureRule::Resource::Cpu);
  EXPECT_EQ(added->pressure.kind, PressureRule::Kind::Used);
  EXPECT_EQ(added->hold, 30s);
  // The default: memory, some avg10 >= 20 %.
  Config d = default_config();
  for (const RuleConfig& r : d.rules)
    if (r.cls == FaultClass::HostPressure) {
      EXPECT_EQ(r.pressure.resource, PressureRule::Resource::Memory);
      EXPECT_EQ(r.pressure.kind, PressureRule::Kind::Some);
      EXPECT_EQ(r.threshold, 20);
    }
}

TEST(HostPressureConfig, MistakesNameTheKey) {
  auto bad_kind = parse_config("[rules.host_pressure]\nkind = \"avg10\"\n", "t.toml");
  ASSERT_FALSE(bad_kind);
  EXPECT_NE(bad_kind.error().message.find("t.toml:2:8: \"kind\" must be"), std::string::npos)
      << bad_kind.error().message;
  auto bad_res = parse_config("[rules.host_pressure]\nresource = 3\n", "t.toml");
  ASSERT_FALSE(bad_res);
  EXPECT_NE(bad_res.error().message.find("\"resource\" must be \"cpu\", \"memory\" or \"io\" (got 3)"),
            std::string::npos)
      << bad_res.error().message;
  auto elsewhere = parse_config("[rules.cpu_runaway]\nresource = \"cpu\"\n", "t.toml");
  ASSERT_FALSE(elsewhere);
  EXPECT_NE(elsewhere.error().message.find("\"resource\" is a host_pressure rule's"), std::string::npos)
      << elsewhere.error().message;
}

// ---- the detector ----

RuleConfig host_rule(PressureRule::Resource res, PressureRule::Kind kind, double threshold, double resolve) {
  RuleConfig r = rule(FaultClass::HostPressure, threshold, resolve, 10s);
  r.name = "host_pressure";
  r.pressure = {res, kind};
  return r;
}

// The one finding of the last tick names `pid` for its use of `resource`.
void expect_blames(Sim& s, uint32_t pid, const char* resource) {
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(pid));
  EXPECT_EQ(s.findings[0].evidence["resource"], resource);
}

HostPressure memory_some(double avg10) {
  HostPressure p;
  ResourcePressure& m = p.psi[static_cast<size_t>(PsiResource::Memory)];
  m.ok = true;
  m.psi.some.avg10 = avg10;
  m.psi.some.total_us = 1000;
  return p;
}

TEST(HostPressureDetector, MemoryBlamesTheFaulterWithTheStalledVictims) {
  Sim s;
  HostPressure hp = memory_some(35);
  s.world.pressure = &hp;
  s.add(make_host_pressure(host_rule(PressureRule::Resource::Memory, PressureRule::Kind::Some, 20, 10)));
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.spawn(300, "idle");
  s.set_load(100, Load{.cores = 1, .rss_bytes = 5'000'000, .reclaim_ns = 30 * kMs, .page_faults = 1200});
  s.set_load(200, Load{.cores = 0.2, .reclaim_ns = 20 * kMs});
  s.set_load(300, Load{.cores = 0.01});
  s.run(11);
  ASSERT_EQ(s.findings.size(), 1u);
  const Finding& f = s.findings[0];
  EXPECT_TRUE(f.strong);
  EXPECT_EQ(f.culprit, s.key(100));
  EXPECT_EQ(f.victims, (std::vector<uint32_t>{200}));  // the culprit is not its own victim here
  EXPECT_EQ(f.evidence["metric"], "psi_memory_some_avg10");
  EXPECT_DOUBLE_EQ(f.evidence["value"].get<double>(), 35);
  EXPECT_EQ(f.evidence["resource"], "memory_churn_pages");
  EXPECT_EQ(f.evidence["pressure_resource"], "memory");
  EXPECT_DOUBLE_EQ(f.evidence["psi"]["some"]["avg10"].get<double>(), 35);
  EXPECT_NEAR(f.evidence["victims"][0]["stall_share"].get<double>(), 0.2, 0.01);

  hp = memory_some(15);  // between resolve and threshold: keeps an open fault open
  s.tick();
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_FALSE(s.findings[0].strong);
  hp = memory_some(5);
  s.tick();
  EXPECT_TRUE(s.findings.empty());
}

TEST(HostPressureDetector, AThrasherWhoseRssStaysFlatIsBlamedOverASlowGrower) {
  Sim s;
  HostPressure hp = memory_some(50);
  s.world.pressure = &hp;
  s.add(make_host_pressure(host_rule(PressureRule::Resource::Memory, PressureRule::Kind::Some, 20, 10)));
  s.spawn(100, "thrasher");
  s.spawn(200, "web");
  s.set_load(100, Load{.cores = 1, .page_faults = 5000});
  s.set_load(200, Load{.cores = 0.2, .rss_bytes = 40960, .reclaim_ns = 5 * kMs, .page_faults = 10});
  s.run(2);
  expect_blames(s, 100, "memory_churn_pages");
}

TEST(HostPressureDetector, AReaderOfEvictedPagesIsBlamedOverAFaultingCompiler) {
  // The thrasher's refaults come 16 pages a fault (fault-around) but every page is read again.
  Sim s;
  HostPressure hp = memory_some(30);
  s.world.pressure = &hp;
  s.add(make_host_pressure(host_rule(PressureRule::Resource::Memory, PressureRule::Kind::Some, 20, 10)));
  s.spawn(100, "thrasher");
  s.spawn(200, "cc1plus");
  s.set_load(100, Load{.cores = 0.5, .page_faults = 500});
  s.proc(100).io_read_bytes = 0;
  s.set_load(200, Load{.cores = 1, .page_faults = 2000});
  for (int i = 0; i < 20; ++i) {
    s.proc(100).io_read_bytes += 20 << 20;  // 20 MiB a tick: 5120 pages
    s.tick();
  }
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(100));
}

TEST(HostPressureDetector, CpuUtilisationBlamesTheTopConsumerAndTheRunQueueWaiters) {
  Sim s;
  HostPressure hp;
  hp.util = HostUtil{92, 40, 0};
  s.world.pressure = &hp;
  s.add(make_host_pressure(host_rule(PressureRule::Resource::Cpu, PressureRule::Kind::Used, 80, 70)));
  s.spawn(100, "burner");
  s.spawn(200, "web");
  s.set_load(100, Load{.cores = 3.5});
  s.set_load(200, Load{.cores = 0.3, .runq_waits = 10, .runq_wait_ns = 2 * kMs});
  s.run(3);
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(100));
  EXPECT_EQ(s.findings[0].victims, (std::vector<uint32_t>{200}));
  EXPECT_EQ(s.findings[0].evidence["metric"], "cpu_used_pct");  // cpu: CPU time
  EXPECT_EQ(s.findings[0].evidence["resource"], "cpu_ns");
  hp.util->cpu_pct = 50;
  s.tick();
  EXPECT_TRUE(s.findings.empty());
}

TEST(HostPressureDetector, NothingWithoutAReading) {
  Sim s;
  s.add(make_host_pressure(host_rule(PressureRule::Resource::Io, PressureRule::Kind::Full, 1, 0)));
  s.spawn(100, "dd");
  s.set_load(100, Load{.cores = 1, .io_bytes = 100 << 20});
  s.run(2);  // no HostPressure at all
  EXPECT_TRUE(s.findings.empty());
  HostPressure hp;  // io unreadable (PSI absent)
  hp.psi[static_cast<size_t>(PsiResource::Io)].error = "cannot open /proc/pressure/io";
  s.world.pressure = &hp;
  s.run(1);
  EXPECT_TRUE(s.findings.empty());
  hp.psi[static_cast<size_t>(PsiResource::Io)].ok = true;  // readable, but no "full" line
  s.run(1);
  EXPECT_TRUE(s.findings.empty());
  hp.psi[static_cast<size_t>(PsiResource::Io)].psi.full = PsiLine{9, 0, 0, 100};
  s.run(1);
  expect_blames(s, 100, "io_bytes");
}

TEST(HostPressureDetector, KeepsItsCulpritWhileItStillUsesHalfAsMuch) {
  Sim s;
  HostPressure hp;
  hp.util = HostUtil{95, 0, 0};
  s.world.pressure = &hp;
  s.add(make_host_pressure(host_rule(PressureRule::Resource::Cpu, PressureRule::Kind::Used, 80, 70)));
  s.spawn(100, "a");
  s.spawn(200, "b");
  s.set_load(100, Load{.cores = 2});
  s.set_load(200, Load{.cores = 1});
  s.run(11);
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(100));
  s.set_load(100, Load{.cores = 1});
  s.set_load(200, Load{.cores = 1.8});
  s.run(11);
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(100));  // 1 core against 1.8: still named
  s.set_load(100, Load{.cores = 0.2});
  s.run(11);
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(200));
}

}  // namespace
}  // namespace fp
