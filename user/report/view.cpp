#include "report/view.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include "detect/engine.h"
#include "probe/hist.h"
#include "report/snapshot_report.h"

namespace fp {
namespace {

constexpr double kNsPerMs = 1e6;
constexpr double kNsPerSec = 1e9;

// Which open fault a process shows when it has several: a critical one
// before a warning, then the one that opened first.
bool shows_before(const FaultRecord& a, const FaultRecord& b) {
  if (a.severity != b.severity) return a.severity == Severity::Critical;
  return a.mono_ns < b.mono_ns;
}

// The row of a process whose counters did not change in the window: every
// rate is zero, so no history walk is needed (this keeps a build over
// thousands of idle processes cheap). Only an ongoing D-state still counts.
void fill_idle(ProcessRow& r, const ProcState& s, uint64_t now_ns, uint64_t window_ns) {
  r.rss_bytes = s.now.rss_bytes;
  r.io_errors = s.now.io_errors;
  r.cpu_total_ns = s.now.cpu_ns;
  if (s.slot.dstate_active > 0 && s.slot.dstate_since_ns != 0 && now_ns > s.slot.dstate_since_ns) {
    r.in_dstate = true;
    r.dstate_ms = double(std::min<uint64_t>(window_ns, now_ns - s.slot.dstate_since_ns)) / kNsPerMs;
  }
}

void fill_active(ProcessRow& r, const ProcState& s, const WindowDelta& w, uint64_t window_ns) {
  // Rates over the span the history covers: a process younger than the
  // window is measured over its life, not diluted by the time before it.
  const double span_s = double(w.span_ns ? w.span_ns : window_ns) / kNsPerSec;
  const Metrics& d = w.delta;
  r.cpu_pct = double(d.cpu_ns) / kNsPerSec / span_s * 100.0;
  r.runq_p99_ms = double(hist_quantile_ns(w.runq_hist, 0.99, s.slot.runq_wait_max_ns)) / kNsPerMs;
  r.dstate_ms = double(d.dstate_ns) / kNsPerMs;
  r.in_dstate = s.slot.dstate_active > 0 || d.dstate_ongoing_ns > 0;
  r.io_read_bps = double(d.io_read_bytes) / span_s;
  r.io_write_bps = double(d.io_write_bytes) / span_s;
  r.io_lat_p99_ms = double(hist_quantile_ns(w.io_lat_hist, 0.99, s.slot.io_lat_max_ns)) / kNsPerMs;
  r.io_errors = s.now.io_errors;
  r.cpu_total_ns = s.now.cpu_ns;
  r.faults_per_s = double(d.page_faults) / span_s;
  r.reclaim_ms = double(d.reclaim_ns) / kNsPerMs;
  r.dirty_throttle_ms = double(d.dirty_throttle_ns) / kNsPerMs;
  r.rss_bytes = w.rss_end;
  r.forks_per_s = double(d.forks) / span_s;
  r.net_retrans_per_s = double(d.net_retransmits) / span_s;
  r.net_retrans_share = d.net_segs_out ? std::min(1.0, double(d.net_retransmits) / double(d.net_segs_out)) : 0.0;
  r.net_connect_fail_per_s = double(d.net_connect_failures) / span_s;
  r.net_resets_per_s = double(d.net_resets_sent + d.net_resets_received) / span_s;
  r.net_drops_per_s = double(d.net_drops) / span_s;
}

}  // namespace

std::string user_name(uint32_t uid) {
  static std::mutex mu;
  static std::unordered_map<uint32_t, std::string> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(uid);
    if (it != cache.end()) return it->second;
  }
  std::string name = std::to_string(uid);
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? size_t(size) : 4096);
  passwd pw{};
  passwd* found = nullptr;
  int rc;
  while ((rc = getpwuid_r(uid, &pw, buf.data(), buf.size(), &found)) == ERANGE && buf.size() < (1u << 20))
    buf.resize(buf.size() * 2);
  if (rc == 0 && found && found->pw_name) name = found->pw_name;
  std::lock_guard<std::mutex> lock(mu);
  return cache.emplace(uid, name).first->second;
}

std::string row_state(const FaultRecord* fault, bool throttled, bool restarted) {
  if (fault) return fault_class_name(fault->cls);
  if (throttled) return "throttled";
  if (restarted) return "restarted";
  return "ok";
}

std::vector<ProcessRow> build_rows(const ProcessTable& table, uint64_t now_ns, uint64_t window_ns,
                                   ProcInfoSource& infos, const std::vector<FaultRecord>& open,
                                   const std::vector<uint32_t>& throttled,
                                   const std::vector<uint32_t>& restarted) {
  std::map<ProcKey, const FaultRecord*> fault_of;
  for (const auto& f : open) {
    if (f.kind != FaultRecord::Kind::Fault) continue;
    auto [it, fresh] = fault_of.emplace(f.culprit, &f);
    if (!fresh && shows_before(f, *it->second)) it->second = &f;
  }
  const std::unordered_set<uint32_t> throttled_set(throttled.begin(), throttled.end());
  const std::unordered_set<uint32_t> restarted_set(restarted.begin(), restarted.end());
  const uint64_t since = now_ns > window_ns ? now_ns - window_ns : 0;

  std::vector<ProcessRow> rows;
  rows.reserve(table.size());
  size_t active = 0;  // rows[0, active) did something in the window
  table.for_each([&](const ProcState& s) {
    if (s.exited) return;  // gone; its final counters live on in the fault records
    ProcessRow r;
    r.pid = s.key.tgid;
    r.start_ns = s.key.start_ns;
    r.comm = s.comm;
    if (const ProcInfo* info = trusted_info(s, &infos)) {
      // /proc's name is current (prctl renames); the probe learns names at fork, exec and exit only.
      if (!info->comm.empty()) r.comm = info->comm;
      r.uid = info->uid;
      r.user = user_name(info->uid);
      r.cgroup = info->cgroup;
    }
    const bool did_something = s.last_update_ns > since;
    if (did_something)
      fill_active(r, s, table.window(s, now_ns, window_ns), window_ns);
    else
      fill_idle(r, s, now_ns, window_ns);
    r.idle = !did_something && !r.in_dstate;
    r.kernel = (s.flags & FP_PROC_KTHREAD) != 0;
    auto f = fault_of.find(s.key);
    const FaultRecord* fault = f == fault_of.end() ? nullptr : f->second;
    r.state = row_state(fault, throttled_set.count(r.pid) > 0, restarted_set.count(r.pid) > 0);
    if (fault) r.evidence = fault->evidence;
    rows.push_back(std::move(r));
    if (did_something) {
      std::swap(rows[active], rows.back());
      ++active;
    }
  });
  // Active ones first by CPU (then pid, for a stable order); the idle tail by pid.
  std::sort(rows.begin(), rows.begin() + long(active), [](const ProcessRow& a, const ProcessRow& b) {
    if (a.cpu_pct != b.cpu_pct) return a.cpu_pct > b.cpu_pct;
    return a.pid < b.pid;
  });
  std::sort(rows.begin() + long(active), rows.end(),
            [](const ProcessRow& a, const ProcessRow& b) { return a.pid < b.pid; });
  return rows;
}

// ---- host ----------------------------------------------------------------------

HostSampler::HostSampler(std::string proc_root) : root_(std::move(proc_root)) {}

namespace {

struct CpuTimes {
  uint64_t busy = 0, total = 0;
  unsigned ncpus = 0;
};

// /proc/stat: "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
// guest time is already inside user/nice, so the total stops at steal.
// Busy = total - idle - iowait (waiting for IO is not using the CPU).
CpuTimes read_cpu_times(const std::string& path) {
  CpuTimes t;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu", 0) != 0) continue;
    if (line.size() > 3 && std::isdigit(static_cast<unsigned char>(line[3]))) {
      ++t.ncpus;
      continue;
    }
    std::istringstream ls(line.substr(3));
    uint64_t v[8] = {};
    for (auto& x : v)
      if (!(ls >> x)) break;
    for (auto x : v) t.total += x;
    t.busy = t.total - std::min(t.total, v[3] + v[4]);
  }
  return t;
}

void read_meminfo(const std::string& path, HostStats& h) {
  std::ifstream in(path);
  std::string key;
  uint64_t kb = 0;
  while (in >> key >> kb) {
    if (key == "MemTotal:") h.mem_total_bytes = kb * 1024;
    if (key == "MemAvailable:") h.mem_available_bytes = kb * 1024;
    in.ignore(256, '\n');
  }
}

// Whether a /proc/diskstats name is a whole physical disk. Virtual devices
// (loop, ram, zram) are skipped, and so are stacked ones (dm-*, md*): their
// IO is also counted on the disks below, so summing both would count it
// twice. Partitions are skipped because their disk's line already includes
// them: a partition is a name that extends a disk listed before it
// (sda -> sda1, nvme0n1 -> nvme0n1p1, mmcblk0 -> mmcblk0p1), which is the
// order the kernel lists them in.
bool whole_disk(std::string_view name, const std::vector<std::string>& disks_so_far) {
  for (std::string_view skip : {"loop", "ram", "zram", "dm-", "md"})
    if (name.substr(0, skip.size()) == skip) return false;
  for (const auto& d : disks_so_far)
    if (name.size() > d.size() && name.substr(0, d.size()) == d) return false;
  return true;
}

// Sectors read and written by whole disks (diskstats sectors are always 512 bytes).
std::pair<uint64_t, uint64_t> read_disk_sectors(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> disks;
  uint64_t rd = 0, wr = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    unsigned major = 0, minor = 0;
    std::string name;
    uint64_t f[7] = {};  // reads, reads merged, sectors read, ms reading, writes, writes merged, sectors written
    if (!(ls >> major >> minor >> name)) continue;
    bool ok = true;
    for (auto& x : f) ok = ok && static_cast<bool>(ls >> x);
    if (!ok || !whole_disk(name, disks)) continue;
    disks.push_back(name);
    rd += f[2];
    wr += f[6];
  }
  return {rd, wr};
}

uint64_t grew(uint64_t now, uint64_t before) { return now > before ? now - before : 0; }

}  // namespace

HostStats HostSampler::sample(uint64_t now_ns) {
  HostStats h;
  CpuTimes cpu = read_cpu_times(root_ + "/stat");
  h.ncpus = cpu.ncpus ? cpu.ncpus : 1;
  // The first sample has no previous reading: CPU is the average since boot
  // (the counters start at 0), IO rates are 0 until the second sample.
  uint64_t dtotal = grew(cpu.total, last_total_);
  if (dtotal) h.cpu_pct = double(grew(cpu.busy, last_busy_)) / double(dtotal) * 100.0;
  read_meminfo(root_ + "/meminfo", h);
  auto [rd, wr] = read_disk_sectors(root_ + "/diskstats");
  if (last_ns_ != 0 && now_ns > last_ns_) {
    double secs = double(now_ns - last_ns_) / kNsPerSec;
    h.io_read_bps = double(grew(rd, last_rd_sectors_)) * 512.0 / secs;
    h.io_write_bps = double(grew(wr, last_wr_sectors_)) * 512.0 / secs;
  }
  last_ns_ = now_ns;
  last_busy_ = cpu.busy;
  last_total_ = cpu.total;
  last_rd_sectors_ = rd;
  last_wr_sectors_ = wr;
  const PsiFiles psi = PsiFiles::host(root_ + "/pressure");
  for (PsiResource r : kPsiResources) {
    Result<PsiReading> got = psi.read(r);
    if (!got) continue;  // no PSI here: the resource's gauges are left out, not zeros
    HostPsi& p = h.psi[static_cast<size_t>(r)];
    p.ok = true;
    p.some_avg10 = got->some.avg10;
    p.some_total_us = got->some.total_us;
    if (got->full) {
      p.full_avg10 = got->full->avg10;
      p.full_total_us = got->full->total_us;
    }
  }
  return h;
}

// ---- JSON ----------------------------------------------------------------------

namespace {

using json = nlohmann::json;

// "psi" carries only the resources that were read: an absent one is unknown, not 0.
json host_to_json(const HostStats& h) {
  json j = {{"ncpus", h.ncpus},
            {"cpu_pct", h.cpu_pct},
            {"mem_total_bytes", h.mem_total_bytes},
            {"mem_available_bytes", h.mem_available_bytes},
            {"io_read_bps", h.io_read_bps},
            {"io_write_bps", h.io_write_bps}};
  json psi = json::object();
  for (PsiResource r : kPsiResources) {
    const HostPsi& p = h.psi[static_cast<size_t>(r)];
    if (!p.ok) continue;
    json e = {{"some_avg10", p.some_avg10}, {"some_total_us", p.some_total_us}};
    if (p.full_avg10) {
      e["full_avg10"] = *p.full_avg10;
      e["full_total_us"] = p.full_total_us;
    }
    psi[psi_resource_name(r)] = std::move(e);
  }
  if (!psi.empty()) j["psi"] = std::move(psi);
  return j;
}

json row_to_json(const ProcessRow& r) {
  return {{"pid", r.pid},
          {"start_ns", r.start_ns},
          {"uid", r.uid},
          {"user", r.user},
          {"comm", r.comm},
          {"cgroup", r.cgroup},
          {"cpu_pct", r.cpu_pct},
          {"runq_p99_ms", r.runq_p99_ms},
          {"dstate_ms", r.dstate_ms},
          {"in_dstate", r.in_dstate},
          {"io_read_bps", r.io_read_bps},
          {"io_write_bps", r.io_write_bps},
          {"io_lat_p99_ms", r.io_lat_p99_ms},
          {"io_errors", r.io_errors},
          {"dirty_throttle_ms", r.dirty_throttle_ms},
          {"cpu_total_ns", r.cpu_total_ns},
          {"faults_per_s", r.faults_per_s},
          {"reclaim_ms", r.reclaim_ms},
          {"rss_bytes", r.rss_bytes},
          {"forks_per_s", r.forks_per_s},
          {"net_retrans_per_s", r.net_retrans_per_s},
          {"net_retrans_share", r.net_retrans_share},
          {"net_connect_fail_per_s", r.net_connect_fail_per_s},
          {"net_resets_per_s", r.net_resets_per_s},
          {"net_drops_per_s", r.net_drops_per_s},
          {"state", r.state},
          {"evidence", r.evidence},
          {"idle", r.idle},
          {"kernel", r.kernel}};
}

// Lenient field readers: a missing field or one of the wrong type leaves the
// default (a newer or older daemon must not break the CLI).
template <typename T>
void read(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end()) return;
  if constexpr (std::is_same_v<T, bool>) {
    if (it->is_boolean()) out = it->template get<bool>();
  } else if constexpr (std::is_arithmetic_v<T>) {
    if (it->is_number()) out = it->template get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (it->is_string()) out = it->template get<std::string>();
  }
}

void read_counts(const json& j, const char* key, std::map<std::string, uint64_t>& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return;
  for (auto& [k, v] : it->items())
    if (v.is_number_unsigned() || v.is_number_integer()) out[k] = v.get<uint64_t>();
}

const json& member(const json& j, const char* key) {
  static const json kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

ProcessRow row_from_json(const json& j) {
  ProcessRow r;
  read(j, "pid", r.pid);
  read(j, "start_ns", r.start_ns);
  read(j, "uid", r.uid);
  read(j, "user", r.user);
  read(j, "comm", r.comm);
  read(j, "cgroup", r.cgroup);
  read(j, "cpu_pct", r.cpu_pct);
  read(j, "runq_p99_ms", r.runq_p99_ms);
  read(j, "dstate_ms", r.dstate_ms);
  read(j, "in_dstate", r.in_dstate);
  read(j, "io_read_bps", r.io_read_bps);
  read(j, "io_write_bps", r.io_write_bps);
  read(j, "io_lat_p99_ms", r.io_lat_p99_ms);
  read(j, "io_errors", r.io_errors);
  read(j, "dirty_throttle_ms", r.dirty_throttle_ms);
  read(j, "cpu_total_ns", r.cpu_total_ns);
  read(j, "faults_per_s", r.faults_per_s);
  read(j, "reclaim_ms", r.reclaim_ms);
  read(j, "rss_bytes", r.rss_bytes);
  read(j, "forks_per_s", r.forks_per_s);
  read(j, "net_retrans_per_s", r.net_retrans_per_s);
  read(j, "net_retrans_share", r.net_retrans_share);
  read(j, "net_connect_fail_per_s", r.net_connect_fail_per_s);
  read(j, "net_resets_per_s", r.net_resets_per_s);
  read(j, "net_drops_per_s", r.net_drops_per_s);
  read(j, "state", r.state);
  r.evidence = member(j, "evidence");
  read(j, "idle", r.idle);
  read(j, "kernel", r.kernel);
  return r;
}

}  // namespace

nlohmann::json view_to_json(const DaemonView& v) {
  json drops = json::object();
  for (unsigned i = 0; i < FP_DROP_NR; ++i) drops[drop_reason_name(i)] = v.health.drops[i];
  json procs = json::array();
  for (const auto& r : v.procs) procs.push_back(row_to_json(r));
  json faults = json::array();
  for (const auto& f : v.open_faults) faults.push_back(json(f));
  const Counters& c = v.counters;
  return {{"realtime_ns", v.realtime_ns},
          {"window_ns", v.window_ns},
          {"hostname", v.hostname},
          {"host", host_to_json(v.host)},
          {"health",
           {{"drops", drops},
            {"drops_total", v.health.drops_total},
            {"sample_hz", v.health.sample_hz},
            {"ticks", v.health.ticks},
            {"tick_us_p50", v.health.tick_us_p50},
            {"tick_us_p99", v.health.tick_us_p99},
            {"procs_tracked", v.health.procs_tracked},
            {"max_procs", v.health.max_procs},
            {"malformed_events", v.health.malformed_events}}},
          {"procs", procs},
          {"open_faults", faults},
          {"counters",
           {{"faults_by_class", c.faults_by_class},
            {"resolved_by_class", c.resolved_by_class},
            {"actions", c.actions},
            {"syslog_sent", c.syslog_sent},
            {"syslog_suppressed", c.syslog_suppressed},
            {"syslog_forward_failures", c.syslog_forward_failures}}},
          {"status", v.status}};
}

DaemonView view_from_json(const nlohmann::json& j) {
  DaemonView v;
  if (!j.is_object()) return v;
  read(j, "realtime_ns", v.realtime_ns);
  read(j, "window_ns", v.window_ns);
  read(j, "hostname", v.hostname);
  if (const json& h = member(j, "host"); h.is_object()) {
    read(h, "ncpus", v.host.ncpus);
    read(h, "cpu_pct", v.host.cpu_pct);
    read(h, "mem_total_bytes", v.host.mem_total_bytes);
    read(h, "mem_available_bytes", v.host.mem_available_bytes);
    read(h, "io_read_bps", v.host.io_read_bps);
    read(h, "io_write_bps", v.host.io_write_bps);
    if (const json& psi = member(h, "psi"); psi.is_object()) {
      for (PsiResource r : kPsiResources) {
        const json& e = member(psi, psi_resource_name(r));
        if (!e.is_object()) continue;
        HostPsi& p = v.host.psi[static_cast<size_t>(r)];
        p.ok = true;
        read(e, "some_avg10", p.some_avg10);
        read(e, "some_total_us", p.some_total_us);
        if (e.contains("full_avg10")) {
          double full = 0;
          read(e, "full_avg10", full);
          p.full_avg10 = full;
          read(e, "full_total_us", p.full_total_us);
        }
      }
    }
  }
  if (const json& h = member(j, "health"); h.is_object()) {
    if (const json& d = member(h, "drops"); d.is_object())
      for (unsigned i = 0; i < FP_DROP_NR; ++i) read(d, drop_reason_name(i), v.health.drops[i]);
    read(h, "drops_total", v.health.drops_total);
    read(h, "sample_hz", v.health.sample_hz);
    read(h, "ticks", v.health.ticks);
    read(h, "tick_us_p50", v.health.tick_us_p50);
    read(h, "tick_us_p99", v.health.tick_us_p99);
    read(h, "procs_tracked", v.health.procs_tracked);
    read(h, "max_procs", v.health.max_procs);
    read(h, "malformed_events", v.health.malformed_events);
  }
  if (const json& p = member(j, "procs"); p.is_array())
    for (const auto& r : p)
      if (r.is_object()) v.procs.push_back(row_from_json(r));
  if (const json& f = member(j, "open_faults"); f.is_array())
    for (const auto& r : f)
      if (r.is_object()) v.open_faults.push_back(nlohmann::ordered_json(r));
  if (const json& c = member(j, "counters"); c.is_object()) {
    read_counts(c, "faults_by_class", v.counters.faults_by_class);
    read_counts(c, "resolved_by_class", v.counters.resolved_by_class);
    read_counts(c, "actions", v.counters.actions);
    read(c, "syslog_sent", v.counters.syslog_sent);
    read(c, "syslog_suppressed", v.counters.syslog_suppressed);
    read(c, "syslog_forward_failures", v.counters.syslog_forward_failures);
  }
  if (const json& s = member(j, "status"); s.is_object()) v.status = s;
  return v;
}

}  // namespace fp
