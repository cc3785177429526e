// Event-driven detectors: oom_kill, io_error, crash, crash_loop, hang.
// They open at once (immediate findings); the tracker resolves them after
// the rule's clear period.
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "detect/detectors.h"
#include "detect/engine.h"
#include "detect/locate.h"
#include "probe/delta.h"

namespace fp {
namespace {

constexpr double kSecD = 1e9;

// The processes of one of the table's sets (ProcessTable::in_dstate() ...):
// the few with that mark, not every process at every tick.
template <typename F>
void for_each_of(const ProcessTable& t, const std::set<ProcKey>& keys, F&& f) {
  for (const ProcKey& k : keys) {
    if (const ProcState* s = t.find(k)) f(*s);
  }
}

uint64_t ns_of(std::chrono::nanoseconds d) { return d.count() > 0 ? static_cast<uint64_t>(d.count()) : 0; }
double secs(uint64_t ns) { return static_cast<double>(ns) / kSecD; }

// Signals whose default action dumps core and that mean a program fault
// (SIGQUIT, SIGXCPU, SIGXFSZ dump core too but are sent on purpose).
bool is_crash_signal(int sig) {
  switch (sig) {
    case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGABRT: case SIGSYS: case SIGTRAP:
      return true;
    default:
      return false;
  }
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGSYS: return "SIGSYS";
    case SIGTRAP: return "SIGTRAP";
    case SIGKILL: return "SIGKILL";
    default: {
      char buf[16];
      std::snprintf(buf, sizeof buf, "SIG%d", sig);
      return buf;
    }
  }
}

std::string comm_of(const fp_proc& p) { return std::string(p.comm, strnlen(p.comm, FP_COMM_LEN)); }

// The table's state for a process, or a stand-in built from what an event
// carries when the table no longer (or never) had it.
struct Subject {
  ProcState tmp;
  const ProcState* s = nullptr;
  Subject(const World& w, const ProcKey& k, const std::string& comm) {
    s = w.procs != nullptr ? w.procs->find(k) : nullptr;
    if (s == nullptr) {
      tmp.key = k;
      tmp.comm = comm;
      tmp.exited = true;
      s = &tmp;
    }
  }
};

class EventDetector : public Detector {
 public:
  explicit EventDetector(const RuleConfig& r) : rule_(r) {}
  const RuleConfig& rule() const override { return rule_; }

 protected:
  bool eligible(const ProcState& s, const World& w) const { return may_blame(s, w) && rule_matches(rule_, s, w); }
  Finding finding(const ProcKey& k) const {
    Finding f;
    f.culprit = k;
    f.strong = true;
    f.immediate = true;
    return f;
  }
  RuleConfig rule_;
};

// ---- crash: death by a program-fault signal -------------------------------

nlohmann::json crash_evidence(const ExitRecord& e) {
  ExitStatus st = decode_exit_code(e.exit_code);
  nlohmann::json ev = nlohmann::json::object();
  ev["signal"] = st.signal;
  ev["signal_name"] = signal_name(st.signal);
  ev["core_dumped"] = st.core;
  ev["exit_code"] = e.exit_code;
  ev["fatal_signals"] = e.final.fatal_signals;
  return ev;
}

class CrashDetector : public EventDetector {
 public:
  using EventDetector::EventDetector;
  void evaluate(const World& w, std::vector<Finding>& out) override {
    if (w.events == nullptr) return;
    for (const ExitRecord& e : w.events->exits) {
      if (!is_crash_signal(decode_exit_code(e.exit_code).signal)) continue;
      Subject subj(w, key_of(e.final), comm_of(e.final));
      if (!eligible(*subj.s, w)) continue;
      // Reported once: the tracker keeps it open for the rule's clear period.
      Finding f = finding(subj.s->key);
      f.evidence = crash_evidence(e);
      out.push_back(std::move(f));
    }
  }
};

// ---- crash_loop: N crashes of one service within the window ---------------

class CrashLoopDetector : public EventDetector {
 public:
  using EventDetector::EventDetector;
  void evaluate(const World& w, std::vector<Finding>& out) override {
    if (w.events != nullptr) {
      for (const ExitRecord& e : w.events->exits) {
        ExitStatus st = decode_exit_code(e.exit_code);
        if (!is_crash_signal(st.signal)) continue;
        Subject subj(w, key_of(e.final), comm_of(e.final));
        if (!eligible(*subj.s, w)) continue;
        const ProcInfo* info = trusted_info(*subj.s, w.infos);
        std::string exe = info != nullptr ? info->exe : "";
        std::string cgroup = info != nullptr ? info->cgroup : "";
        // The service is keyed on what the probe always knows (the name and
        // the kernel's cgroup id): whether /proc could still be read for a
        // crashed process is a race, and must not split one loop in two.
        std::string service = subj.s->comm + '\0' + std::to_string(e.final.cgroup_id);
        auto [it, created] = loops_.try_emplace(service);
        Loop& l = it->second;
        if (created) {
          if (loops_.size() > kMaxServices) {  // a storm of distinct crashers: bounded memory first
            loops_.erase(it);
            continue;
          }
          l.comm = subj.s->comm;
          l.exe = exe;
          l.cgroup = cgroup;
        }
        l.crashes.push_back(Crash{w.now_ns, subj.s->key, st.signal});
        if (l.crashes.size() > kMaxCrashes) l.crashes.pop_front();
      }
    }

    const uint64_t window = ns_of(rule_.window);
    const uint64_t horizon = w.now_ns > window ? w.now_ns - window : 0;
    const size_t needed = rule_.count > 0 ? rule_.count : static_cast<size_t>(std::max(1.0, std::ceil(rule_.threshold)));
    for (auto it = loops_.begin(); it != loops_.end();) {
      Loop& l = it->second;
      while (!l.crashes.empty() && l.crashes.front().ts < horizon) l.crashes.pop_front();
      if (l.crashes.empty()) {
        it = loops_.erase(it);
        continue;
      }
      if (l.crashes.size() < needed) {
        l.culprit.reset();
      } else {
        // The loop is named after the crash that completed it, and stays
        // so while it goes on: one fault per loop, not one per crash.
        if (!l.culprit) l.culprit = l.crashes.back().key;
        Finding f = finding(*l.culprit);
        f.evidence["crashes"] = l.crashes.size();
        f.evidence["window_s"] = secs(window);
        nlohmann::json pids = nlohmann::json::array();
        for (const Crash& c : l.crashes) pids.push_back(c.key.tgid);
        f.evidence["pids"] = pids;
        f.evidence["last_signal"] = signal_name(l.crashes.back().signal);
        f.evidence["exe"] = l.exe;
        out.push_back(std::move(f));
      }
      ++it;
    }
  }

 private:
  static constexpr size_t kMaxServices = 1024;
  static constexpr size_t kMaxCrashes = 256;
  struct Crash {
    uint64_t ts;
    ProcKey key;
    int signal;
  };
  struct Loop {
    std::string comm, exe, cgroup;
    std::deque<Crash> crashes;
    std::optional<ProcKey> culprit;
  };
  std::map<std::string, Loop> loops_;
};

// ---- oom_kill: the kernel's OOM victim -------------------------------------

class OomKillDetector : public EventDetector {
 public:
  using EventDetector::EventDetector;
  void evaluate(const World& w, std::vector<Finding>& out) override {
    std::set<ProcKey> reported;
    if (w.events != nullptr) {
      for (const OomRecord& o : w.events->ooms) {
        Subject subj(w, o.victim, o.comm);
        if (!eligible(*subj.s, w) || !reported.insert(o.victim).second) continue;
        Finding f = finding(o.victim);
        f.evidence["total_vm_kb"] = o.total_vm_kb;
        f.evidence["anon_rss_kb"] = o.anon_rss_kb;
        f.evidence["file_rss_kb"] = o.file_rss_kb;
        f.evidence["shmem_rss_kb"] = o.shmem_rss_kb;
        // the thread the kernel marked, when it is not the process's leader, and how it was mapped
        if (o.tid != 0 && o.tid != o.victim.tgid) f.evidence["tid"] = o.tid;
        f.evidence["tgid_from"] = oom_tgid_from_name(o.tgid_from);
        out.push_back(std::move(f));
      }
    }
    // The per-process mark is the fallback for an event the ring buffer dropped.
    if (w.procs == nullptr) return;
    for_each_of(*w.procs, w.procs->oom_victims(), [&](const ProcState& s) {
      if (s.now.oom_victim == 0 || reported.count(s.key) != 0) return;
      WindowDelta d = w.procs->window(s, w.now_ns, w.tick_ns);
      if (d.delta.oom_victim == 0 || !eligible(s, w)) return;
      Finding f = finding(s.key);
      f.evidence["oom_victim"] = d.delta.oom_victim;
      f.evidence["rss_bytes"] = d.rss_end;
      f.evidence["source"] = "counter";
      out.push_back(std::move(f));
    });
  }
};

// ---- io_error: block IO errors in the window -------------------------------

class IoErrorDetector : public EventDetector {
 public:
  using EventDetector::EventDetector;
  void evaluate(const World& w, std::vector<Finding>& out) override {
    if (w.procs == nullptr) return;
    const uint64_t window = ns_of(rule_.window);
    const double needed = std::max(1.0, rule_.threshold);
    for_each_of(*w.procs, w.procs->with_io_errors(), [&](const ProcState& s) {
      if (s.now.io_errors == 0) return;  // never had one
      WindowDelta d = w.procs->window(s, w.now_ns, window);
      if (static_cast<double>(d.delta.io_errors) < needed || !eligible(s, w)) return;
      Finding f = finding(s.key);
      f.evidence["io_errors"] = d.delta.io_errors;
      f.evidence["io_reqs"] = d.delta.io_reqs;
      f.evidence["window_s"] = secs(d.span_ns);
      f.evidence.update(io_device_evidence(s.slot.io_dev));
      out.push_back(std::move(f));
    });
  }
};

// ---- hang: a long uninterruptible sleep, or the kernel's hung-task report --

class HangDetector : public EventDetector {
 public:
  using EventDetector::EventDetector;
  void evaluate(const World& w, std::vector<Finding>& out) override {
    std::set<ProcKey> reported;
    if (w.events != nullptr) {
      for (const HangRecord& h : w.events->hangs) {
        Subject subj(w, h.proc, h.comm);
        if (!eligible(*subj.s, w) || !reported.insert(h.proc).second) continue;
        Finding f = finding(h.proc);
        f.severity = Severity::Critical;  // the kernel itself says it is hung
        f.evidence["source"] = "hung_task";
        f.evidence["tid"] = h.tid;
        uint64_t at = std::max(h.ts_ns, w.now_ns);
        f.evidence["dstate_s"] = h.dstate_since_ns != 0 && at > h.dstate_since_ns ? secs(at - h.dstate_since_ns) : 0.0;
        out.push_back(std::move(f));
      }
    }
    if (w.procs == nullptr) return;
    const double threshold_ns = rule_.threshold * kSecD;
    const double resolve_ns = rule_.resolve * kSecD;
    for_each_of(*w.procs, w.procs->in_dstate(), [&](const ProcState& s) {
      // The ongoing D-state at this tick, also for a process whose slot has
      // not changed since it went to sleep.
      uint64_t since = s.slot.dstate_since_ns;
      if (s.exited || since == 0 || w.now_ns <= since || reported.count(s.key) != 0) return;
      const uint64_t ongoing = w.now_ns - since;
      const bool strong = static_cast<double>(ongoing) >= threshold_ns;
      // Below the threshold it only keeps an open fault open (hysteresis): while
      // still asleep, or above `resolve` when one is set.
      if (!strong && static_cast<double>(ongoing) < resolve_ns) return;
      if (!eligible(s, w)) return;
      Finding f = finding(s.key);
      f.immediate = false;
      f.strong = strong;
      f.evidence["source"] = "dstate";
      f.evidence["dstate_s"] = secs(ongoing);
      f.evidence["threads_in_d"] = s.slot.dstate_active;
      out.push_back(std::move(f));
    });
  }
};

}  // namespace

std::unique_ptr<Detector> make_crash(const RuleConfig& r) { return std::make_unique<CrashDetector>(r); }
std::unique_ptr<Detector> make_crash_loop(const RuleConfig& r) { return std::make_unique<CrashLoopDetector>(r); }
std::unique_ptr<Detector> make_oom_kill(const RuleConfig& r) { return std::make_unique<OomKillDetector>(r); }
std::unique_ptr<Detector> make_io_error(const RuleConfig& r) { return std::make_unique<IoErrorDetector>(r); }
std::unique_ptr<Detector> make_hang(const RuleConfig& r) { return std::make_unique<HangDetector>(r); }

}  // namespace fp
