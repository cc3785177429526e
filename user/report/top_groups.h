// `faultprobe top`'s grouping view, as systemd-cgtop shows a host: one row
// per systemd unit (or, for a process in no unit, per cgroup), summing its
// processes' rates, so that a service made of many short-lived or idle
// processes shows as the one thing it is.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "report/view.h"

namespace fp {

// The group a process row belongs to: its unit ("nginx.service"), else its
// cgroup path, "[kernel]" for kernel threads, "-" when /proc told nothing.
std::string group_of(const ProcessRow& r);

struct GroupRow {
  std::string name;
  size_t procs = 0;           // processes in it
  size_t active = 0;          // ... that did something in the window
  size_t in_dstate = 0;       // ... in uninterruptible sleep now
  size_t faulty = 0;          // ... with an open fault
  double cpu_pct = 0;         // % of one CPU, summed
  double io_read_bps = 0, io_write_bps = 0;
  double faults_per_s = 0;    // page faults
  double forks_per_s = 0;
  double runq_p99_ms = 0;     // the worst member's
  uint64_t rss_bytes = 0;     // summed (shared pages count once per process)
};

// One row per group, in first-seen order of `rows`.
std::vector<GroupRow> group_rows(const std::vector<ProcessRow>& rows);

// The group table's header and rows, padded as the process table's.
std::string format_group_header();
std::string format_group_row(const GroupRow& g);

}  // namespace fp
