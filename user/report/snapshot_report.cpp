#include "report/snapshot_report.h"

#include <cinttypes>
#include <cstdio>
#include <string>

#include "util/text.h"

namespace fp {

const char* drop_reason_name(unsigned reason) {
  switch (reason) {
    case FP_DROP_PROC_SLOTS_FULL: return "proc_slots_full";
    case FP_DROP_PROC_INDEX_FULL: return "proc_index_full";
    case FP_DROP_THREADS_FULL: return "threads_full";
    case FP_DROP_INFLIGHT_IO_FULL: return "inflight_io_full";
    case FP_DROP_RINGBUF_FULL: return "ringbuf_full";
    case FP_DROP_IO_UNSEEN: return "io_unseen_start";
    case FP_DROP_IO_ORPHANED: return "io_orphaned";
    case FP_DROP_EXIT_UNSEEN: return "exit_unseen";
    case FP_DROP_RUNQ_SLOT_TAKEN: return "runq_slot_taken";
    case FP_DROP_NET_OWNERS_FULL: return "net_owners_full";
    case FP_DROP_NET_UNOWNED: return "net_unowned";
    case FP_DROP_NET_ENDPOINTS_FULL: return "net_endpoints_full";
    case FP_DROP_NET_DROP_REASONS_FULL: return "net_drop_reasons_full";
    case FP_DROP_HOOK_NESTED: return "hook_nested";
    case FP_DROP_IO_END_UNSEEN: return "io_end_unseen";
    default: return "unknown";
  }
}

namespace {

const char* state_of(const ProcDelta& d) { return d.exited ? "exited" : "running"; }

}  // namespace

nlohmann::ordered_json snapshot_to_json(const SnapshotReport& r) {
  using json = nlohmann::ordered_json;
  json drops = json::object();
  for (unsigned i = 0; i < FP_DROP_NR; i++) {
    const char* n = drop_reason_name(i);
    if (std::string(n) != "unknown") drops[n] = r.drops[i];
  }
  json procs = json::array();
  for (size_t i = 0; i < r.procs.size(); i++) {
    const ProcDelta& d = r.procs[i];
    const ProcInfo* info = i < r.infos.size() ? &r.infos[i] : nullptr;
    json p = {
        {"pid", d.key.tgid},
        {"ppid", d.ppid},
        {"comm", d.comm},
        {"start_ns", d.key.start_ns},
        {"state", state_of(d)},
        {"exit_code", d.exited ? json(d.exit_status) : json(nullptr)},
        {"exit_signal", d.exited ? json(d.exit_signal) : json(nullptr)},
        {"core_dumped", d.core_dumped},
        {"kthread", (d.flags & FP_PROC_KTHREAD) != 0},
        {"cpu_ns", d.cpu_ns},
        {"runq_wait_ns", d.runq_wait_ns},
        {"runq_wait_max_ns", d.runq_wait_max_ns},
        {"runq_wait_p99_ns", d.runq_wait_p99_ns},
        {"runq_waits", d.runq_waits},
        {"nvcsw", d.nvcsw},
        {"nivcsw", d.nivcsw},
        {"dstate_ns", d.dstate_ns},
        {"dstate_max_ns", d.dstate_max_ns},
        {"dstate_ongoing_ns", d.dstate_ongoing_ns},
        {"forks", d.forks},
        {"execs", d.execs},
        {"threads_created", d.threads},
        {"io_read_bytes", d.io_read_bytes},
        {"io_write_bytes", d.io_write_bytes},
        {"io_cancelled_write_bytes", d.io_cancelled_write_bytes},
        {"io_submit_read_bytes", d.io_submit_read_bytes},
        {"io_submit_write_bytes", d.io_submit_write_bytes},
        {"io_read_reqs", d.io_read_reqs},
        {"io_write_reqs", d.io_write_reqs},
        {"io_lat_ns", d.io_lat_ns},
        {"io_lat_max_ns", d.io_lat_max_ns},
        {"io_lat_p99_ns", d.io_lat_p99_ns},
        {"io_errors", d.io_errors},
        {"dirty_throttle_ns", d.dirty_throttle_ns},
        {"dirty_throttles", d.dirty_throttles},
        {"net_connects", d.net_connects},
        {"net_connect_failures", d.net_connect_failures},
        {"net_retransmits", d.net_retransmits},
        {"net_segs_out", d.net_segs_out},
        {"net_resets_sent", d.net_resets_sent},
        {"net_resets_received", d.net_resets_received},
        {"net_rcvq_overflows", d.net_rcvq_overflows},
        {"net_drops", d.net_drops},
        {"kernel_errors", d.kernel_errors},
        {"page_faults", d.page_faults},
        {"reclaim_ns", d.reclaim_ns},
        {"reclaims", d.reclaims},
        {"rss_bytes", d.rss_bytes},
        {"oom_victim", d.oom_victim > 0},
        {"fatal_signals", d.fatal_signals},
        {"last_fatal_signal", d.last_fatal_sig},
        {"cgroup_id", d.cgroup_id},
    };
    if (info && info->found) {
      p["exe"] = info->exe;
      p["cmdline"] = info->cmdline;
      p["cgroup"] = info->cgroup;
      p["uid"] = info->uid;
    }
    procs.push_back(std::move(p));
  }
  json out = {{"interval_ns", r.interval_ns}, {"drops", drops}, {"processes", procs}};
  out["unavailable"] = r.unavailable;
  out["io_bytes_from"] = r.io_bytes_from;
  if (!r.seed.is_null()) out["seed"] = r.seed;
  return out;
}

namespace {

std::string human_bytes(uint64_t b) {
  char buf[32];
  const char* units[] = {"B", "K", "M", "G", "T"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    std::snprintf(buf, sizeof(buf), "%" PRIu64, b);
  else
    std::snprintf(buf, sizeof(buf), v < 10 ? "%.1f%s" : "%.0f%s", v, units[u]);
  return buf;
}

std::string ms(uint64_t ns) {
  char buf[32];
  double v = double(ns) / 1e6;
  std::snprintf(buf, sizeof(buf), v < 10 ? "%.2f" : v < 1000 ? "%.1f" : "%.0f", v);
  return buf;
}

}  // namespace

std::string snapshot_to_table(const SnapshotReport& r, size_t max_rows) {
  std::string out;
  char line[512];
  uint64_t total_drops = 0;
  for (auto d : r.drops) total_drops += d;
  std::snprintf(line, sizeof(line), "interval %.3fs  processes %zu  drops %" PRIu64 "\n",
                double(r.interval_ns) / 1e9, r.procs.size(), total_drops);
  out += line;
  for (unsigned i = 0; i < FP_DROP_NR; i++) {
    if (!r.drops[i]) continue;
    std::snprintf(line, sizeof(line), "  drops %s: %" PRIu64 "\n", drop_reason_name(i), r.drops[i]);
    out += line;
  }
  for (const auto& u : r.unavailable) out += "unavailable on this kernel: " + u + "\n";
  if (r.seed.is_object() && r.seed.value("method", "") == "proc")
    out += "seeded from /proc (" + r.seed.value("reason", "") + "): D-states older than the probe are not shown\n";
  std::snprintf(line, sizeof(line), "%7s %-16s %6s %8s %8s %7s %7s %8s %7s %7s %8s %4s %7s %7s %-9s\n",
                "PID", "COMM", "CPU%", "RUNQms", "RQp99ms", "VCSW", "IVCSW", "Dms", "IO_R", "IO_W",
                "IOp99ms", "ERR", "FAULTS", "RSS", "STATE");
  out += line;
  double interval = r.interval_ns ? double(r.interval_ns) : 1.0;
  size_t n = 0;
  for (const auto& d : r.procs) {
    if (max_rows && n++ >= max_rows) break;
    std::string state = state_of(d);
    if (d.exited) {
      if (d.exit_signal)
        state = "sig" + std::to_string(d.exit_signal) + (d.core_dumped ? "+core" : "");
      else
        state = "exit" + std::to_string(d.exit_status);
    } else if (d.dstate_ongoing_ns) {
      state = "D";
    }
    std::snprintf(line, sizeof(line),
                  "%7u %s %6.1f %8s %8s %7" PRIu64 " %7" PRIu64 " %8s %7s %7s %8s %4" PRIu64
                  " %7" PRIu64 " %7s %-9s\n",
                  d.key.tgid, fit_columns(d.comm, 16, true).c_str(), 100.0 * double(d.cpu_ns) / interval,
                  ms(d.runq_wait_ns).c_str(), ms(d.runq_wait_p99_ns).c_str(), d.nvcsw, d.nivcsw,
                  ms(d.dstate_ns).c_str(), human_bytes(d.io_read_bytes).c_str(),
                  human_bytes(d.io_write_bytes).c_str(), ms(d.io_lat_p99_ns).c_str(), d.io_errors,
                  d.page_faults, human_bytes(d.rss_bytes).c_str(), state.c_str());
    out += line;
  }
  return out;
}

}  // namespace fp
