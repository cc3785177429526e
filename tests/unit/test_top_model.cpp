// `faultprobe top` without a terminal: sorting, filtering, selection, the
// column text and the header.
#include <gtest/gtest.h>

#include "report/top_model.h"

namespace fp {
namespace {

ProcessRow row(uint32_t pid, const char* comm, double cpu, const char* state = "ok") {
  ProcessRow r;
  r.pid = pid;
  r.comm = comm;
  r.cpu_pct = cpu;
  r.state = state;
  return r;
}

std::vector<uint32_t> pids(const TopModel& m) {
  std::vector<uint32_t> out;
  for (const ProcessRow* r : m.rows()) out.push_back(r->pid);
  return out;
}

// Six processes with distinct orders under every key.
DaemonView sample_view() {
  DaemonView v;
  auto a = row(10, "nginx", 5);
  a.rss_bytes = 300;
  a.io_read_bps = 1;
  a.runq_p99_ms = 9;
  a.faults_per_s = 1;
  auto b = row(20, "postgres", 50, "throttled");
  b.rss_bytes = 100;
  b.io_write_bps = 50;
  b.runq_p99_ms = 1;
  b.faults_per_s = 2;
  auto c = row(30, "hog", 99, "cpu_runaway");
  c.rss_bytes = 200;
  c.runq_p99_ms = 3;
  c.faults_per_s = 40;
  c.evidence = {{"metric", "cpu_cores"}, {"value", 0.99}};
  auto d = row(5, "leaky", 1, "memory_leak");
  d.rss_bytes = 900;
  d.io_read_bps = 30;
  d.io_write_bps = 30;
  d.faults_per_s = 30;
  auto e = row(40, "worker", 20, "restarted");
  auto f = row(2, "NGINX-helper", 0);
  v.procs = {a, b, c, d, e, f};
  nlohmann::ordered_json fc;
  fc["class"] = "cpu_runaway";
  fc["severity"] = "warning";
  fc["pid"] = 30;
  fc["comm"] = "hog";
  fc["evidence"] = {{"metric", "cpu_cores"}, {"value", 0.99}, {"threshold", 0.9}, {"window_ms", 1000}};
  nlohmann::ordered_json fl;
  fl["class"] = "memory_leak";
  fl["severity"] = "warning";
  fl["pid"] = 5;
  fl["comm"] = "leaky";
  fl["evidence"] = {{"metric", "rss_growth_mb_s"}, {"value", 2.5}};
  v.open_faults = {fc, fl};
  return v;
}

TEST(TopModel, DefaultSortPutsFaultsFirstThenThrottledRestartedOkByCpu) {
  TopModel m;
  m.set_view(sample_view());
  EXPECT_EQ(m.sort(), SortKey::State);
  EXPECT_EQ(pids(m), (std::vector<uint32_t>{30, 5, 20, 40, 10, 2}));
}

TEST(TopModel, SortByEachKey) {
  TopModel m;
  m.set_view(sample_view());
  m.set_sort(SortKey::Cpu);
  EXPECT_EQ(pids(m), (std::vector<uint32_t>{30, 20, 40, 10, 5, 2}));
  m.set_sort(SortKey::Rss);
  EXPECT_EQ(pids(m), (std::vector<uint32_t>{5, 10, 30, 20, 2, 40}));  // ties (0) by pid
  m.set_sort(SortKey::Io);
  EXPECT_EQ(pids(m), (std::vector<uint32_t>{5, 20, 10, 2, 30, 40}));
  m.set_sort(SortKey::Runq);
  EXPECT_EQ(pids(m), (std::vector<uint32_t>{10, 30, 20, 2, 5, 40}));
  m.set_sort(SortKey::Faults);
  EXPECT_EQ(pids(m), (std::vector<uint32_t>{30, 5, 20, 10, 2, 40}));
  m.set_sort(SortKey::Pid);
  EXPECT_EQ(pids(m), (std::vector<uint32_t>{2, 5, 10, 20, 30, 40}));
}

TEST(TopModel, KeysSelectSortKeys) {
  EXPECT_EQ(sort_key_for_key('c'), SortKey::Cpu);
  EXPECT_EQ(sort_key_for_key('m'), SortKey::Rss);
  EXPECT_EQ(sort_key_for_key('i'), SortKey::Io);
  EXPECT_EQ(sort_key_for_key('r'), SortKey::Runq);
  EXPECT_EQ(sort_key_for_key('f'), SortKey::Faults);
  EXPECT_EQ(sort_key_for_key('p'), SortKey::Pid);
  EXPECT_EQ(sort_key_for_key('s'), SortKey::State);
  EXPECT_EQ(sort_key_for_key('x'), std::nullopt);
}

TEST(TopModel, FilterIsACaseInsensitiveNameSubstring) {
  TopModel m;
  m.set_view(sample_view());
  m.set_filter("nginx");
  EXPECT_EQ(pids(m), (std::vector<uint32_t>{10, 2}));
  m.set_filter("NOSUCH");
  EXPECT_TRUE(m.rows().empty());
  EXPECT_EQ(m.selected(), -1);
  EXPECT_EQ(m.selected_row(), nullptr);
  EXPECT_EQ(m.selected_evidence(), "");
  m.set_filter("");
  EXPECT_EQ(m.rows().size(), 6u);
  EXPECT_EQ(m.selected(), 0);
}

TEST(TopModel, SelectionFollowsTheProcessAndClampsWhenTheListShrinks) {
  TopModel m;
  m.set_view(sample_view());
  m.move_selection(2);  // pid 20
  ASSERT_EQ(m.selected_row()->pid, 20u);
  m.set_sort(SortKey::Pid);  // 20 moves to index 3; the selection follows it
  EXPECT_EQ(m.selected(), 3);
  EXPECT_EQ(m.selected_row()->pid, 20u);
  m.move_selection(-100);
  EXPECT_EQ(m.selected(), 0);
  m.move_selection(100);
  EXPECT_EQ(m.selected(), 5);
  m.select_first();
  EXPECT_EQ(m.selected(), 0);
  m.select_last();
  EXPECT_EQ(m.selected_row()->pid, 40u);

  // The selected process is gone and the list is shorter: the last row is selected.
  DaemonView smaller;
  smaller.procs = {row(1, "a", 0), row(2, "b", 0)};
  m.set_view(smaller);
  EXPECT_EQ(m.selected(), 1);
  smaller.procs.clear();
  m.set_view(smaller);
  EXPECT_EQ(m.selected(), -1);
  m.move_selection(1);
  EXPECT_EQ(m.selected(), -1);
}

TEST(TopModel, ScrollKeepsTheSelectionVisible) {
  TopModel m;
  DaemonView v;
  for (uint32_t i = 1; i <= 50; ++i) v.procs.push_back(row(i, "p", 0));
  m.set_view(v);
  m.set_sort(SortKey::Pid);
  EXPECT_EQ(m.scroll_top(10), 0u);
  m.move_selection(15);
  EXPECT_EQ(m.scroll_top(10), 6u);  // selection on the last visible line
  m.move_selection(-10);
  EXPECT_EQ(m.scroll_top(10), 5u);
  v.procs.resize(8);
  m.set_view(v);
  EXPECT_EQ(m.scroll_top(10), 0u);  // everything fits now
}

TEST(TopModel, EvidenceOfTheSelectedFault) {
  TopModel m;
  m.set_view(sample_view());
  ASSERT_EQ(m.selected_row()->pid, 30u);
  std::string ev = m.selected_evidence();
  EXPECT_NE(ev.find("\"class\": \"cpu_runaway\""), std::string::npos) << ev;
  EXPECT_NE(ev.find("\"window_ms\": 1000"), std::string::npos) << ev;
  EXPECT_NE(ev.find('\n'), std::string::npos);  // pretty-printed
  m.move_selection(4);                          // pid 10: ok
  EXPECT_EQ(m.selected_evidence(), "");
}

TEST(TopModel, HeaderShowsHostProbeSourceAndOpenFaults) {
  DaemonView v = sample_view();
  v.hostname = "db1";
  v.host = {2, 42.25, 4ull << 30, 1ull << 30, 1536, 3 << 20};
  v.health.sample_hz = 10;
  v.health.drops_total = 3;
  v.health.procs_tracked = 6;
  for (int i = 0; i < 5; ++i) v.open_faults.push_back(v.open_faults[0]);  // 7 in all
  TopModel m;
  m.set_view(v);
  m.set_filter("o");
  auto lines = m.header_lines("local probe (built-in config)", 5);
  ASSERT_EQ(lines.size(), 3u + 5u + 1u);
  EXPECT_EQ(lines[0], "db1  CPU  42.2% of 2 cpus   MEM 3.0G / 4.0G used   DISK read 1.5K/s write 3.0M/s");
  EXPECT_NE(lines[1].find("10.0 Hz"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("drops 3"), std::string::npos);
  EXPECT_NE(lines[1].find("6 processes tracked"), std::string::npos);
  EXPECT_NE(lines[1].find("source: local probe (built-in config)"), std::string::npos);
  EXPECT_NE(lines[1].find("filter: o"), std::string::npos);
  EXPECT_EQ(lines[2], "faults: 7 open");
  EXPECT_NE(lines[3].find("cpu_runaway"), std::string::npos);
  EXPECT_NE(lines[3].find("pid 30"), std::string::npos);
  EXPECT_NE(lines[3].find("hog"), std::string::npos);
  EXPECT_NE(lines[3].find("cpu_cores=0.99>0.9 window_ms=1000"), std::string::npos) << lines[3];
  EXPECT_NE(lines[4].find("memory_leak"), std::string::npos);
  EXPECT_EQ(lines[8], "  ... 2 more");
  // With PSI read, its "some" shares close the host line.
  v.host.psi[static_cast<size_t>(PsiResource::Memory)] = {.ok = true, .some_avg10 = 12.5};
  v.host.psi[static_cast<size_t>(PsiResource::Io)] = {.ok = true, .some_avg10 = 0.25};
  m.set_view(v);
  EXPECT_EQ(m.header_lines("src", 5)[0],
            "db1  CPU  42.2% of 2 cpus   MEM 3.0G / 4.0G used   DISK read 1.5K/s write 3.0M/s   PSI mem 12.5% io 0.2%");
}

TEST(TopModel, FrameTextHasHeaderTableAndRowLimit) {
  TopModel m;
  m.set_view(sample_view());
  std::string f = m.frame_text("daemon /run/x.sock", 5, 2);
  EXPECT_NE(f.find("faults: 2 open"), std::string::npos);
  EXPECT_NE(f.find(format_table_header()), std::string::npos);
  EXPECT_NE(f.find(format_row(*m.rows()[0])), std::string::npos);
  EXPECT_NE(f.find(format_row(*m.rows()[1])), std::string::npos);
  EXPECT_EQ(f.find(format_row(*m.rows()[2])), std::string::npos);
}

// Every process is listed by default, idle ones included (as top and htop);
// hiding idle ones keeps faulty and D-state ones.
TEST(TopModel, IdleProcessesAreShownUnlessHidden) {
  DaemonView v;
  auto busy = row(1, "busy", 40);
  auto idle = row(2, "idle", 0);
  idle.idle = true;
  auto sleeper = row(3, "dd", 0);
  sleeper.in_dstate = true;  // in D: never idle
  auto quiet_fault = row(4, "stuck", 0, "hang");
  quiet_fault.idle = true;
  v.procs = {busy, idle, sleeper, quiet_fault};
  TopModel m;
  m.set_view(v);
  EXPECT_EQ(m.rows().size(), 4u);
  m.set_hide_idle(true);
  EXPECT_EQ(pids(m), (std::vector<uint32_t>{4, 1, 3}));
  EXPECT_NE(m.header_lines("src", 5)[1].find("idle hidden"), std::string::npos);
  m.set_hide_idle(false);
  EXPECT_EQ(m.rows().size(), 4u);
}

// The grouping view: one row per unit (else cgroup, kernel threads apart),
// summing its processes; Enter-like drill-down by a group filter.
TEST(TopModel, GroupViewSumsUnitsAndCgroups) {
  DaemonView v;
  auto a = row(10, "nginx", 5);
  a.cgroup = "/system.slice/nginx.service";
  a.rss_bytes = 100;
  auto b = row(11, "nginx", 7, "cpu_runaway");
  b.cgroup = "/system.slice/nginx.service";
  b.rss_bytes = 50;
  b.io_write_bps = 1000;
  auto c = row(20, "sh", 1);
  c.cgroup = "/batch";
  c.idle = true;
  auto k = row(2, "kthreadd", 0);
  k.kernel = true;
  k.cgroup = "/";
  v.procs = {a, b, c, k};
  TopModel m;
  m.set_view(v);
  m.set_sort(SortKey::Cpu);
  m.set_mode(ViewMode::Groups);
  ASSERT_EQ(m.list_size(), 3u);
  const GroupRow* g = m.groups()[0];
  EXPECT_EQ(g->name, "nginx.service");
  EXPECT_EQ(g->procs, 2u);
  EXPECT_EQ(g->faulty, 1u);
  EXPECT_DOUBLE_EQ(g->cpu_pct, 12);
  EXPECT_EQ(g->rss_bytes, 150u);
  EXPECT_DOUBLE_EQ(g->io_write_bps, 1000);
  EXPECT_EQ(m.groups()[1]->name, "/batch");
  EXPECT_EQ(m.groups()[1]->active, 0u);
  EXPECT_EQ(m.groups()[2]->name, "[kernel]");
  EXPECT_NE(m.table_header().find("GROUP"), std::string::npos);
  EXPECT_EQ(m.table_row(0).rfind("nginx.service", 0), 0u) << m.table_row(0);
  // the selected group's processes, in the process view
  m.move_selection(1);
  ASSERT_NE(m.selected_group(), nullptr);
  m.set_group_filter(m.selected_group()->name);
  m.set_mode(ViewMode::Processes);
  EXPECT_EQ(pids(m), (std::vector<uint32_t>{20}));
  EXPECT_NE(m.frame_text("src", 5, 0).find("group: /batch"), std::string::npos);
  m.set_group_filter("");
  EXPECT_EQ(m.rows().size(), 4u);
}

TEST(TopModel, SwitchingViewsKeepsTheSelectionsGroup) {
  DaemonView v;
  auto a = row(10, "a", 5);
  a.cgroup = "/one";
  auto b = row(20, "b", 3);
  b.cgroup = "/two";
  v.procs = {a, b};
  TopModel m;
  m.set_view(v);
  m.set_sort(SortKey::Cpu);
  m.move_selection(1);
  ASSERT_EQ(m.selected_row()->pid, 20u);
  m.set_mode(ViewMode::Groups);
  ASSERT_NE(m.selected_group(), nullptr);
  EXPECT_EQ(m.selected_group()->name, "/two");
  EXPECT_EQ(m.selected_row(), nullptr);
  m.set_mode(ViewMode::Processes);
  EXPECT_EQ(m.selected_row()->pid, 20u);
}

TEST(TopFormat, HumanUnits) {
  EXPECT_EQ(human_bytes(0), "0");
  EXPECT_EQ(human_bytes(-5), "0");
  EXPECT_EQ(human_bytes(512), "512");
  EXPECT_EQ(human_bytes(1536), "1.5K");
  EXPECT_EQ(human_bytes(10 * 1024), "10K");
  EXPECT_EQ(human_bytes(1023.9 * 1024), "1.0M");
  EXPECT_EQ(human_bytes(12.3 * 1024 * 1024), "12M");
  EXPECT_EQ(human_bytes(3.0 * (1ull << 30)), "3.0G");
  EXPECT_EQ(human_bytes(2.0 * (1ull << 40)), "2.0T");
  EXPECT_EQ(human_ms(0), "0");
  EXPECT_EQ(human_ms(0.35), "0.35");
  EXPECT_EQ(human_ms(4.24), "4.2");
  EXPECT_EQ(human_ms(87.4), "87");
  EXPECT_EQ(human_ms(1234), "1.2s");
  EXPECT_EQ(human_ms(45000), "45s");
  EXPECT_EQ(human_number(0), "0");
  EXPECT_EQ(human_number(0.001), "0");
  EXPECT_EQ(human_number(0.5), "0.5");
  EXPECT_EQ(human_number(99.94), "100");
  EXPECT_EQ(human_number(9999), "9999");
  EXPECT_EQ(human_number(12345), "12K");
  EXPECT_EQ(human_number(2.5e6), "2.5M");
}

TEST(TopFormat, RowCellsAreAlignedToTheColumns) {
  ProcessRow r = row(4242, "a-very-long-command-name", 150.0, "cpu_runaway");
  r.user = "alice";
  r.in_dstate = true;
  r.dstate_ms = 120;
  r.rss_bytes = 5ull << 20;
  r.io_errors = 3;
  std::string line = format_row(r);
  std::string head = format_table_header();
  size_t before_last = 0;  // where the last column (STATE) starts
  for (const auto& c : top_columns()) before_last += size_t(c.width) + 1;
  before_last -= size_t(top_columns().back().width) + 1;
  EXPECT_EQ(line.size(), before_last + std::string("cpu_runaway").size());  // no trailing blanks
  EXPECT_EQ(head.rfind("STATE"), before_last);
  EXPECT_EQ(line.find("cpu_runaway"), before_last);
  EXPECT_EQ(line.substr(0, 8), "   4242 ");                 // numbers right-aligned
  EXPECT_EQ(line.substr(8, 9), "alice    ");                // text left-aligned
  EXPECT_EQ(line.substr(17, 16), "a-very-long-com ");        // cut to the column
  EXPECT_NE(line.find("  150 "), std::string::npos);
  EXPECT_NE(line.find("D 120"), std::string::npos);
  EXPECT_NE(line.find("   5.0M"), std::string::npos);
  EXPECT_NE(head.find("RUNQ99"), std::string::npos);
  EXPECT_NE(head.find("STATE"), std::string::npos);
}

TEST(TopFormat, StateRanks) {
  EXPECT_LT(state_rank("hang"), state_rank("throttled"));
  EXPECT_LT(state_rank("throttled"), state_rank("restarted"));
  EXPECT_LT(state_rank("restarted"), state_rank("ok"));
  EXPECT_EQ(state_rank(""), StateRank::Ok);
}

TEST(TopFormat, ShortEvidence) {
  nlohmann::json ev = {{"metric", "io_p99_ms"}, {"value", 250.123}, {"threshold", 200},
                       {"resolve", 100},        {"requests", 17},   {"victims", {1, 2}}};
  EXPECT_EQ(short_evidence(ev, 200), "io_p99_ms=250>200 requests=17");
  EXPECT_EQ(short_evidence(ev, 12), "io_p99_ms...");
  EXPECT_EQ(short_evidence({{"reason", "segv"}}, 200), "reason=segv");
  EXPECT_EQ(short_evidence(nullptr, 200), "");
}

}  // namespace
}  // namespace fp
