#include "detect/locate_runq.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace fp {
namespace {

constexpr uint64_t kSnapshotSpacingNs = 1'000'000'000ull;

bool key_less(const RunqBlameEntry& a, const RunqBlameEntry& b) {
  return std::tie(a.cpu, a.tgid) < std::tie(b.cpu, b.tgid);
}

}  // namespace

bool RunqBlameWindow::update(RunqBlameSource& src, uint64_t now_ns, uint64_t window_ns) {
  std::vector<RunqBlameEntry> now;
  if (!src.read(now)) return false;
  std::sort(now.begin(), now.end(), key_less);
  // The latest snapshot stays only if it is a second past the one kept before it.
  if (snaps_.size() >= 2 && snaps_.back().ts_ns - snaps_[snaps_.size() - 2].ts_ns < kSnapshotSpacingNs)
    snaps_.pop_back();
  snaps_.push_back({now_ns, std::move(now)});
  // The oldest kept is the newest at or before the window's start (or the oldest there is).
  while (snaps_.size() >= 2 && snaps_[1].ts_ns + window_ns <= now_ns) snaps_.pop_front();
  return true;
}

uint64_t RunqBlameWindow::span_ns() const {
  return snaps_.size() < 2 ? 0 : snaps_.back().ts_ns - snaps_.front().ts_ns;
}

std::vector<RunqBlameEntry> RunqBlameWindow::delta() const {
  std::vector<RunqBlameEntry> out;
  if (snaps_.size() < 2) return out;
  const std::vector<RunqBlameEntry>& base = snaps_.front().entries;
  for (const RunqBlameEntry& e : snaps_.back().entries) {
    RunqBlameEntry d = e;
    auto it = std::lower_bound(base.begin(), base.end(), e, key_less);
    if (it != base.end() && it->cpu == e.cpu && it->tgid == e.tgid && e.caused_ns >= it->caused_ns &&
        e.waited_ns >= it->waited_ns && e.waits >= it->waits) {
      d.caused_ns -= it->caused_ns;
      d.waited_ns -= it->waited_ns;
      d.waits -= it->waits;
    }
    if (d.caused_ns != 0 || d.waited_ns != 0) out.push_back(d);
  }
  return out;
}

VictimBlame blame_of(const std::vector<RunqBlameEntry>& delta, uint32_t victim_tgid) {
  VictimBlame v;
  v.tgid = victim_tgid;
  struct Acc {
    double ns = 0;
    double best_cpu_ns = 0;
    const RunqBlameEntry* entry = nullptr;
  };
  std::map<uint32_t, Acc> by_runner;
  std::vector<std::pair<uint64_t, uint32_t>> cpus;  // (waited, cpu)
  for (size_t i = 0; i < delta.size();) {
    // One CPU's entries (delta is sorted by cpu, then tgid).
    size_t end = i;
    uint64_t waited = 0, caused = 0;
    for (; end < delta.size() && delta[end].cpu == delta[i].cpu; end++) {
      const RunqBlameEntry& e = delta[end];
      if (e.tgid == victim_tgid) {
        waited += e.waited_ns;
        v.waits += e.waits;
      } else {
        caused += e.caused_ns;
      }
    }
    if (waited != 0) {
      cpus.emplace_back(waited, delta[i].cpu);
      v.waited_ns += waited;
      for (size_t j = i; j < end; j++) {
        const RunqBlameEntry& e = delta[j];
        if (e.tgid == victim_tgid || (caused != 0 && e.caused_ns == 0)) continue;
        // Nobody ran here while others waited in the window: the wait is nobody's known.
        double ns = caused == 0 ? 0 : double(waited) * double(e.caused_ns) / double(caused);
        Acc& a = by_runner[e.tgid];
        a.ns += ns;
        if (ns > a.best_cpu_ns) a.best_cpu_ns = ns, a.entry = &e;
      }
      if (caused == 0) by_runner[0].ns += double(waited);
    }
    i = end;
  }
  std::sort(cpus.begin(), cpus.end(), [](const auto& a, const auto& b) { return a > b; });
  for (const auto& c : cpus) v.cpus.push_back(c.second);
  for (const auto& [tgid, a] : by_runner) {
    if (a.ns <= 0) continue;
    RunnerShare r;
    r.tgid = tgid;
    r.ns = uint64_t(a.ns);
    r.share = v.waited_ns ? a.ns / double(v.waited_ns) : 0;
    r.entry = a.entry;
    v.runners.push_back(r);
  }
  std::stable_sort(v.runners.begin(), v.runners.end(),
                   [](const RunnerShare& a, const RunnerShare& b) { return a.ns > b.ns; });
  return v;
}

std::string sched_policy_name(uint32_t policy) {
  switch (policy) {
    case 0: return "SCHED_OTHER";
    case 1: return "SCHED_FIFO";
    case 2: return "SCHED_RR";
    case 3: return "SCHED_BATCH";
    case 5: return "SCHED_IDLE";
    case 6: return "SCHED_DEADLINE";
    case 7: return "SCHED_EXT";
  }
  return "policy " + std::to_string(policy);
}

}  // namespace fp
