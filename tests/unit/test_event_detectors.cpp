#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "detect/detectors.h"
#include "detect/engine.h"
#include "synthetic.h"

namespace fp {
namespace {

using namespace synthetic;

using namespace std::chrono_literals;

constexpr uint32_t kSelf = 777;



uint32_t by_signal(int sig, bool core = true) { return static_cast<uint32_t>(sig) | (core ? 0x80u : 0u); }


RuleConfig rule(FaultClass cls, const char* name) {
  RuleConfig r;
  r.name = name;
  r.cls = cls;
  r.severity = Severity::Critical;
  r.window = 10s;
  r.clear = 10s;
  return r;
}

// A table, the events of the current tick and a World over them.
struct Bench {
  ProcessTable table;
  FakeInfos infos;
  EventBatch events;
  // Every process runs the program it is named after (a trusted
  // /usr/bin/<comm>); a test overrides exe_of for a pretender.
  std::function<std::optional<ExeIdentity>(const ProcKey&)> exe_of = [this](const ProcKey& k)
      -> std::optional<ExeIdentity> {
    const ProcState* s = table.find(k);
    if (s == nullptr) return std::nullopt;
    return ExeIdentity{"/usr/bin/" + s->comm, true};
  };
  Protection protection{{"sshd"}, [this](const ProcKey& k) { return exe_of(k); }};
  uint64_t now = kT0;

  World world() {
    World w;
    w.now_ns = now;
    w.tick_ns = kTick;
    w.procs = &table;
    w.events = &events;
    w.infos = &infos;
    w.self_tgid = kSelf;
    w.protection = &protection;
    return w;
  }
  // Runs one tick of `d`: feeds the updates and exits to the table first, as the engine does.
  std::vector<Finding> tick(Detector& d, const std::vector<fp_proc>& updates = {}) {
    for (const fp_proc& p : updates) table.update(now, p);
    for (const ExitRecord& e : events.exits) table.exited(now, e);
    std::vector<Finding> out;
    d.evaluate(world(), out);
    table.end_tick(now);
    events.clear();
    now += kTick;
    return out;
  }
};

// ---- crash ----

TEST(CrashDetector, CoreDumpingSignalIsACrash) {
  Bench b;
  auto d = make_crash(rule(FaultClass::Crash, "crash"));
  fp_proc p = proc(100, 1, "server");
  p.fatal_signals = 1;
  b.tick(*d, {p});
  b.events.exits.push_back(exit_of(p, b.now - kMs, by_signal(SIGSEGV)));
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit, (ProcKey{100, 1}));
  EXPECT_TRUE(out[0].immediate);
  EXPECT_TRUE(out[0].strong);
  EXPECT_EQ(out[0].evidence["signal"], SIGSEGV);
  EXPECT_EQ(out[0].evidence["signal_name"], "SIGSEGV");
  EXPECT_EQ(out[0].evidence["core_dumped"], true);
  EXPECT_EQ(out[0].evidence["exit_code"], by_signal(SIGSEGV));
  EXPECT_EQ(out[0].evidence["fatal_signals"], 1);
  // Once: the tracker holds it open for the clear period.
  EXPECT_TRUE(b.tick(*d).empty());
}

TEST(CrashDetector, EverySignalOfTheClass) {
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP}) {
    Bench b;
    auto d = make_crash(rule(FaultClass::Crash, "crash"));
    b.events.exits.push_back(exit_of(proc(100, 1), b.now, by_signal(sig, false)));
    auto out = b.tick(*d);
    ASSERT_EQ(out.size(), 1u) << sig;
    EXPECT_EQ(out[0].evidence["core_dumped"], false);
  }
}

TEST(CrashDetector, OtherExitsAreNot) {
  Bench b;
  auto d = make_crash(rule(FaultClass::Crash, "crash"));
  b.events.exits.push_back(exit_of(proc(100, 1), b.now, 0));              // exit(0)
  b.events.exits.push_back(exit_of(proc(101, 1), b.now, 1u << 8));        // exit(1)
  b.events.exits.push_back(exit_of(proc(102, 1), b.now, SIGKILL));        // killed
  b.events.exits.push_back(exit_of(proc(103, 1), b.now, SIGTERM));        // asked to stop
  b.events.exits.push_back(exit_of(proc(104, 1), b.now, by_signal(SIGQUIT)));  // asked for a core
  EXPECT_TRUE(b.tick(*d).empty());
}

TEST(CrashDetector, NeverBlamesProtectedProcesses) {
  Bench b;
  auto d = make_crash(rule(FaultClass::Crash, "crash"));
  fp_proc kthread = proc(50, 1, "kworker/0:1");
  kthread.flags |= FP_PROC_KTHREAD;
  for (const fp_proc& p : {proc(1, 1, "systemd"), proc(kSelf, 1, "faultprobed"), kthread}) {
    b.events.exits.push_back(exit_of(p, b.now, by_signal(SIGSEGV)));
  }
  EXPECT_TRUE(b.tick(*d).empty());
  // A name in protected_comms is no shield once the process is gone: its
  // executable cannot be checked, so its crash is reported.
  b.events.exits.push_back(exit_of(proc(60, 1, "sshd"), b.now, by_signal(SIGSEGV)));
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit.tgid, 60u);
}

TEST(CrashDetector, RespectsTheRuleMatch) {
  Bench b;
  RuleConfig r = rule(FaultClass::Crash, "batch-crash");
  r.match.comm = "batch-*";
  r.match.cgroup = "/batch/*";
  auto d = make_crash(r);
  b.infos.set(100, "batch-7", "/opt/batch/run", "/batch/job7");
  b.infos.set(101, "batch-8", "/opt/batch/run", "/system.slice/other.service");
  b.events.exits.push_back(exit_of(proc(100, 1, "batch-7"), b.now, by_signal(SIGABRT)));
  b.events.exits.push_back(exit_of(proc(101, 1, "batch-8"), b.now, by_signal(SIGABRT)));  // other cgroup
  b.events.exits.push_back(exit_of(proc(102, 1, "server"), b.now, by_signal(SIGABRT)));   // other comm
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit.tgid, 100u);
}

// ---- rule_matches / may_blame ----

TEST(RuleMatches, EveryFieldThatIsSet) {
  Bench b;
  b.infos.set(100, "nginx", "/usr/sbin/nginx", "/system.slice/nginx.service", 33);
  b.table.update(b.now, proc(100, 1, "nginx"));
  const ProcState& s = *b.table.find_pid(100);
  World w = b.world();
  RuleConfig r;
  EXPECT_TRUE(rule_matches(r, s, w));  // empty match: everything
  r.match.comm = "ng*";
  r.match.exe = "/usr/sbin/*";
  r.match.cgroup = "/system.slice/*";
  r.match.unit = "nginx.service";
  r.match.uid = 33;
  EXPECT_TRUE(rule_matches(r, s, w));
  RuleConfig bad = r;
  bad.match.uid = 0;
  EXPECT_FALSE(rule_matches(bad, s, w));
  bad = r;
  bad.match.unit = "apache*";
  EXPECT_FALSE(rule_matches(bad, s, w));
  bad = r;
  bad.match.exe = "/opt/*";
  EXPECT_FALSE(rule_matches(bad, s, w));
  bad = r;
  bad.match.comm = "apache";
  EXPECT_FALSE(rule_matches(bad, s, w));
  // Unknown to /proc: only a comm-only match can still match.
  b.table.update(b.now, proc(200, 1, "nginx"));
  const ProcState& unknown = *b.table.find_pid(200);
  EXPECT_FALSE(rule_matches(r, unknown, w));
  RuleConfig comm_only;
  comm_only.match.comm = "nginx";
  EXPECT_TRUE(rule_matches(comm_only, unknown, w));
}

TEST(RuleMatches, AUnitGlobNamesSystemUnitsOnly) {
  // A user can call a group of their own tree "nginx.service".
  Bench b;
  b.infos.set(100, "nginx", "/usr/sbin/nginx",
              "/user.slice/user-1000.slice/user@1000.service/app.slice/nginx.service", 1000);
  b.table.update(b.now, proc(100, 1, "nginx"));
  RuleConfig r;
  r.match.unit = "nginx.service";
  EXPECT_FALSE(rule_matches(r, *b.table.find_pid(100), b.world()));
  r.match.unit = "*";
  EXPECT_FALSE(rule_matches(r, *b.table.find_pid(100), b.world()));
}

TEST(MayBlame, ProtectedProcesses) {
  Bench b;
  fp_proc kthread = proc(50, 1, "kworker/0:1");
  kthread.flags |= FP_PROC_KTHREAD;
  for (const fp_proc& p : {proc(1, 1, "systemd"), proc(kSelf, 1, "faultprobed"), kthread, proc(60, 1, "sshd"),
                           proc(70, 1, "worker")}) {
    b.table.update(b.now, p);
  }
  World w = b.world();
  EXPECT_FALSE(may_blame(*b.table.find_pid(1), w));
  EXPECT_FALSE(may_blame(*b.table.find_pid(kSelf), w));
  EXPECT_FALSE(may_blame(*b.table.find_pid(50), w));
  EXPECT_FALSE(may_blame(*b.table.find_pid(60), w));
  EXPECT_TRUE(may_blame(*b.table.find_pid(70), w));
}

// ---- crash_loop ----

TEST(CrashLoopDetector, CountsCrashesOfOneServiceInTheWindow) {
  Bench b;
  RuleConfig r = rule(FaultClass::CrashLoop, "crash_loop");
  r.window = 60s;
  r.count = 3;
  auto d = make_crash_loop(r);
  uint32_t pid = 100;
  auto crash = [&](const char* comm) {
    b.infos.set(pid, comm, "/usr/bin/app", "/system.slice/app.service");
    fp_proc p = proc(pid, pid, comm);
    b.tick(*d, {p});  // seen alive, so /proc was read while it lived
    b.events.exits.push_back(exit_of(p, b.now, by_signal(SIGSEGV)));
    ++pid;
    return b.tick(*d);
  };
  EXPECT_TRUE(crash("app").empty());
  EXPECT_TRUE(crash("other").empty());  // another service
  for (int i = 0; i < 50; ++i) b.tick(*d);
  EXPECT_TRUE(crash("app").empty());
  auto out = crash("app");  // the third crash of app in 60 s
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].immediate);
  ProcKey culprit = out[0].culprit;
  EXPECT_EQ(culprit.tgid, pid - 1);
  EXPECT_EQ(out[0].evidence["crashes"], 3);
  EXPECT_EQ(out[0].evidence["pids"], nlohmann::json::array({100, 102, 103}));
  // It goes on: the same culprit (one fault per loop), more crashes.
  out = crash("app");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit, culprit);
  EXPECT_EQ(out[0].evidence["crashes"], 4);
  // Reported every tick while the window holds enough crashes...
  EXPECT_EQ(b.tick(*d).size(), 1u);
  // ...and not once they age out.
  for (int i = 0; i < 600; ++i) b.tick(*d);
  EXPECT_TRUE(b.tick(*d).empty());
}

// ---- oom_kill ----

TEST(OomKillDetector, VictimEvent) {
  Bench b;
  auto d = make_oom_kill(rule(FaultClass::OomKill, "oom_kill"));
  fp_proc p = proc(100, 1, "hog");
  b.tick(*d, {p});
  OomRecord o;
  o.ts_ns = b.now;
  o.victim = key_of(p);
  o.comm = "hog";
  o.total_vm_kb = 8'000'000;
  o.anon_rss_kb = 7'000'000;
  b.events.ooms.push_back(o);
  // The probe's mark shows in the same tick: still one finding.
  p.oom_victim = 1;
  auto out = b.tick(*d, {p});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit, key_of(p));
  EXPECT_TRUE(out[0].immediate);
  EXPECT_EQ(out[0].evidence["total_vm_kb"], 8'000'000);
  EXPECT_EQ(out[0].evidence["anon_rss_kb"], 7'000'000);
  EXPECT_TRUE(b.tick(*d).empty());
}

// The kernel marked a thread that is not the leader: the process is the
// culprit, the thread and how it was mapped are in the evidence.
TEST(OomKillDetector, ThreadVictimIsItsProcess) {
  Bench b;
  auto d = make_oom_kill(rule(FaultClass::OomKill, "oom_kill"));
  fp_proc p = proc(100, 1, "worker-pool");
  b.tick(*d, {p});
  OomRecord o;
  o.ts_ns = b.now;
  o.victim = key_of(p);
  o.comm = "worker-pool";
  o.tid = 107;
  o.tgid_from = FP_OOM_TGID_SIGKILL;
  b.events.ooms.push_back(o);
  auto out = b.tick(*d, {p});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit, key_of(p));
  EXPECT_EQ(out[0].evidence["tid"], 107);
  EXPECT_EQ(out[0].evidence["tgid_from"], "sigkill");
}

TEST(OomKillDetector, CounterWhenTheEventWasDropped) {
  Bench b;
  auto d = make_oom_kill(rule(FaultClass::OomKill, "oom_kill"));
  fp_proc p = proc(100, 1, "hog");
  b.tick(*d, {p});
  p.oom_victim = 1;
  auto out = b.tick(*d, {p});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].evidence["source"], "counter");
  EXPECT_TRUE(b.tick(*d).empty());
  // A protected victim is not blamed.
  fp_proc sshd = proc(60, 1, "sshd");
  b.tick(*d, {sshd});
  sshd.oom_victim = 1;
  EXPECT_TRUE(b.tick(*d, {sshd}).empty());
}

// ---- io_error ----

TEST(IoErrorDetector, ErrorsInTheWindow) {
  Bench b;
  auto d = make_io_error(rule(FaultClass::IoError, "io_error"));  // window 10 s
  fp_proc p = proc(100, 1, "dd");
  p.io_read_reqs = 10;
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(b.tick(*d, {p}).empty());
  p.io_errors = 2;
  p.io_read_reqs = 12;
  p.io_dev = (253u << 20) | 3;  // the failing device
  auto out = b.tick(*d, {p});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].immediate);
  EXPECT_EQ(out[0].evidence["io_errors"], 2);
  EXPECT_EQ(out[0].evidence["device"], "253:3");
  // Reported while the errors are inside the window, then no more.
  size_t ticks_reported = 0;
  for (int i = 0; i < 150; ++i) ticks_reported += b.tick(*d).size();
  EXPECT_GE(ticks_reported, 99u);
  EXPECT_LE(ticks_reported, 101u);
}

TEST(IoErrorDetector, ShortLivedProcessSeenOnlyAtExit) {
  Bench b;
  auto d = make_io_error(rule(FaultClass::IoError, "io_error"));
  fp_proc p = proc(100, 1, "dd");
  p.first_seen_ns = b.now - 30 * kMs;
  p.io_errors = 1;
  b.events.exits.push_back(exit_of(p, b.now - kMs, 1u << 8));
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit, key_of(p));
}

// ---- hang ----

TEST(HangDetector, LongUninterruptibleSleep) {
  Bench b;
  RuleConfig r = rule(FaultClass::Hang, "hang");
  r.threshold = 20;
  r.severity = Severity::Warning;
  auto d = make_hang(r);
  fp_proc p = proc(100, 1, "fsck");
  b.tick(*d, {p});
  p.dstate_since_ns = b.now - 10 * kMs;
  p.dstate_active = 1;
  auto out = b.tick(*d, {p});
  // Asleep but not long yet: only a weak finding (keeps an open one open).
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].strong);
  // No slot changes while it is stuck; after 20 s it is strong.
  for (int i = 0; i < 199; ++i) b.tick(*d);
  out = b.tick(*d);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].strong);
  EXPECT_FALSE(out[0].immediate);
  EXPECT_GE(out[0].evidence["dstate_s"].get<double>(), 20.0);
  // It wakes up: nothing.
  p.dstate_since_ns = 0;
  p.dstate_ns = 20 * kSec;
  EXPECT_TRUE(b.tick(*d, {p}).empty());
}

TEST(HangDetector, KernelHungTaskEventIsCritical) {
  Bench b;
  RuleConfig r = rule(FaultClass::Hang, "hang");
  r.threshold = 20;
  r.severity = Severity::Warning;
  auto d = make_hang(r);
  fp_proc p = proc(100, 1, "stuck");
  p.dstate_since_ns = b.now - 120 * kSec;
  b.tick(*d, {p});
  HangRecord h;
  h.ts_ns = b.now;
  h.proc = key_of(p);
  h.comm = "stuck";
  h.tid = 101;
  h.dstate_since_ns = p.dstate_since_ns;
  b.events.hangs.push_back(h);
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 1u);  // the event and the D-state are one finding
  EXPECT_TRUE(out[0].immediate);
  EXPECT_EQ(out[0].severity, Severity::Critical);
  EXPECT_EQ(out[0].evidence["tid"], 101);
  EXPECT_EQ(out[0].evidence["source"], "hung_task");
  // A kernel thread stuck in D is never blamed.
  fp_proc k = proc(50, 1, "jbd2/sda1-8");
  k.flags |= FP_PROC_KTHREAD;
  k.dstate_since_ns = b.now - 60 * kSec;
  out = b.tick(*d, {k});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit.tgid, 100u);
}

// ---- cgroup names ----

TEST(CgroupNames, UnitAndContainer) {
  const std::string id(64, 'a');
  const std::string id2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  EXPECT_EQ(unit_of_cgroup("/system.slice/nginx.service"), "nginx.service");
  EXPECT_EQ(unit_of_cgroup("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.scope"), "foo.scope");
  EXPECT_EQ(unit_of_cgroup("/batch/job7"), "");
  EXPECT_EQ(unit_of_cgroup("/"), "");
  EXPECT_EQ(container_of_cgroup("/system.slice/docker-" + id + ".scope"), id);
  EXPECT_EQ(container_of_cgroup("/docker/" + id2), id2);
  EXPECT_EQ(container_of_cgroup("/kubepods.slice/kubepods-pod1.slice/cri-containerd-" + id2 + ".scope"), id2);
  EXPECT_EQ(container_of_cgroup("/machine.slice/libpod-" + id2 + ".scope/container"), id2);
  EXPECT_EQ(container_of_cgroup("/system.slice/nginx.service"), "");
  EXPECT_EQ(container_of_cgroup("/x/" + id + "a"), "");  // 65 digits: not an id
}

}  // namespace
}  // namespace fp
