#include "report/top_groups.h"

#include <algorithm>
#include <unordered_map>

#include "detect/engine.h"
#include "report/top_model.h"

namespace fp {

std::string group_of(const ProcessRow& r) {
  if (r.kernel) return "[kernel]";
  if (std::string unit = unit_of_cgroup(r.cgroup); !unit.empty()) return unit;
  return r.cgroup.empty() ? "-" : r.cgroup;
}

std::vector<GroupRow> group_rows(const std::vector<ProcessRow>& rows) {
  std::vector<GroupRow> out;
  std::unordered_map<std::string, size_t> index;
  for (const ProcessRow& r : rows) {
    std::string name = group_of(r);
    auto [it, fresh] = index.emplace(name, out.size());
    if (fresh) out.push_back(GroupRow{std::move(name)});
    GroupRow& g = out[it->second];
    g.procs++;
    g.active += !r.idle;
    g.in_dstate += r.in_dstate;
    g.faulty += state_rank(r.state) == StateRank::Fault;
    g.cpu_pct += r.cpu_pct;
    g.io_read_bps += r.io_read_bps;
    g.io_write_bps += r.io_write_bps;
    g.faults_per_s += r.faults_per_s;
    g.forks_per_s += r.forks_per_s;
    g.runq_p99_ms = std::max(g.runq_p99_ms, r.runq_p99_ms);
    g.rss_bytes += r.rss_bytes;
  }
  return out;
}

namespace {

const std::vector<Column>& group_columns() {
  static const std::vector<Column> kColumns = {
      {"GROUP", 40, true},  {"PROCS", 5, false},  {"ACTIVE", 6, false}, {"CPU%", 6, false},
      {"RUNQ99", 6, false}, {"READ/s", 6, false}, {"WRITE/s", 7, false}, {"FLT/s", 6, false},
      {"RSS", 6, false},    {"FORK/s", 6, false}, {"D", 3, false},      {"FAULTS", 6, false},
  };
  return kColumns;
}

}  // namespace

std::string format_group_header() {
  const auto& cols = group_columns();
  std::vector<std::string> cells;
  for (const auto& c : cols) cells.push_back(c.title);
  return format_cells(cols, cells);
}

std::string format_group_row(const GroupRow& g) {
  // a long cgroup path keeps its end, where the distinguishing part is
  std::string name = g.name.size() > 40 ? "..." + g.name.substr(g.name.size() - 37) : g.name;
  return format_cells(group_columns(),
                      {name, std::to_string(g.procs), std::to_string(g.active), human_number(g.cpu_pct),
                       human_ms(g.runq_p99_ms), human_bytes(g.io_read_bps), human_bytes(g.io_write_bps),
                       human_number(g.faults_per_s), human_bytes(double(g.rss_bytes)), human_number(g.forks_per_s),
                       std::to_string(g.in_dstate), std::to_string(g.faulty)});
}

}  // namespace fp
