// The starvation localizer's per-CPU path. The probe charges every long
// run-queue wait, on the CPU where it happened, to the processes that ran
// there meanwhile (bpf/runq_blame.bpf.h); this turns a window of those
// counters into who starved whom and by how much: each victim blames the
// runners of the CPUs it waited on, not the host's top CPU consumer.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace fp {

// One (cpu, process) entry of the probe's per-CPU tables (struct fp_runq_slot).
struct RunqBlameEntry {
  uint32_t cpu = 0;
  uint32_t tgid = 0;         // 0: waits nobody known held the CPU for
  uint64_t caused_ns = 0;    // others' waits on `cpu` while it ran there (cumulative)
  uint64_t waited_ns = 0;    // its own waits on `cpu` (cumulative)
  uint64_t waits = 0;
  // The thread that last held `cpu` while others waited, as it was then.
  uint32_t tid = 0;
  uint32_t policy = 0;       // SCHED_NORMAL 0, FIFO 1, RR 2, BATCH 3, IDLE 5, DEADLINE 6
  uint32_t rt_priority = 0;
  int32_t static_prio = 0;   // 120 + nice
};

// Where the entries come from (the probe's RunqBlameReader, a fake in tests).
class RunqBlameSource {
 public:
  virtual ~RunqBlameSource() = default;
  // Every entry as it is now. False when it cannot be read.
  virtual bool read(std::vector<RunqBlameEntry>& out) = 0;
};

// Snapshots of the source, taken only while somebody starves, so that the
// charges over the window (up to `window_ns` back) can be told from older ones.
class RunqBlameWindow {
 public:
  // Reads the source at `now_ns`. False when it could not be read.
  bool update(RunqBlameSource& src, uint64_t now_ns, uint64_t window_ns);
  // Nobody starves: the snapshots go.
  void clear() { snaps_.clear(); }
  // The charges between the oldest snapshot kept and the latest (an entry
  // that went down lost its slot in the CPU's table and came back: all of it
  // is new), and the span they cover (0 before a second snapshot).
  std::vector<RunqBlameEntry> delta() const;
  uint64_t span_ns() const;

 private:
  struct Snapshot {
    uint64_t ts_ns;
    std::vector<RunqBlameEntry> entries;  // sorted by (cpu, tgid)
  };
  std::deque<Snapshot> snaps_;  // oldest first; one per second at most, plus the latest
};

// A share of a victim's waits.
struct RunnerShare {
  uint32_t tgid = 0;  // 0: nobody known
  uint64_t ns = 0;    // of the victim's wait
  double share = 0;   // ns / the victim's wait
  const RunqBlameEntry* entry = nullptr;  // the runner's entry on the CPU it took most on (policy, tid)
};

struct VictimBlame {
  uint32_t tgid = 0;
  uint64_t waited_ns = 0;        // its waits in the delta, all CPUs
  uint64_t waits = 0;
  std::vector<uint32_t> cpus;    // where it waited, most first
  std::vector<RunnerShare> runners;  // most first; itself never, nobody (tgid 0) included
};

// Splits a victim's waits on each CPU among the runners of that CPU in
// proportion to the waits each of them caused there (the victim's own runs
// left out: they never delay it). `delta` from RunqBlameWindow::delta();
// its entries must outlive the result.
VictimBlame blame_of(const std::vector<RunqBlameEntry>& delta, uint32_t victim_tgid);

// "SCHED_FIFO", "SCHED_OTHER", ... ("policy N" for one this build does not know).
std::string sched_policy_name(uint32_t policy);

}  // namespace fp
