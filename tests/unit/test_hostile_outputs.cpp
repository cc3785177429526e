// Issue 15 item 1, output by output: a process name that is not UTF-8, holds
// a newline or an escape sequence comes out of the daemon's log lines and the
// CLI's text (events, status, top, snapshot) as one line of printable UTF-8.
// (The event JSON, syslog and Prometheus have their tests in test_text,
// test_syslog and test_metrics.)
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "detect/fault.h"
#include "report/snapshot_report.h"
#include "report/top_model.h"
#include "server/text.h"
#include "util/log_format.h"
#include "util/text.h"

namespace fp {
namespace {

const std::string kHostile = "x\xff\xfey\n2026-01-01T00:00:00.000 critical forged \x1b[2J\x1b]0;t\x07";

bool one_clean_line(const std::string& s) { return !needs_display_escape(s) && s.find('\n') == std::string::npos; }

TEST(HostileOutputs, LogLinesAreEscapedByTheFormatter) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger log("hostile", sink);
  log.set_formatter(make_safe_log_formatter("%l %v"));
  log.warn("fault crash pid={} comm={}", 42, kHostile);
  std::string text = out.str();
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  text.pop_back();
  EXPECT_TRUE(one_clean_line(text)) << text;
  EXPECT_EQ(text.rfind("warning fault crash pid=42 comm=x\\xff\\xfey\\x0a2026", 0), 0u) << text;
  // Ordinary messages are untouched.
  out.str("");
  log.info("probe attached, {} rules", 19);
  EXPECT_EQ(out.str(), "info probe attached, 19 rules\n");
}

TEST(HostileOutputs, EventsAndStatusText) {
  FaultRecord r;
  r.cls = FaultClass::Crash;
  r.rule = "crash";
  r.culprit = {42, 1};
  r.comm = kHostile.substr(0, 15);
  r.cgroup = kHostile;
  r.evidence = {{"signal_name", "SIGSEGV"}, {kHostile, kHostile}};
  // As the CLI gets it: parsed from the daemon's line.
  auto ev = nlohmann::json::parse(safe_dump(fault_to_json(r, 0)));
  for (size_t width : {size_t(0), size_t(60), size_t(200)}) {
    std::string line = event_to_text(ev, width);
    EXPECT_TRUE(one_clean_line(line)) << line;
  }
  // From a daemon that did not escape (an older one): still clean.
  nlohmann::json raw = {{"kind", "fault"}, {"comm", "a\nb\x1b[31m"}, {"evidence", {{"k\x07", "v\r"}}}};
  EXPECT_TRUE(one_clean_line(event_to_text(raw, 0))) << event_to_text(raw, 0);
  nlohmann::json status = {{"daemon", {{"config", kHostile}}}, {"hooks", {{{"name", kHostile}, {"reason", "x\ny"}}}}};
  std::string text = status_to_text(status);
  for (size_t start = 0, nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    EXPECT_TRUE(one_clean_line(text.substr(start, nl - start))) << text;
}

TEST(HostileOutputs, TopRowsAndHeader) {
  ProcessRow row;
  row.pid = 42;
  row.comm = "\xe6\x97\xa5\xe6\x9c\xac\x1b[2Jabcdefghijkl";  // two wide chars, then ESC: cut by code point
  row.user = "u\nser";
  row.state = "crash";
  std::string line = format_row(row);
  EXPECT_TRUE(one_clean_line(line)) << line;
  // Every column keeps its width: the header and the row line up.
  EXPECT_EQ(text_columns(line), text_columns(format_table_header()));
  DaemonView v;
  v.hostname = "host\x1b]0;x\x07";
  v.procs.push_back(row);
  FaultRecord r;
  r.cls = FaultClass::Crash;
  r.culprit = {42, 0};
  r.comm = kHostile;
  v.open_faults.push_back(fault_to_json(r, 0));
  TopModel m;
  m.set_view(v);
  m.set_filter("\x1b");
  for (const auto& h : m.header_lines("daemon", 5)) EXPECT_TRUE(one_clean_line(h)) << h;
  m.set_filter("");
  m.select_first();
  std::string evidence = m.selected_evidence();
  EXPECT_TRUE(!needs_display_escape(evidence, true)) << evidence;
}

TEST(HostileOutputs, SnapshotTableAndJson) {
  SnapshotReport rep;
  rep.interval_ns = 1'000'000'000;
  ProcDelta d;
  d.key = {42, 1};
  d.comm = kHostile.substr(0, 15);
  rep.procs.push_back(d);
  ProcInfo info;
  info.found = true;
  info.cmdline = kHostile;
  info.exe = "/tmp/" + kHostile;
  rep.infos.push_back(info);
  std::string table = snapshot_to_table(rep);
  EXPECT_TRUE(!needs_display_escape(table, true)) << table;
  std::string json = safe_dump(snapshot_to_json(rep));
  EXPECT_TRUE(one_clean_line(json)) << json;
  auto back = nlohmann::json::parse(json);
  EXPECT_EQ(unescape_text(back["processes"][0]["cmdline"].get<std::string>()), kHostile);
}

}  // namespace
}  // namespace fp
