// The localizer: for symptoms many processes feel (a starved run queue,
// reclaim stalls, slow IO) it names the culprit by its share of a resource in
// the window among all processes in the table, and renders the numbers behind
// that choice as evidence.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "detect/detector.h"
#include "detect/process_table.h"

namespace fp {

// Nothing changed in the window: every cumulative delta is 0, so callers can
// skip the window computation (the table records only changes).
inline bool idle_in_window(const ProcState& s, uint64_t now_ns, uint64_t window_ns) {
  return s.last_update_ns + window_ns <= now_ns;
}

// What a culprit is blamed for using.
enum class Resource {
  Cpu,           // on-CPU ns
  IoBytes,       // bytes read + written by the process (task IO accounting: a buffered writer's own)
  MemoryGrowth,  // net RSS growth in bytes (0 when RSS shrank)
  PageFaults,    // user page faults
  // Pages a process brought into memory: page faults plus the 4 KiB pages
  // it read from disk. A thrasher whose file pages are reclaimed and read
  // back takes few faults per page (fault-around maps 16 at once) but reads
  // them all again; an anonymous allocator faults each page.
  MemoryChurn,
};

// "cpu_ns", "io_bytes", "rss_growth_bytes", "page_faults", "memory_churn_pages": the unit of `amount`.
const char* resource_name(Resource r);

// How much of `r` a process used in a window.
uint64_t resource_amount(const WindowDelta& d, Resource r);

// One process's use of a resource in the window.
struct Consumer {
  ProcKey key;
  std::string comm;
  uint64_t amount = 0;     // unit of resource_name()
  double share = 0;        // amount / total over all processes, 0..1
  bool blameable = false;  // the culprit could have been this one (alive, may_blame)
};

struct Culprit {
  Resource resource = Resource::Cpu;
  uint64_t window_ns = 0;
  ProcKey key;
  std::string comm;
  uint64_t span_ns = 0;  // the culprit's covered span (shorter than the window for a young process)
  uint64_t amount = 0;
  double share = 0;      // amount / total, 0..1
  uint64_t total = 0;    // sum over every process in the table (excluded, protected, exited ones too)
  size_t consumers = 0;  // processes with a non-zero amount
  bool largest = false;  // nobody (not even an excluded or protected process) used more
  // The next-largest consumer other than the culprit and the excluded ones,
  // blameable or not: shows how clear the choice was.
  std::optional<Consumer> runner_up;

  // Per second of the culprit's span: cores (cpu ns per ns) for Cpu, bytes/s, faults/s.
  double rate() const;
};

// The largest consumer of `r` over `window_ns` ending at w.now_ns that may be
// blamed: alive (not just exited), may_blame() and not in `exclude` (victims).
// Shares are of the total over all processes. nullopt when nobody blameable
// used any.
std::optional<Culprit> top_consumer(const World& w, Resource r, uint64_t window_ns,
                                    const std::set<ProcKey>& exclude = {});

// A process that feels the symptom, with the number that says so.
struct Victim {
  ProcKey key;
  std::string comm;
  double value = 0;    // the symptom metric (run-queue p99 ms, reclaim stall share, IO p99 ms)
  uint64_t count = 0;  // events behind it (waits, requests), 0 where none apply
};

// Alive processes active in the window (any, protected ones too) for which
// `symptom(state, window)` returns a Victim, ordered by value, worst first.
template <typename F>
std::vector<Victim> find_victims(const World& w, uint64_t window_ns, F&& symptom) {
  std::vector<Victim> out;
  w.procs->for_each([&](const ProcState& s) {
    if (s.exited || idle_in_window(s, w.now_ns, window_ns)) return;
    std::optional<Victim> v = symptom(s, w.procs->window(s, w.now_ns, window_ns));
    if (v) out.push_back(std::move(*v));
  });
  std::stable_sort(out.begin(), out.end(), [](const Victim& a, const Victim& b) { return a.value > b.value; });
  return out;
}

// ---- incremental forms, for detectors that run at every tick ------------------
// They keep what they found between ticks and look again only at the
// processes whose window may have changed (ProcessTable::for_each_dirty), so a
// tick costs in proportion to what changed, not to the processes tracked.
// Results equal top_consumer() / find_victims() at the same tick.

// Every process's amount of one resource over one window, largest first.
class ConsumerIndex {
 public:
  ConsumerIndex(Resource r, uint64_t window_ns) : r_(r), window_ns_(window_ns) {}
  // Brings the amounts to w.now_ns. Call once per tick.
  void refresh(const World& w);
  // As top_consumer(w, r, window_ns, exclude).
  std::optional<Culprit> top(const World& w, const std::set<ProcKey>& exclude = {}) const;

 private:
  struct Larger {
    bool operator()(const std::pair<uint64_t, ProcKey>& a, const std::pair<uint64_t, ProcKey>& b) const {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    }
  };
  void set(const ProcKey& k, uint64_t amount);

  Resource r_;
  uint64_t window_ns_;
  bool primed_ = false;
  std::unordered_map<ProcKey, uint64_t, ProcKeyHash> amount_;  // non-zero amounts only
  std::set<std::pair<uint64_t, ProcKey>, Larger> order_;
  uint64_t total_ = 0;
};

// The processes for which a symptom holds over one window.
class VictimIndex {
 public:
  // As find_victims(w, window_ns, symptom); `symptom` must depend on the
  // process and its window only (it is not asked again while they stay the same).
  template <typename F>
  std::vector<Victim> refresh(const World& w, uint64_t window_ns, F&& symptom) {
    const ProcessTable& t = *w.procs;
    for (const ProcKey& k : t.removed()) current_.erase(k);
    t.for_each_dirty(window_ns, w.now_ns, !primed_, [&](const ProcState& s) {
      std::optional<Victim> v;
      if (!s.exited && !idle_in_window(s, w.now_ns, window_ns)) {
        WindowDelta d = t.window(s, w.now_ns, window_ns);
        t.schedule_window(window_ns, s.key, d.stable_until_ns);
        v = symptom(s, d);
      }
      if (v)
        current_[s.key] = std::move(*v);
      else
        current_.erase(s.key);
    });
    primed_ = true;
    std::vector<Victim> out;
    out.reserve(current_.size());
    for (const auto& [k, v] : current_) out.push_back(v);
    std::stable_sort(out.begin(), out.end(), [](const Victim& a, const Victim& b) { return a.value > b.value; });
    return out;
  }

 private:
  bool primed_ = false;
  std::map<ProcKey, Victim> current_;
};

std::vector<uint32_t> victim_pids(const std::vector<Victim>& v);
std::set<ProcKey> victim_keys(const std::vector<Victim>& v);

// Symptom metrics shared by detectors.
// p99 of the window's run-queue waits / IO latencies in ms (0 without samples).
double runq_p99_ms(const WindowDelta& d);
double io_p99_ms(const WindowDelta& d);
// Direct-reclaim stall as a share of the window asked for (not of a young process's shorter span).
double reclaim_share(const WindowDelta& d, uint64_t window_ns);

// Evidence of a culprit:
// {"resource", "window_ms", "culprit": {"pid", "comm", "amount", "share", "rate"},
//  "total", "consumers", "largest", "runner_up": {"pid", "comm", "amount", "share", "blameable"} | null}
nlohmann::json culprit_evidence(const Culprit& c);
// [{"pid", "comm", <value_name>: value, <count_name>: count}, ...]; count omitted when count_name is empty.
nlohmann::json victims_evidence(const std::vector<Victim>& v, std::string_view value_name,
                                std::string_view count_name = {});

// The block device of a process's last completed IO (fp_proc.io_dev, the kernel's
// dev_t: major << 20 | minor): {"device": "MAJ:MIN", "device_name": "dm-0"}, the
// name from `sysfs_root`/dev/block/MAJ:MIN/uevent when it is there; {} for 0.
nlohmann::json io_device_evidence(uint32_t kernel_dev, const std::string& sysfs_root = "/sys");

}  // namespace fp
