// libFuzzer target: every formatter a record leaves the daemon through, with
// arbitrary bytes in every string field (process names, cgroups, units,
// evidence, action details): the event-stream JSON, syslog's key=value line
// and its RFC 5424 form, the Prometheus exposition, and the CLI's text for
// events, status and `top` rows. None may throw, and each writes valid UTF-8
// with no control byte but its own line ends, and no more lines than it
// means to; the JSON and syslog fields read back to the bytes.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "act/action.h"
#include "act/clock.h"
#include "alert/metrics.h"
#include "alert/syslog.h"
#include "alert/syslog_format.h"
#include "detect/fault.h"
#include "report/top_model.h"
#include "server/text.h"
#include "util/text.h"
#include "fuzz_check.h"

namespace {

using fuzz::check;
using fuzz::clean;

size_t count(std::string_view s, char c) {
  size_t n = 0;
  for (char x : s) n += x == c;
  return n;
}

struct Recording : fp::SyslogSink {
  std::vector<fp::AlertLine>* out;
  explicit Recording(std::vector<fp::AlertLine>* o) : out(o) {}
  void send(const fp::AlertLine& l) override { out->push_back(l); }
  std::string describe() const override { return "fuzz"; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  auto str = [&] { return fdp.ConsumeRandomLengthString(300); };

  fp::FaultRecord r;
  r.kind = fdp.ConsumeBool() ? fp::FaultRecord::Kind::Fault : fp::FaultRecord::Kind::Resolved;
  r.cls = fp::kAllFaultClasses[fdp.ConsumeIntegralInRange<size_t>(0, std::size(fp::kAllFaultClasses) - 1)];
  r.rule = str();
  r.culprit = {fdp.ConsumeIntegral<uint32_t>(), fdp.ConsumeIntegral<uint64_t>()};
  r.comm = str();
  r.cgroup = str();
  r.unit = str();
  r.container = str();
  r.evidence[str()] = str();
  r.evidence["device"] = str();
  r.evidence["n"] = fdp.ConsumeIntegral<int64_t>();

  // The event stream and the state file.
  std::string line = fp::safe_dump(fp::fault_to_json(r, 1'795'680'000'000'000'000ull));
  check(clean(line));
  auto back = nlohmann::json::parse(line);
  check(fp::unescape_text(back["comm"].get<std::string>()) == r.comm);
  check(fp::unescape_text(back["cgroup"].get<std::string>()) == r.cgroup);
  std::string state = fp::safe_dump(fp::fault_state_to_json(r));
  auto st = nlohmann::json::parse(state);
  fp::unescape_json_strings(st);
  auto again = fp::fault_state_from_json(st);
  check(again && again->comm == r.comm && again->cgroup == r.cgroup && again->evidence == r.evidence);

  fp::ActionRecord a;
  a.cls = r.cls;
  a.rule = r.rule;
  a.policy = str();
  a.target.key = r.culprit;
  a.target.comm = r.comm;
  a.target.cgroup = r.cgroup;
  a.target.service = str();
  a.step = str();
  a.outcome.detail = str();
  check(clean(fp::safe_dump(fp::action_to_json(a, 0))));

  // Syslog, both forms: one line each, fields that read back.
  fp::FakeClock clock;
  std::vector<fp::AlertLine> lines;
  fp::SyslogSinks sinks;
  sinks.push_back(std::make_unique<Recording>(&lines));
  fp::DaemonConfig dc;
  dc.syslog_burst = 0;
  fp::Alerter alerter(dc, clock, std::move(sinks));
  alerter.fault_opened(r);
  alerter.fault_resolved(r);
  alerter.action(a);
  alerter.recovery({r.cls, r.rule, r.culprit.tgid, r.comm, fdp.ConsumeBool(), str()});
  alerter.service_event(str(), 3, str());
  check(lines.size() == 5);
  for (const auto& l : lines) {
    check(clean(l.text));
    for (const auto& [k, v] : l.fields) check(clean(v));
    fp::Rfc5424Header h;
    h.hostname = str();
    h.msgid = l.msgid;
    std::string wire = fp::format_rfc5424(h, fp::format_structured_data(fp::kSdId, l.fields), l.text);
    check(clean(wire));
  }
  for (const auto& [k, v] : lines[0].fields)
    if (k == "comm") check(fp::unescape_text(v) == r.comm);
  // The formatters alone, on raw bytes.
  fp::AlertFields raw = {{"comm", r.comm}, {str(), r.cgroup}};
  check(clean(fp::format_kv(raw)));
  check(clean(fp::format_structured_data(fp::kSdId, raw)));

  // Prometheus: one line per sample, nothing injected.
  fp::DaemonView v;
  v.hostname = str();
  for (int i = 0; i < 3; ++i) {
    fp::ProcessRow row;
    row.pid = uint32_t(100 + i);
    row.comm = str();
    row.user = str();
    row.state = str();
    row.cpu_pct = 50;
    v.procs.push_back(std::move(row));
  }
  v.counters.faults_by_class[str()] = 1;
  v.open_faults.push_back(fp::fault_to_json(r, 0));
  std::string prom = fp::render_metrics(v, 5);
  check(clean(prom, true));
  size_t start = 0;
  for (size_t nl; (nl = prom.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view l(prom.data() + start, nl - start);
    check(l.starts_with("# HELP faultprobe_") || l.starts_with("# TYPE faultprobe_") || l.starts_with("faultprobe_"));
  }

  // The CLI's text: events, status, top rows and header.
  check(clean(fp::event_to_text(back, 0)));
  check(clean(fp::event_to_text(nlohmann::json::parse(fp::safe_dump(fp::action_to_json(a, 0))), 120)));
  nlohmann::json status = {{str(), {{str(), str()}}}, {"rules", {{{"name", str()}, {"x", str()}}}}};
  std::string status_text = fp::status_to_text(status);
  check(clean(status_text, true));
  for (const auto& row : v.procs) {
    std::string t = fp::format_row(row);
    check(clean(t));
    check(count(t, '\n') == 0);
  }
  fp::TopModel model;
  model.set_view(v);
  for (const auto& h : model.header_lines(str(), 5)) check(clean(h));
  check(clean(model.frame_text("fuzz", 5, 0), true));
  return 0;
}
