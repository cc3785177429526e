// A small world for detector tests: synthetic processes whose fp_proc
// counters advance by a per-tick load, fed through a real ProcessTable tick by
// tick the way the daemon does (changed slots, exit events, detectors, end of tick).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "detect/detector.h"
#include "detect/process_table.h"

namespace fp::sim {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSec = 1'000'000'000;
constexpr uint64_t kTick = 100 * kMs;
constexpr uint64_t kPage = 4096;

// What a process does in every tick.
struct Load {
  double cores = 0;              // on-CPU time per wall time, all threads
  uint64_t runq_waits = 0;       // run-queue waits per tick...
  uint64_t runq_wait_ns = 0;     // ...each this long
  uint64_t forks = 0;            // children forked per tick
  uint64_t io_bytes = 0;         // bytes written per tick (caused and submitted: direct IO)...
  uint64_t io_reqs = 0;          // ...in this many requests...
  uint64_t io_lat_ns = 0;        // ...each this slow
  uint64_t dirtied_bytes = 0;    // written through the page cache per tick (caused, not submitted)
  uint64_t flushed_bytes = 0;    // submitted for others per tick (a flusher: in io_reqs, not caused)
  int64_t rss_bytes = 0;         // RSS change per tick
  uint64_t reclaim_ns = 0;       // direct-reclaim stall per tick
  uint64_t page_faults = 0;      // per tick
  uint64_t net_connects = 0, net_connect_failures = 0;  // TCP connects per tick, and of them failed
  uint64_t net_segs_out = 0, net_retransmits = 0;       // TCP segments sent per tick, and of them retransmitted
  uint64_t net_drops = 0;                                // packets dropped with a reason per tick
};

// The probe's log2(us) bucket of a duration.
inline unsigned hist_slot(uint64_t ns) {
  uint64_t us = ns / 1000;
  if (us < 2) return 0;
  unsigned i = 0;
  while (us > 1) {
    us >>= 1;
    ++i;
  }
  return std::min(i, unsigned{FP_HIST_SLOTS - 1});
}

class FakeInfos : public ProcInfoSource {
 public:
  const ProcInfo& info(const ProcKey& k) override {
    auto it = by_pid.find(k.tgid);
    return it != by_pid.end() ? it->second : unknown_;
  }
  std::map<uint32_t, ProcInfo> by_pid;

 private:
  ProcInfo unknown_;
};

struct Seen {
  int strong = 0, weak = 0;
  bool any() const { return strong + weak > 0; }
};

class Sim {
 public:
  // `tick_ns`: the sampling interval (100 ms, the default; 10 ms for 100 Hz).
  explicit Sim(unsigned ncpus = 4, uint64_t tick_ns = kTick) : tick_ns_(tick_ns) {
    world.tick_ns = tick_ns_;
    world.procs = &table;
    world.infos = &infos;
    world.host.ncpus = ncpus;
    world.host.page_size = kPage;
    // Every process here runs the program it is named after (a trusted
    // /usr/bin/<comm>): protected_comms protect by name, as on a real host.
    world.protection = &protection;
    world.now_ns = now;
  }

  // A process born now; the table first sees it at the next tick.
  fp_proc& spawn(uint32_t tgid, const char* comm, uint32_t ppid = 1, uint32_t flags = 0, uint64_t rss = 64 << 20) {
    Proc& pr = procs_[tgid];
    pr = Proc{};
    fp_proc& p = pr.p;
    p.gen = 1;
    p.tgid = tgid;
    p.ppid = ppid;
    p.flags = flags | FP_PROC_EXEC_SEEN;
    p.start_ns = now - 1;  // unique per (tgid, spawn time)
    p.first_seen_ns = now;
    std::strncpy(p.comm, comm, FP_COMM_LEN - 1);
    set_rss(p, rss);
    return p;
  }
  // The pid is taken by a new process without the old one's exit being seen.
  fp_proc& reuse_pid(uint32_t tgid, const char* comm) { return spawn(tgid, comm); }

  void set_load(uint32_t tgid, const Load& l) { procs_.at(tgid).load = l; }
  fp_proc& proc(uint32_t tgid) { return procs_.at(tgid).p; }
  ProcKey key(uint32_t tgid) const { return key_of(procs_.at(tgid).p); }
  // Exits at the next tick: the exit event carries the final counters.
  void exit(uint32_t tgid) { procs_.at(tgid).exiting = true; }

  void add(std::unique_ptr<Detector> d) { detectors_.push_back(std::move(d)); }

  // One tick: advance time, apply loads, report changed slots and exits,
  // evaluate every detector, close the tick. Returns this tick's findings.
  const std::vector<Finding>& tick() {
    now += tick_ns_;
    world.now_ns = now;
    if (protection.entries() != protected_comms) protection.set_entries(protected_comms);
    findings.clear();
    for (auto it = procs_.begin(); it != procs_.end();) {
      Proc& pr = it->second;
      apply(pr.p, pr.load, tick_ns_);
      if (pr.exiting) {
        ExitRecord e;
        e.ts_ns = now;
        e.final = pr.p;
        table.exited(now, e);
        it = procs_.erase(it);
        continue;
      }
      if (!pr.reported || std::memcmp(&pr.p, &pr.last, sizeof(fp_proc)) != 0) {
        table.update(now, pr.p);
        pr.last = pr.p;
        pr.reported = true;
      }
      ++it;
    }
    for (auto& d : detectors_) d->evaluate(world, findings);
    if (during_tick) during_tick();
    for (const Finding& f : findings) {
      Seen& s = seen[f.culprit.tgid];
      (f.strong ? s.strong : s.weak)++;
    }
    table.end_tick(now);
    return findings;
  }

  const std::vector<Finding>& run(double seconds) {
    auto n = static_cast<int>(std::llround(seconds * kSec / tick_ns_));
    for (int i = 0; i < n; ++i) tick();
    return findings;
  }

  const Finding* finding_for(uint32_t tgid) const {
    for (const Finding& f : findings) {
      if (f.culprit.tgid == tgid) return &f;
    }
    return nullptr;
  }

  uint64_t now = 1000 * kSec;
  ProcessTable table{kPage};
  FakeInfos infos;
  std::vector<std::string> protected_comms;  // copied into `protection` at every tick
  Protection protection{{}, [this](const ProcKey& k) -> std::optional<ExeIdentity> {
                          const ProcState* s = table.find(k);
                          if (s == nullptr) return std::nullopt;
                          return ExeIdentity{"/usr/bin/" + s->comm, true};
                        }};
  World world;
  std::vector<Finding> findings;  // of the last tick
  std::map<uint32_t, Seen> seen;  // findings per culprit pid since the last clear
  // Runs inside every tick after the detectors, while just-exited processes are still in the table.
  std::function<void()> during_tick;

 private:
  struct Proc {
    fp_proc p{}, last{};
    Load load;
    bool reported = false, exiting = false;
  };

  static void set_rss(fp_proc& p, uint64_t bytes) {
    std::memset(p.rss_pages, 0, sizeof(p.rss_pages));
    p.rss_pages[1] = static_cast<int64_t>(bytes / kPage);  // MM_ANONPAGES
  }

  static void apply(fp_proc& p, const Load& l, uint64_t tick_ns) {
    p.cpu_ns += static_cast<uint64_t>(std::llround(l.cores * static_cast<double>(tick_ns)));
    p.runq_waits += l.runq_waits;
    p.runq_wait_ns += l.runq_waits * l.runq_wait_ns;
    if (l.runq_waits > 0) {
      p.runq_hist[hist_slot(l.runq_wait_ns)] += static_cast<uint32_t>(l.runq_waits);
      p.runq_wait_max_ns = std::max<uint64_t>(p.runq_wait_max_ns, l.runq_wait_ns);
    }
    p.forks += l.forks;
    p.net_connects += l.net_connects;
    p.net_connect_failures += l.net_connect_failures;
    p.net_segs_out += l.net_segs_out;
    p.net_retransmits += l.net_retransmits;
    p.net_drops += l.net_drops;
    p.io_write_bytes += l.io_bytes + l.dirtied_bytes;
    p.io_submit_write_bytes += l.io_bytes + l.flushed_bytes;
    p.io_write_reqs += l.io_reqs;
    p.io_lat_ns += l.io_reqs * l.io_lat_ns;
    if (l.io_reqs > 0) {
      p.io_lat_hist[hist_slot(l.io_lat_ns)] += static_cast<uint32_t>(l.io_reqs);
      p.io_lat_max_ns = std::max<uint64_t>(p.io_lat_max_ns, l.io_lat_ns);
    }
    if (l.rss_bytes != 0) {
      int64_t pages = p.rss_pages[1] + l.rss_bytes / static_cast<int64_t>(kPage);
      p.rss_pages[1] = std::max<int64_t>(pages, 0);
    }
    p.reclaim_ns += l.reclaim_ns;
    if (l.reclaim_ns > 0) ++p.reclaims;
    p.page_faults += l.page_faults;
  }

  uint64_t tick_ns_;
  std::map<uint32_t, Proc> procs_;
  std::vector<std::unique_ptr<Detector>> detectors_;
};

}  // namespace fp::sim
