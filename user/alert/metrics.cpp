#include "alert/metrics.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <map>
#include <utility>
#include <vector>

#include "act/action.h"
#include "detect/fault.h"
#include "report/snapshot_report.h"
#include "util/text.h"

namespace fp {
namespace {

using Label = std::pair<std::string_view, std::string_view>;

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Shortest form that reads back exactly; plain decimals in the usual range
  // ("5000000", "0.0009"), exponents only outside it.
  char buf[400];
  double mag = std::fabs(v);
  auto fmt = mag == 0 || (mag >= 1e-5 && mag < 1e15) ? std::chars_format::fixed : std::chars_format::general;
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, fmt);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

// HELP text escapes '\\' and '\n' (label values also '"').
std::string escape_help(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// Writes families one at a time: HELP and TYPE, then that family's samples,
// so every family's lines are contiguous as the format requires.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    name_ = name;
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += escape_help(help);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::initializer_list<Label> labels, double v) { sample(std::vector<Label>(labels), format_value(v)); }
  void sample(std::initializer_list<Label> labels, uint64_t v) { sample(std::vector<Label>(labels), std::to_string(v)); }
  void sample(const std::vector<Label>& labels, const std::string& value) {
    out_ += name_;
    if (!labels.empty()) {
      out_ += '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += k;
        out_ += "=\"";
        out_ += prom_escape_label(v);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  // A summary's `name_count` / `name_sum` line, part of the current family.
  void sample_suffix(std::string_view suffix, uint64_t v) {
    out_ += name_;
    out_ += suffix;
    out_ += ' ';
    out_ += std::to_string(v);
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
  std::string name_;
};

uint64_t lookup(const std::map<std::string, uint64_t>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

// Every class name first (zeros included), then names the view has that we
// do not know (a newer engine), so nothing it counts is hidden.
std::vector<std::string> class_names(const std::map<std::string, uint64_t>& extra) {
  std::vector<std::string> names;
  for (FaultClass c : kAllFaultClasses) names.emplace_back(fault_class_name(c));
  for (const auto& [k, v] : extra)
    if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
  return names;
}

std::string json_text(const nlohmann::ordered_json& f, const char* key) {
  auto it = f.find(key);
  if (it == f.end()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// One series per open fault, so an alert can name the process (pid, comm)
// and route on the severity: it appears when the fault opens and goes when
// it resolves, which is what Prometheus turns into a firing and a resolved
// alert. A hardware fault (pid 0) adds its device, the fault's subject: two
// disks' errors are two faults. A kernel error adds the kernel's detector
// (kfence, kasan, warning), so a rule can route kernel bugs to kernel people. Label sets that still coincide are one
// series counting them (a duplicate series would spoil the scrape). Bounded
// (a fleet's Prometheus must not drown in a storm of faults);
// faultprobe_open_faults stays the exact count.
constexpr size_t kMaxOpenFaultSeries = 100;

void render_open_fault_series(Exposition& e, const DaemonView& v) {
  using Labels = std::array<std::string, 7>;  // class, severity, rule, pid, comm, device, detector
  std::vector<std::pair<Labels, uint64_t>> series;
  for (const auto& f : v.open_faults) {
    Labels l{json_text(f, "class"), json_text(f, "severity"), json_text(f, "rule"), json_text(f, "pid"),
             json_text(f, "comm"), "", ""};
    auto cls = parse_fault_class(l[0]);
    if (cls && is_hardware_class(*cls))
      if (auto ev = f.find("evidence"); ev != f.end() && ev->is_object()) l[5] = json_text(*ev, "device");
    if (cls == FaultClass::KernelError)
      if (auto ev = f.find("evidence"); ev != f.end() && ev->is_object()) l[6] = json_text(*ev, "detector");
    auto same = std::find_if(series.begin(), series.end(), [&](const auto& s) { return s.first == l; });
    if (same != series.end()) ++same->second;
    else if (series.size() < kMaxOpenFaultSeries) series.emplace_back(std::move(l), 1);
  }
  e.family("faultprobe_open_fault", "gauge",
           "Open faults (1 each; at most 100 series) by class, severity, rule, culprit pid and comm, "
           "device for hardware faults, detector for kernel errors.");
  for (const auto& [l, n] : series) {
    std::vector<Label> labels = {{"class", l[0]}, {"severity", l[1]}, {"rule", l[2]}, {"pid", l[3]}, {"comm", l[4]}};
    if (!l[5].empty()) labels.emplace_back("device", l[5]);
    if (!l[6].empty()) labels.emplace_back("detector", l[6]);
    e.sample(labels, std::to_string(n));
  }
}

void render_faults(Exposition& e, const DaemonView& v) {
  e.family("faultprobe_faults_total", "counter", "Faults opened, by class.");
  for (const auto& c : class_names(v.counters.faults_by_class))
    e.sample({{"class", c}}, lookup(v.counters.faults_by_class, c));
  e.family("faultprobe_faults_resolved_total", "counter", "Faults resolved, by class.");
  for (const auto& c : class_names(v.counters.resolved_by_class))
    e.sample({{"class", c}}, lookup(v.counters.resolved_by_class, c));

  std::map<std::string, uint64_t> open;
  for (const auto& f : v.open_faults) {
    auto it = f.find("class");
    if (it != f.end() && it->is_string()) ++open[it->get<std::string>()];
  }
  e.family("faultprobe_open_faults", "gauge", "Faults open now, by class.");
  for (const auto& c : class_names(open)) e.sample({{"class", c}}, lookup(open, c));
  render_open_fault_series(e, v);
}

void render_actions(Exposition& e, const DaemonView& v) {
  // Every type x result exists from the start; keys the view adds later
  // ("type/result") come after.
  std::vector<std::pair<std::string, std::string>> keys;
  for (ActionType t : {ActionType::Throttle, ActionType::Unthrottle, ActionType::Restart, ActionType::Restore,
                       ActionType::Kill})
    for (ActionResult r : {ActionResult::Ok, ActionResult::Failed, ActionResult::DryRun, ActionResult::Skipped})
      keys.emplace_back(action_type_name(t), action_result_name(r));
  for (const auto& [key, n] : v.counters.actions) {
    size_t slash = key.find('/');
    std::pair<std::string, std::string> k =
        slash == std::string::npos ? std::pair{key, std::string("unknown")}
                                   : std::pair{key.substr(0, slash), key.substr(slash + 1)};
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  e.family("faultprobe_actions_total", "counter", "Actions taken (or skipped, or dry runs), by type and result.");
  for (const auto& [type, result] : keys)
    e.sample({{"type", type}, {"result", result}}, lookup(v.counters.actions, type + "/" + result));
}

void render_health(Exposition& e, const DaemonView& v) {
  const ProbeHealth& h = v.health;
  e.family("faultprobe_probe_drops_total", "counter", "Records the kernel probe could not take, by reason.");
  for (unsigned i = 0; i < FP_DROP_NR; ++i) e.sample({{"reason", drop_reason_name(i)}}, h.drops[i]);
  e.family("faultprobe_probe_malformed_events_total", "counter", "Ring-buffer events the daemon could not parse.");
  e.sample({}, h.malformed_events);
  e.family("faultprobe_samples_total", "counter", "Sampling ticks since the daemon started.");
  e.sample({}, h.ticks);
  e.family("faultprobe_sample_rate_hz", "gauge", "Sampling ticks per second actually achieved.");
  e.sample({}, h.sample_hz);
  // A summary without _sum: the quantiles are what the daemon measures (over
  // its recent ticks), the count is every tick.
  e.family("faultprobe_sample_cpu_seconds", "summary", "CPU time one sampling tick costs, by quantile.");
  e.sample({{"quantile", "0.5"}}, h.tick_us_p50 / 1e6);
  e.sample({{"quantile", "0.99"}}, h.tick_us_p99 / 1e6);
  e.sample_suffix("_count", h.ticks);
  e.family("faultprobe_processes_tracked", "gauge", "Per-process slots in use in the kernel probe.");
  e.sample({}, h.procs_tracked);
  e.family("faultprobe_processes_max", "gauge", "Per-process slots the kernel probe has.");
  e.sample({}, h.max_procs);
  e.family("faultprobe_syslog_lines_total", "counter",
           "Alert lines: sent to syslog, suppressed by the rate limit, or not delivered to the forward collector.");
  e.sample({{"result", "sent"}}, v.counters.syslog_sent);
  e.sample({{"result", "suppressed"}}, v.counters.syslog_suppressed);
  e.sample({{"result", "forward_failed"}}, v.counters.syslog_forward_failures);
}

void render_host(Exposition& e, const DaemonView& v) {
  const HostStats& h = v.host;
  e.family("faultprobe_host_cpus", "gauge", "CPUs of the host.");
  e.sample({}, static_cast<uint64_t>(h.ncpus));
  e.family("faultprobe_host_cpu_busy_ratio", "gauge", "Busy share of all CPUs over the last window (0..1).");
  e.sample({}, h.cpu_pct / 100.0);
  e.family("faultprobe_host_memory_total_bytes", "gauge", "MemTotal of the host.");
  e.sample({}, h.mem_total_bytes);
  e.family("faultprobe_host_memory_available_bytes", "gauge", "MemAvailable of the host.");
  e.sample({}, h.mem_available_bytes);
  e.family("faultprobe_host_io_read_bytes_per_second", "gauge", "Bytes read from all block devices per second.");
  e.sample({}, h.io_read_bps);
  e.family("faultprobe_host_io_write_bytes_per_second", "gauge", "Bytes written to all block devices per second.");
  e.sample({}, h.io_write_bps);
  // PSI as the kernel keeps it: the 10 s share as a ratio, the stall time as
  // a counter (rate() of it is the stall share over any range). Resources the
  // host does not report are left out.
  e.family("faultprobe_host_pressure_ratio", "gauge",
           "Share of the last 10 s that some (or all non-idle) tasks stalled on the resource (PSI avg10, 0..1).");
  for (PsiResource r : kPsiResources) {
    const HostPsi& p = h.psi[static_cast<size_t>(r)];
    if (!p.ok) continue;
    e.sample({{"resource", psi_resource_name(r)}, {"kind", "some"}}, p.some_avg10 / 100.0);
    if (p.full_avg10) e.sample({{"resource", psi_resource_name(r)}, {"kind", "full"}}, *p.full_avg10 / 100.0);
  }
  e.family("faultprobe_host_pressure_stall_seconds_total", "counter",
           "Time some (or all non-idle) tasks stalled on the resource (PSI total).");
  for (PsiResource r : kPsiResources) {
    const HostPsi& p = h.psi[static_cast<size_t>(r)];
    if (!p.ok) continue;
    e.sample({{"resource", psi_resource_name(r)}, {"kind", "some"}}, double(p.some_total_us) / 1e6);
    if (p.full_avg10) e.sample({{"resource", psi_resource_name(r)}, {"kind", "full"}}, double(p.full_total_us) / 1e6);
  }
}

// Indices into v.procs: the top `n` by each resource (only processes that
// use it: a ranking of zeros says nothing), plus up to `n` processes in a
// non-ok state, in the view's order.
std::vector<size_t> select_processes(const std::vector<ProcessRow>& procs, size_t n) {
  if (n == 0 || procs.empty()) return {};
  std::vector<bool> chosen(procs.size(), false);
  const std::vector<std::function<double(const ProcessRow&)>> resources = {
      [](const ProcessRow& p) { return p.cpu_pct; },
      [](const ProcessRow& p) { return static_cast<double>(p.rss_bytes); },
      [](const ProcessRow& p) { return p.io_read_bps + p.io_write_bps; },
      [](const ProcessRow& p) { return p.faults_per_s; },
      [](const ProcessRow& p) { return p.runq_p99_ms; },
  };
  std::vector<size_t> idx;
  for (const auto& value : resources) {
    idx.clear();
    for (size_t i = 0; i < procs.size(); ++i)
      if (value(procs[i]) > 0) idx.push_back(i);
    size_t k = std::min(n, idx.size());
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), [&](size_t a, size_t b) {
      double va = value(procs[a]), vb = value(procs[b]);
      return va != vb ? va > vb : procs[a].pid < procs[b].pid;
    });
    for (size_t i = 0; i < k; ++i) chosen[idx[i]] = true;
  }
  size_t flagged = 0;
  for (size_t i = 0; i < procs.size() && flagged < n; ++i)
    if (procs[i].state != "ok") {
      chosen[i] = true;
      ++flagged;
    }
  std::vector<size_t> out;
  for (size_t i = 0; i < procs.size(); ++i)
    if (chosen[i]) out.push_back(i);
  return out;
}

void render_processes(Exposition& e, const DaemonView& v, size_t top_n) {
  std::vector<size_t> sel = select_processes(v.procs, top_n);
  e.family("faultprobe_processes_exported", "gauge", "Processes with per-process series in this scrape.");
  e.sample({}, static_cast<uint64_t>(sel.size()));
  if (sel.empty()) return;

  std::vector<std::string> pids;
  for (size_t i : sel) pids.push_back(std::to_string(v.procs[i].pid));
  auto per_process = [&](const char* name, const char* help, const std::function<double(const ProcessRow&)>& value) {
    e.family(name, "gauge", help);
    for (size_t k = 0; k < sel.size(); ++k) {
      const ProcessRow& p = v.procs[sel[k]];
      e.sample({{"pid", pids[k]}, {"comm", p.comm}}, value(p));
    }
  };
  per_process("faultprobe_process_cpu_ratio", "CPU used, in CPUs (1 = one CPU busy), over the last window.",
              [](const ProcessRow& p) { return p.cpu_pct / 100.0; });
  per_process("faultprobe_process_rss_bytes", "Resident set size.",
              [](const ProcessRow& p) { return static_cast<double>(p.rss_bytes); });
  per_process("faultprobe_process_io_read_bytes_per_second",
              "Bytes the process read from storage per second (task IO accounting, as /proc/PID/io).",
              [](const ProcessRow& p) { return p.io_read_bps; });
  per_process("faultprobe_process_io_write_bytes_per_second",
              "Bytes the process wrote to storage per second (task IO accounting: buffered writes count for "
              "the writer, when dirtied).",
              [](const ProcessRow& p) { return p.io_write_bps; });
  per_process("faultprobe_process_dirty_throttle_ratio",
              "Share of the last window the process was paused by dirty-page throttling (seconds per second).",
              [&v](const ProcessRow& p) { return v.window_ns ? p.dirty_throttle_ms * 1e6 / double(v.window_ns) : 0.0; });
  per_process("faultprobe_process_runq_wait_p99_seconds", "Run-queue wait p99 over the last window.",
              [](const ProcessRow& p) { return p.runq_p99_ms / 1000.0; });
  per_process("faultprobe_process_page_faults_per_second", "User page faults per second.",
              [](const ProcessRow& p) { return p.faults_per_s; });
  per_process("faultprobe_process_tcp_retransmits_per_second",
              "TCP packets retransmitted per second on the process's sockets (charged to the socket's owner).",
              [](const ProcessRow& p) { return p.net_retrans_per_s; });
  per_process("faultprobe_process_tcp_retransmit_ratio",
              "Share of the TCP segments the process sent in the last window that were retransmissions.",
              [](const ProcessRow& p) { return p.net_retrans_share; });
  per_process("faultprobe_process_tcp_connect_failures_per_second",
              "TCP connects of the process that failed (refused, timed out, unreachable) per second.",
              [](const ProcessRow& p) { return p.net_connect_fail_per_s; });
  per_process("faultprobe_process_net_drops_per_second",
              "Packets dropped per second with a kernel drop reason on the process's sockets (skb:kfree_skb, "
              "charged to the socket's owner).",
              [](const ProcessRow& p) { return p.net_drops_per_s; });
  e.family("faultprobe_process_state", "gauge",
           "1 for the state of each exported process: ok, the class of its open fault, throttled, restarted.");
  for (size_t k = 0; k < sel.size(); ++k) {
    const ProcessRow& p = v.procs[sel[k]];
    e.sample({{"pid", pids[k]}, {"comm", p.comm}, {"state", p.state.empty() ? "ok" : p.state}}, uint64_t{1});
  }
}

}  // namespace

// Prometheus rejects a whole scrape over one label that is not UTF-8, and a
// comm is whatever bytes a program chose: escape_text() first (the same
// reversible \xHH text as the event stream and syslog), then the format's
// own escapes.
std::string prom_escape_label(std::string_view v) {
  std::string text = escape_text(v);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else out += c;  // no newline is left to escape
  }
  return out;
}

std::string render_metrics(const DaemonView& v, size_t top_n) {
  Exposition e;
  render_faults(e, v);
  render_actions(e, v);
  render_health(e, v);
  render_host(e, v);
  render_processes(e, v, top_n);
  return e.take();
}

}  // namespace fp
