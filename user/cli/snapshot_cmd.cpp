#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <set>

#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "probe/delta.h"
#include "probe/probe.h"
#include "procinfo.h"
#include "report/snapshot_report.h"
#include "util/text.h"

namespace fp {

int run_snapshot(const SnapshotOptions& opts) {
  ProbeOptions popts;
  popts.force_raw_tp = opts.force_raw_tp;
  auto probe = Probe::start(popts);
  if (!probe) {
    std::fprintf(stderr, "faultprobe: %s\n", probe.error().message.c_str());
    return 1;
  }
  Probe& pr = **probe;

  EventBatch events;
  pr.drain(events);  // whatever happened before the interval
  events.clear();
  Sample before = pr.read();
  DropCounts drops0 = pr.drops();

  // Keep draining while we wait so that a burst of exits cannot fill the ring.
  const uint64_t deadline = before.ts_ns + uint64_t(opts.interval.count());
  for (;;) {
    uint64_t now = monotonic_now_ns();
    if (now >= deadline) break;
    auto left = std::chrono::nanoseconds(deadline - now);
    auto step = std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(50),
        std::chrono::duration_cast<std::chrono::milliseconds>(left) + std::chrono::milliseconds(1));
    pr.poll(events, step);
  }
  Sample after = pr.read();
  pr.drain(events);
  DropCounts drops1 = pr.drops();

  // Exits that belong to the interval: stamped inside it, or of a process the
  // first read still saw (its exit raced with that read).
  std::set<ProcKey> in_before;
  for (const auto& p : before.procs) in_before.insert(key_of(p));
  std::vector<ExitRecord> exits;
  for (const auto& e : events.exits)
    if ((e.ts_ns >= before.ts_ns && e.ts_ns <= after.ts_ns) || in_before.count(key_of(e.final)))
      exits.push_back(e);

  SnapshotReport report;
  report.interval_ns = after.ts_ns - before.ts_ns;
  for (unsigned i = 0; i < FP_DROP_NR; i++) report.drops[i] = drops1[i] - drops0[i];
  report.unavailable = pr.unavailable_counters();
  report.io_bytes_from = pr.io_bytes_from();
  report.seed = seed_status_json(pr.seed_status());
  report.procs = compute_deltas(before, after, exits, uint64_t(sysconf(_SC_PAGESIZE)));
  if (!opts.pids.empty()) {
    std::set<uint32_t> want(opts.pids.begin(), opts.pids.end());
    std::erase_if(report.procs, [&](const ProcDelta& d) { return !want.count(d.key.tgid); });
  }
  ProcInfoCache infos;
  for (const auto& d : report.procs) report.infos.push_back(d.exited ? ProcInfo{} : infos.get(d.key));

  if (opts.json)
    std::cout << safe_dump(snapshot_to_json(report)) << "\n";
  else
    std::cout << snapshot_to_table(report, opts.max_rows);
  if (pr.malformed_events()) spdlog::warn("{} malformed events from the probe", pr.malformed_events());
  return 0;
}

}  // namespace fp
