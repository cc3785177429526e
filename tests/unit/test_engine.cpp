#include "detect/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>
#include "synthetic.h"

namespace fp {
namespace {

using namespace synthetic;

using namespace std::chrono_literals;

constexpr uint32_t kSelf = 777;
const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";




RuleConfig rule(FaultClass cls, const char* name, std::chrono::nanoseconds clear) {
  RuleConfig r;
  r.name = name;
  r.cls = cls;
  r.severity = Severity::Critical;
  r.window = 10s;
  r.clear = clear;
  return r;
}

Config config() {
  Config c;
  c.sample_interval = 100ms;
  c.rules.push_back(rule(FaultClass::Crash, "crash", 10s));
  c.rules.push_back(rule(FaultClass::IoError, "io_error", 30s));
  RuleConfig hang = rule(FaultClass::Hang, "hang", 0s);
  hang.threshold = 20;
  hang.severity = Severity::Warning;
  c.rules.push_back(hang);
  c.protected_comms = {"sshd"};
  return c;
}

// An engine fed tick by tick; every record it emits is kept. Processes live
// in a slot array, named by index as the probe names them.
struct Rig {
  FakeInfos infos;
  Engine engine;
  uint64_t now = kT0;
  std::vector<FaultRecord> all;
  std::vector<fp_proc> slots = std::vector<fp_proc>(256);  // never resized
  std::map<ProcKey, size_t> slot_of;
  std::vector<size_t> freed;  // slots to report as changed (now free) at the next tick

  explicit Rig(Config c = config()) : engine(std::move(c), HostInfo{4, 8ull << 30, 4096}, infos, kSelf) {
    // Every process runs the program it is named after (a trusted /usr/bin/<comm>).
    engine.set_exe_lookup([this](const ProcKey& k) -> std::optional<ExeIdentity> {
      const ProcState* s = engine.table().find(k);
      if (s == nullptr) return std::nullopt;
      return ExeIdentity{"/usr/bin/" + s->comm, true};
    });
  }

  size_t slot_for(const ProcKey& k) {
    auto it = slot_of.find(k);
    if (it != slot_of.end()) return it->second;
    size_t i = 0;
    while (slots[i].tgid != 0 || std::any_of(freed.begin(), freed.end(), [&](size_t f) { return f == i; })) ++i;
    slot_of[k] = i;
    return i;
  }
  // The probe frees a process's slot (the process exited).
  void free_slot(const ProcKey& k) {
    size_t i = slot_of.at(k);
    slots[i] = fp_proc{};
    slot_of.erase(k);
    freed.push_back(i);
  }
  // The probe gives a freed slot straight to a new process (both within one refresh).
  void reuse_slot(const ProcKey& old_key, const fp_proc& p) {
    size_t i = slot_of.at(old_key);
    slot_of.erase(old_key);
    slot_of[key_of(p)] = i;
  }

  std::vector<FaultRecord> tick(const std::vector<fp_proc>& changed = {}, const EventBatch& events = {}) {
    std::vector<SlotChange> ptrs;
    for (size_t i : freed) ptrs.push_back({uint32_t(i), &slots[i]});
    freed.clear();
    for (const fp_proc& p : changed) {
      size_t i = slot_for(key_of(p));
      slots[i] = p;
      ptrs.push_back({uint32_t(i), &slots[i]});
    }
    auto out = engine.tick(now, ptrs, events);
    all.insert(all.end(), out.begin(), out.end());
    now += kTick;
    return out;
  }
  size_t ticks(int n, const std::vector<fp_proc>& changed = {}) {
    size_t records = 0;
    for (int i = 0; i < n; ++i) records += tick(changed).size();
    return records;
  }
  EventBatch crash_of(const fp_proc& p, int sig = SIGSEGV) const {
    EventBatch ev;
    ev.exits.push_back(exit_of(p, now - kMs, static_cast<uint32_t>(sig) | 0x80u));
    return ev;
  }
};

TEST(Engine, CrashIsOneFaultThenResolvedAfterClear) {
  Rig rig;
  rig.infos.set(100, "server", "/system.slice/docker-" + kId + ".scope");
  fp_proc p = proc(100, 1, "server");
  for (int i = 0; i < 10; ++i) {
    p.cpu_ns += 10 * kMs;
    EXPECT_TRUE(rig.tick({p}).empty());
  }
  uint64_t crashed_at = rig.now;
  auto out = rig.tick({}, rig.crash_of(p));
  ASSERT_EQ(out.size(), 1u);
  const FaultRecord& f = out[0];
  EXPECT_EQ(f.kind, FaultRecord::Kind::Fault);
  EXPECT_EQ(f.cls, FaultClass::Crash);
  EXPECT_EQ(f.rule, "crash");
  EXPECT_EQ(f.severity, Severity::Critical);
  EXPECT_EQ(f.culprit, (ProcKey{100, 1}));
  EXPECT_EQ(f.comm, "server");
  EXPECT_EQ(f.cgroup, "/system.slice/docker-" + kId + ".scope");
  EXPECT_EQ(f.unit, "docker-" + kId + ".scope");
  EXPECT_EQ(f.container, kId);
  EXPECT_EQ(f.evidence["signal_name"], "SIGSEGV");
  EXPECT_EQ(f.mono_ns, crashed_at);
  EXPECT_EQ(rig.engine.open_faults().size(), 1u);
  EXPECT_EQ(rig.engine.table().find({100, 1}), nullptr);  // gone from the table after the tick

  EXPECT_EQ(rig.ticks(99), 0u);
  out = rig.tick();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(out[0].culprit, (ProcKey{100, 1}));
  EXPECT_EQ(out[0].mono_ns - out[0].opened_mono_ns, 10 * kSec);
  EXPECT_EQ(out[0].comm, "server");
  EXPECT_EQ(out[0].container, kId);
  EXPECT_EQ(rig.ticks(100), 0u);
  EXPECT_EQ(rig.all.size(), 2u);
  EXPECT_TRUE(rig.engine.open_faults().empty());

  auto j = fault_to_json(rig.all[1], 1795680000ull * kSec);
  EXPECT_EQ(j["kind"], "resolved");
  EXPECT_EQ(j["duration_ms"], 10000u);
}

TEST(Engine, NeverBlamesInitSelfKernelThreadsOrProtected) {
  Rig rig;
  fp_proc init = proc(1, 1, "systemd");
  fp_proc self = proc(kSelf, 1, "faultprobed");
  fp_proc kthread = proc(50, 1, "kworker/u8:2");
  kthread.flags |= FP_PROC_KTHREAD;
  fp_proc sshd = proc(60, 1, "sshd");
  std::vector<fp_proc> all{init, self, kthread, sshd};
  rig.tick(all);
  // Every one of them: in D for a minute, IO errors, then a crash.
  for (fp_proc& p : all) {
    p.dstate_since_ns = rig.now - 60 * kSec;
    p.io_errors = 3;
  }
  EXPECT_EQ(rig.ticks(300, all), 0u);
  // Gone, a process named like a protected one cannot show that it ran that
  // program (a renamed crasher would hide behind the name): its crash is
  // reported and says so. The others stay out.
  EventBatch ev;
  for (const fp_proc& p : all) ev.exits.push_back(exit_of(p, rig.now, SIGSEGV | 0x80u));
  auto crash = rig.tick({}, ev);
  ASSERT_EQ(crash.size(), 1u);
  EXPECT_EQ(crash[0].culprit.tgid, 60u);
  EXPECT_NE(crash[0].evidence.value("not_protected", "").find("cannot be checked"), std::string::npos)
      << crash[0].evidence.dump();
  rig.ticks(100);
  for (const auto& r : rig.all) EXPECT_EQ(r.culprit.tgid, 60u);
}

// Issue 15 item 8: a live process named like a protected one, whose
// executable is not that program's, is blamed like any other.
TEST(Engine, ANameAloneDoesNotProtect) {
  Rig rig;
  rig.engine.set_exe_lookup([](const ProcKey& k) -> std::optional<ExeIdentity> {
    if (k.tgid == 61) return ExeIdentity{"/tmp/x/sshd", false};  // a copy where anyone writes
    if (k.tgid == 62) return ExeIdentity{"/usr/bin/python3.11", true};  // renamed itself (prctl)
    return ExeIdentity{"/usr/sbin/sshd", true};
  });
  std::vector<fp_proc> all{proc(60, 1, "sshd"), proc(61, 1, "sshd"), proc(62, 1, "sshd")};
  rig.tick(all);
  for (fp_proc& p : all) p.dstate_since_ns = rig.now - 60 * kSec;
  rig.ticks(10, all);
  std::set<uint32_t> hung;
  for (const auto& r : rig.all)
    if (r.cls == FaultClass::Hang) {
      hung.insert(r.culprit.tgid);
      EXPECT_NE(r.evidence.value("not_protected", "").find("is not that program"), std::string::npos)
          << r.evidence.dump();
    }
  EXPECT_EQ(hung, (std::set<uint32_t>{61, 62}));
}

TEST(Engine, ReloadKeepsFaultsOfRulesThatStay) {
  Rig rig;
  fp_proc p = proc(100, 1, "dd");
  rig.tick({p});
  p.io_errors = 1;
  auto out = rig.tick({p});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].rule, "io_error");

  rig.engine.reload(config());  // same rules
  EXPECT_EQ(rig.ticks(5, {p}), 0u);
  EXPECT_EQ(rig.engine.open_faults().size(), 1u);

  Config c = config();
  c.rules[0].threshold = 5;  // another rule changed: no effect on this fault
  rig.engine.reload(c);
  EXPECT_EQ(rig.ticks(5, {p}), 0u);
  EXPECT_EQ(rig.engine.open_faults().size(), 1u);
}

TEST(Engine, ReloadResolvesFaultsOfRemovedOrDisabledRules) {
  for (bool disable : {false, true}) {
    Rig rig;
    fp_proc p = proc(100, 1, "dd");
    rig.tick({p});
    p.io_errors = 1;
    ASSERT_EQ(rig.tick({p}).size(), 1u);
    Config c = config();
    if (disable) {
      c.rules[1].enabled = false;
    } else {
      c.rules.erase(c.rules.begin() + 1);
    }
    rig.engine.reload(c);
    uint64_t at = rig.now;
    auto out = rig.tick({p});
    ASSERT_EQ(out.size(), 1u) << disable;
    EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
    EXPECT_EQ(out[0].rule, "io_error");
    EXPECT_EQ(out[0].evidence["reason"], "rule removed");
    EXPECT_EQ(out[0].mono_ns, at);
    EXPECT_TRUE(rig.engine.open_faults().empty());
    EXPECT_EQ(rig.ticks(10, {p}), 0u);
  }
}

TEST(Engine, PidReuseNeverPinsAFaultOnTheNewProcess) {
  Rig rig;
  // A is stuck in D; the hang opens on A.
  fp_proc a = proc(100, 1, "old");
  a.dstate_since_ns = rig.now - 10 * kSec;
  a.io_errors = 0;
  rig.tick({a});
  EXPECT_EQ(rig.ticks(99), 0u);
  auto out = rig.tick();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].rule, "hang");
  EXPECT_EQ(out[0].culprit, (ProcKey{100, 1}));

  // A vanishes without an exit event (ring buffer full) and B takes its pid,
  // with nothing wrong. A's fault resolves; B is never blamed.
  fp_proc b = proc(100, 2, "new");
  rig.infos.set(100, "new", "/system.slice/new.service");
  out = rig.tick({b});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(out[0].culprit, (ProcKey{100, 1}));
  EXPECT_EQ(out[0].comm, "old");
  EXPECT_EQ(out[0].evidence["reason"], "process exited");
  EXPECT_EQ(rig.ticks(300, {b}), 0u);

  // A's exit event arrives late, a crash: the fault is A's, and /proc (now
  // B's) does not lend A B's cgroup.
  out = rig.tick({}, rig.crash_of(a));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit, (ProcKey{100, 1}));
  EXPECT_EQ(out[0].comm, "old");
  EXPECT_EQ(out[0].cgroup, "");
  EXPECT_EQ(rig.engine.table().find_pid(100)->key, (ProcKey{100, 2}));
}

TEST(Engine, ProcessVanishingMidWindow) {
  Rig rig;
  // A had IO errors and exits normally in the middle of the io_error window.
  fp_proc a = proc(100, 1, "dd");
  rig.tick({a});
  a.io_errors = 4;
  auto out = rig.tick({a});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit, (ProcKey{100, 1}));
  EventBatch ev;
  ev.exits.push_back(exit_of(a, rig.now, 0));
  out = rig.tick({}, ev);  // resolved at the tick that saw it exit
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(out[0].evidence["reason"], "process exited");
  // The pid comes back as a healthy process within the old window: no fault.
  fp_proc b = proc(100, 9, "dd");
  EXPECT_EQ(rig.ticks(200, {b}), 0u);
  EXPECT_EQ(rig.all.size(), 2u);
}

TEST(Engine, HangEventRaisesSeverityAndResolvesOnWake) {
  Rig rig;
  fp_proc p = proc(100, 1, "stuck");
  p.dstate_since_ns = rig.now - 150 * kSec;
  // Long in D already: the D-state finding opens it as a warning at once (hold 0).
  auto out = rig.tick({p});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].severity, Severity::Warning);
  EventBatch ev;
  HangRecord h;
  h.ts_ns = rig.now;
  h.proc = key_of(p);
  h.tid = 100;
  h.dstate_since_ns = p.dstate_since_ns;
  ev.hangs.push_back(h);
  EXPECT_TRUE(rig.tick({}, ev).empty());  // already open: no repeat
  p.dstate_since_ns = 0;
  p.dstate_ns = 151 * kSec;
  out = rig.tick({p});  // awake: clear is 0
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
}

TEST(Engine, LostExitEventFreedSlotEndsTheFault) {
  for (bool reused : {false, true}) {
    Rig rig;
    fp_proc a = proc(100, 1, "stuck");
    a.dstate_since_ns = rig.now - 30 * kSec;
    auto out = rig.tick({a});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].rule, "hang");
    // A exits but its exit event is lost; its last copy still says "in D".
    fp_proc b = proc(300, 5, "fresh");
    if (reused) {
      rig.reuse_slot(key_of(a), b);  // the slot went straight to another process
      out = rig.tick({b});
    } else {
      rig.free_slot(key_of(a));
      out = rig.tick();
    }
    ASSERT_EQ(out.size(), 1u) << reused;
    EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
    EXPECT_EQ(out[0].evidence["reason"], "process exited");
    EXPECT_EQ(rig.engine.table().find(key_of(a)), nullptr);
    EXPECT_EQ(rig.ticks(300), 0u);  // and no stale hang comes back
  }
}

// The probe hands the engine copies of the changed slots only, at addresses
// that change from tick to tick: the engine names a slot by its index, so a
// slot taken by another process ends the old one whatever the addresses, and
// one buffer reused for two slots confuses nothing.
TEST(Engine, SlotsAreNamedByIndexNotByTheCopysAddress) {
  Rig rig;
  fp_proc a = proc(100, 1, "stuck");
  a.dstate_since_ns = rig.now - 30 * kSec;
  std::vector<fp_proc> copies{a};
  auto out = rig.engine.tick(rig.now, {{7, &copies[0]}}, {});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].rule, "hang");
  rig.now += kTick;
  // Slot 7 went to another process and A's exit event was lost; the copy is elsewhere.
  std::vector<fp_proc> next{proc(300, 5, "fresh"), proc(301, 5, "other")};
  out = rig.engine.tick(rig.now, {{7, &next[1]}}, {});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(out[0].evidence["reason"], "process exited");
  EXPECT_EQ(rig.engine.table().find(key_of(a)), nullptr);
  // One buffer, two slots in turn: neither process is taken for gone.
  fp_proc buf = proc(400, 6, "c");
  rig.now += kTick;
  (void)rig.engine.tick(rig.now, {{8, &buf}}, {});
  buf = proc(401, 6, "d");
  rig.now += kTick;
  (void)rig.engine.tick(rig.now, {{9, &buf}}, {});
  rig.now += kTick;
  (void)rig.engine.tick(rig.now, {}, {});
  const ProcState* c = rig.engine.table().find(ProcKey{400, proc(400, 6, "c").start_ns});
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->exited);
  ASSERT_NE(rig.engine.table().find(ProcKey{401, proc(401, 6, "d").start_ns}), nullptr);
  EXPECT_NE(rig.engine.table().find(key_of(next[1])), nullptr);  // slot 7's new owner
}

TEST(Engine, FreedSlotsAndEmptyTicks) {
  Rig rig;
  fp_proc freed{};
  EXPECT_TRUE(rig.tick({freed}).empty());
  EXPECT_EQ(rig.engine.table().size(), 0u);
  EXPECT_EQ(rig.ticks(10), 0u);
}

}  // namespace
}  // namespace fp
