#include "report/top_model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <functional>

#include "util/text.h"

namespace fp {

const char* sort_key_name(SortKey k) {
  switch (k) {
    case SortKey::State: return "state";
    case SortKey::Cpu: return "cpu";
    case SortKey::Rss: return "rss";
    case SortKey::Io: return "io";
    case SortKey::Runq: return "runq";
    case SortKey::Faults: return "faults/s";
    case SortKey::Pid: return "pid";
  }
  return "?";
}

std::optional<SortKey> sort_key_for_key(int ch) {
  switch (ch) {
    case 's': return SortKey::State;
    case 'c': return SortKey::Cpu;
    case 'm': return SortKey::Rss;
    case 'i': return SortKey::Io;
    case 'r': return SortKey::Runq;
    case 'f': return SortKey::Faults;
    case 'p': return SortKey::Pid;
    default: return std::nullopt;
  }
}

namespace {

std::string printf_str(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

bool is_zero(double v) { return !(v > 0) || v < 0.005; }

}  // namespace

std::string human_bytes(double b) {
  if (!(b >= 0.5)) return "0";
  static const char* kUnits[] = {"", "K", "M", "G", "T", "P"};
  size_t u = 0;
  while (b >= 1024 && u + 1 < std::size(kUnits)) {
    b /= 1024;
    ++u;
  }
  if (u == 0) return printf_str("%.0f", b);
  // 1023.96K would print as "1024K": carry it into the next unit.
  if (b >= 1023.5 && u + 1 < std::size(kUnits)) {
    b /= 1024;
    ++u;
  }
  return printf_str(b < 9.95 ? "%.1f" : "%.0f", b) + kUnits[u];
}

std::string human_ms(double ms) {
  if (is_zero(ms)) return "0";
  if (ms < 1) return printf_str("%.2f", ms);
  if (ms < 9.95) return printf_str("%.1f", ms);
  if (ms < 999.5) return printf_str("%.0f", ms);
  return human_number(ms / 1000) + "s";
}

std::string human_number(double v) {
  if (is_zero(v)) return "0";
  if (v < 9.95) return printf_str("%.1f", v);
  if (v < 9999.5) return printf_str("%.0f", v);
  static const char* kUnits[] = {"K", "M", "G", "T"};
  size_t u = 0;
  v /= 1000;
  while (v >= 999.5 && u + 1 < std::size(kUnits)) {
    v /= 1000;
    ++u;
  }
  return printf_str(v < 9.95 ? "%.1f" : "%.0f", v) + kUnits[u];
}

StateRank state_rank(const std::string& state) {
  if (state == "ok" || state.empty()) return StateRank::Ok;
  if (state == "throttled") return StateRank::Throttled;
  if (state == "restarted") return StateRank::Restarted;
  return StateRank::Fault;
}

const std::vector<Column>& top_columns() {
  static const std::vector<Column> kColumns = {
      {"PID", 7, false},     {"USER", 8, true},     {"COMM", 15, true},   {"CPU%", 6, false},
      {"RUNQ99", 6, false},  {"DSTATE", 7, false},  {"READ/s", 6, false}, {"WRITE/s", 7, false},
      {"IOLAT99", 7, false}, {"IOERR", 5, false},   {"DIRTY", 6, false},  {"FLT/s", 6, false},
      {"RECLAIM", 7, false}, {"RSS", 6, false},     {"FORK/s", 6, false}, {"RETR/s", 6, false},
      {"CFAIL/s", 7, false}, {"STATE", 15, true},
  };
  return kColumns;
}

namespace {

// `text` padded or cut to the column's width (in code points, after
// display_text(): a name cannot bring a control byte or half a UTF-8
// sequence to the terminal); the last column is not padded on the right (no
// trailing blanks in batch output).
void cell(std::string& out, const Column& c, const std::string& text, bool last) {
  if (!out.empty()) out += ' ';
  std::string t = fit_columns(text, size_t(c.width), c.left);
  if (last && c.left) t.erase(t.find_last_not_of(' ') + 1);
  out += t;
}

}  // namespace

std::string format_cells(const std::vector<Column>& cols, const std::vector<std::string>& cells) {
  std::string out;
  for (size_t i = 0; i < cols.size() && i < cells.size(); ++i) cell(out, cols[i], cells[i], i + 1 == cols.size());
  return out;
}

std::string format_table_header() {
  std::vector<std::string> titles;
  for (const auto& c : top_columns()) titles.push_back(c.title);
  return format_cells(top_columns(), titles);
}

std::string format_row(const ProcessRow& r) {
  const auto& cols = top_columns();
  // A process in uninterruptible sleep now is marked "D" before its D-state time.
  std::string dstate = (r.in_dstate ? "D " : "") + human_ms(r.dstate_ms);
  const std::vector<std::string> cells = {
      std::to_string(r.pid),
      r.user.empty() ? "-" : r.user,
      r.comm,
      human_number(r.cpu_pct),
      human_ms(r.runq_p99_ms),
      dstate,
      human_bytes(r.io_read_bps),
      human_bytes(r.io_write_bps),
      human_ms(r.io_lat_p99_ms),
      std::to_string(r.io_errors),
      human_ms(r.dirty_throttle_ms),
      human_number(r.faults_per_s),
      human_ms(r.reclaim_ms),
      human_bytes(double(r.rss_bytes)),
      human_number(r.forks_per_s),
      human_number(r.net_retrans_per_s),
      human_number(r.net_connect_fail_per_s),
      r.state,
  };
  return format_cells(cols, cells);
}

// ---- the model -------------------------------------------------------------------

namespace {

double sort_value(const ProcessRow& r, SortKey k) {
  switch (k) {
    case SortKey::Cpu: return r.cpu_pct;
    case SortKey::Rss: return double(r.rss_bytes);
    case SortKey::Io: return r.io_read_bps + r.io_write_bps;
    case SortKey::Runq: return r.runq_p99_ms;
    case SortKey::Faults: return r.faults_per_s;
    case SortKey::State:
    case SortKey::Pid: break;
  }
  return 0;
}

bool contains_nocase(const std::string& hay, const std::string& needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}

}  // namespace

TopModel::Keep TopModel::keep() const {
  Keep k;
  if (const ProcessRow* r = selected_row()) k.pid = r->pid;
  if (const GroupRow* g = selected_group()) k.group = g->name;
  return k;
}

void TopModel::set_view(DaemonView v) {
  Keep k = keep();
  view_ = std::move(v);
  rebuild(k);
}

void TopModel::set_sort(SortKey k) {
  Keep kp = keep();
  sort_ = k;
  rebuild(kp);
}

void TopModel::set_filter(std::string f) {
  Keep k = keep();
  filter_ = std::move(f);
  rebuild(k);
}

void TopModel::set_hide_idle(bool hide) {
  Keep k = keep();
  hide_idle_ = hide;
  rebuild(k);
}

void TopModel::set_group_filter(std::string g) {
  Keep k = keep();
  group_filter_ = std::move(g);
  rebuild(k);
}

void TopModel::set_mode(ViewMode m) {
  if (m == mode_) return;
  Keep k = keep();
  // the selected process's group, or the first process of the selected group
  if (m == ViewMode::Groups) {
    if (const ProcessRow* r = selected_row()) k.group = group_of(*r);
  } else if (!k.group.empty()) {
    for (const ProcessRow* r : shown_)
      if (group_of(*r) == k.group) {
        k.pid = r->pid;
        break;
      }
  }
  mode_ = m;
  rebuild(k);
}

void TopModel::sort_groups() {
  const SortKey k = sort_;
  auto value = [k](const GroupRow& g) {
    switch (k) {
      case SortKey::Rss: return double(g.rss_bytes);
      case SortKey::Io: return g.io_read_bps + g.io_write_bps;
      case SortKey::Runq: return g.runq_p99_ms;
      case SortKey::Faults: return g.faults_per_s;
      default: return g.cpu_pct;
    }
  };
  std::stable_sort(shown_groups_.begin(), shown_groups_.end(), [&](const GroupRow* a, const GroupRow* b) {
    if (k == SortKey::Pid) return a->name < b->name;  // by name: groups have no pid
    if (k == SortKey::State && a->faulty != b->faulty) return a->faulty > b->faulty;
    double va = value(*a), vb = value(*b);
    if (va != vb) return va > vb;
    return a->name < b->name;
  });
}

void TopModel::rebuild(const Keep& keep) {
  shown_.clear();
  for (const auto& r : view_.procs) {
    if (hide_idle_ && r.idle && state_rank(r.state) != StateRank::Fault) continue;
    if (!group_filter_.empty() && group_of(r) != group_filter_) continue;
    if (mode_ == ViewMode::Processes && !filter_.empty() && !contains_nocase(r.comm, filter_)) continue;
    shown_.push_back(&r);
  }
  const SortKey k = sort_;
  std::stable_sort(shown_.begin(), shown_.end(), [k](const ProcessRow* a, const ProcessRow* b) {
    if (k == SortKey::Pid) return a->pid < b->pid;
    if (k == SortKey::State) {
      auto ra = state_rank(a->state), rb = state_rank(b->state);
      if (ra != rb) return ra < rb;
      if (a->cpu_pct != b->cpu_pct) return a->cpu_pct > b->cpu_pct;
      return a->pid < b->pid;
    }
    double va = sort_value(*a, k), vb = sort_value(*b, k);
    if (va != vb) return va > vb;
    return a->pid < b->pid;
  });
  // Groups sum every process of theirs (an idle member still holds memory).
  groups_ = group_rows(view_.procs);
  shown_groups_.clear();
  for (const auto& g : groups_)
    if (filter_.empty() || contains_nocase(g.name, filter_)) shown_groups_.push_back(&g);
  sort_groups();

  const size_t n = list_size();
  if (n == 0) {
    selected_ = -1;
    return;
  }
  if (mode_ == ViewMode::Processes && keep.pid != 0) {
    for (size_t i = 0; i < shown_.size(); ++i)
      if (shown_[i]->pid == keep.pid) {
        selected_ = int(i);
        return;
      }
  }
  if (mode_ == ViewMode::Groups && !keep.group.empty()) {
    for (size_t i = 0; i < shown_groups_.size(); ++i)
      if (shown_groups_[i]->name == keep.group) {
        selected_ = int(i);
        return;
      }
  }
  selected_ = std::clamp(selected_, 0, int(n) - 1);
}

const ProcessRow* TopModel::selected_row() const {
  if (mode_ != ViewMode::Processes || selected_ < 0 || size_t(selected_) >= shown_.size()) return nullptr;
  return shown_[size_t(selected_)];
}

const GroupRow* TopModel::selected_group() const {
  if (mode_ != ViewMode::Groups || selected_ < 0 || size_t(selected_) >= shown_groups_.size()) return nullptr;
  return shown_groups_[size_t(selected_)];
}

void TopModel::move_selection(int delta) {
  if (list_size() == 0) return;
  long next = long(std::max(selected_, 0)) + delta;
  selected_ = int(std::clamp<long>(next, 0, long(list_size()) - 1));
}

void TopModel::select_first() {
  if (list_size() != 0) selected_ = 0;
}

void TopModel::select_last() {
  if (list_size() != 0) selected_ = int(list_size()) - 1;
}

size_t TopModel::scroll_top(size_t height) {
  const size_t n = list_size();
  if (height == 0 || selected_ < 0) return top_ = 0;
  size_t sel = size_t(selected_);
  if (sel < top_) top_ = sel;
  if (sel >= top_ + height) top_ = sel + 1 - height;
  // After the list shrank, do not leave blank rows at the bottom.
  if (n >= height && top_ > n - height) top_ = n - height;
  if (n < height) top_ = 0;
  return top_;
}

std::string TopModel::table_header() const {
  return mode_ == ViewMode::Groups ? format_group_header() : format_table_header();
}

std::string TopModel::table_row(size_t i) const {
  if (mode_ == ViewMode::Groups) return i < shown_groups_.size() ? format_group_row(*shown_groups_[i]) : "";
  return i < shown_.size() ? format_row(*shown_[i]) : "";
}

std::string TopModel::selected_evidence() const {
  const ProcessRow* r = selected_row();
  if (!r || state_rank(r->state) != StateRank::Fault) return "";
  for (const auto& f : view_.open_faults) {
    auto pid = f.find("pid");
    auto start = f.find("start_ns");
    if (pid == f.end() || !pid->is_number() || pid->get<uint64_t>() != r->pid) continue;
    if (start != f.end() && start->is_number() && r->start_ns != 0 && start->get<uint64_t>() != r->start_ns)
      continue;
    auto cls = f.find("class");
    if (cls != f.end() && cls->is_string() && cls->get<std::string>() != r->state) continue;
    return safe_dump(f, 2);
  }
  // No record in the view's list (a partial view): the row's own evidence.
  nlohmann::ordered_json j;
  j["class"] = r->state;
  j["pid"] = r->pid;
  j["comm"] = r->comm;
  j["evidence"] = r->evidence;
  return safe_dump(j, 2);
}

namespace {

std::string strf(const char* f, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

std::string string_field(const nlohmann::ordered_json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return "";
  if (it->is_string()) return display_text(it->get_ref<const std::string&>());
  return safe_dump(*it);
}

std::string scalar_text(const nlohmann::json& v) {
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::fabs(d) >= 100) return strf("%.0f", d);
    return strf("%.3g", d);
  }
  if (v.is_string()) return display_text(v.get_ref<const std::string&>());
  return safe_dump(v);
}

}  // namespace

std::string short_evidence(const nlohmann::json& ev, size_t max_len) {
  std::string out;
  auto add = [&](const std::string& s) {
    if (!out.empty()) out += ' ';
    out += s;
  };
  if (!ev.is_object()) {
    if (!ev.is_null()) out = safe_dump(ev);
  } else {
    // The rule's metric first ("cpu_cores=1.0>0.9"), then the other plain values.
    auto metric = ev.find("metric");
    auto value = ev.find("value");
    bool lead = metric != ev.end() && metric->is_string() && value != ev.end();
    if (lead) {
      std::string s = display_text(metric->get_ref<const std::string&>()) + "=" + scalar_text(*value);
      auto th = ev.find("threshold");
      if (th != ev.end() && th->is_number()) s += ">" + scalar_text(*th);
      add(s);
    }
    for (auto& [k, v] : ev.items()) {
      if (lead && (k == "metric" || k == "value" || k == "threshold" || k == "resolve")) continue;
      if (v.is_structured() || v.is_null()) continue;
      add(display_text(k) + "=" + scalar_text(v));
    }
  }
  return cut_columns(out, max_len);
}

std::vector<std::string> TopModel::header_lines(const std::string& source, size_t max_faults) const {
  const DaemonView& v = view_;
  const HostStats& h = v.host;
  std::vector<std::string> lines;
  uint64_t used = h.mem_total_bytes > h.mem_available_bytes ? h.mem_total_bytes - h.mem_available_bytes : 0;
  lines.push_back(strf("%s  CPU %5.1f%% of %u cpus   MEM %s / %s used   DISK read %s/s write %s/s",
                      v.hostname.empty() ? "faultprobe top" : display_text(v.hostname).c_str(), h.cpu_pct, h.ncpus,
                      human_bytes(double(used)).c_str(), human_bytes(double(h.mem_total_bytes)).c_str(),
                      human_bytes(h.io_read_bps).c_str(), human_bytes(h.io_write_bps).c_str()));
  // PSI "some" avg10 of each resource the host reports, after the utilisation it explains.
  std::string psi;
  for (PsiResource r : kPsiResources) {
    const HostPsi& p = h.psi[static_cast<size_t>(r)];
    if (p.ok) psi += strf(" %s %.1f%%", r == PsiResource::Memory ? "mem" : psi_resource_name(r), p.some_avg10);
  }
  if (!psi.empty()) lines[0] += "   PSI" + psi;
  const ProbeHealth& p = v.health;
  std::string what = mode_ == ViewMode::Groups ? "   view: groups" : "";
  if (hide_idle_) what += "   idle hidden";
  if (!group_filter_.empty()) what += "   group: " + display_text(group_filter_);
  if (!filter_.empty()) what += "   filter: " + display_text(filter_);
  lines.push_back(strf("probe: %.1f Hz sampling, drops %llu, %llu processes tracked   source: %s   sort: %s%s",
                      p.sample_hz, (unsigned long long)p.drops_total, (unsigned long long)p.procs_tracked,
                      source.c_str(), sort_key_name(sort_), what.c_str()));
  lines.push_back(strf("faults: %zu open", v.open_faults.size()));
  size_t shown = 0;
  for (const auto& f : v.open_faults) {
    if (shown == max_faults) {
      lines.push_back(strf("  ... %zu more", v.open_faults.size() - shown));
      break;
    }
    std::string ev;
    if (auto it = f.find("evidence"); it != f.end()) ev = short_evidence(nlohmann::json(*it), 80);
    lines.push_back(strf("  %-16s pid %-7s %-15s %-8s %s", string_field(f, "class").c_str(),
                        string_field(f, "pid").c_str(), string_field(f, "comm").c_str(),
                        string_field(f, "severity").c_str(), ev.c_str()));
    ++shown;
  }
  return lines;
}

std::string TopModel::frame_text(const std::string& source, size_t max_faults, size_t max_rows) const {
  std::string out;
  for (const auto& l : header_lines(source, max_faults)) out += l + "\n";
  out += "\n" + table_header() + "\n";
  const size_t n = max_rows ? std::min(max_rows, list_size()) : list_size();
  for (size_t i = 0; i < n; ++i) out += table_row(i) + "\n";
  return out;
}

}  // namespace fp
