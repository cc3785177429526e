// kernel_error: the kernel's own error reports (bpf/kerror.bpf.c) from the
// ring-buffer record to the fault record and its faces: the decoder, the
// detector names read from the kernel's enum (an unknown value is carried as
// "detector#N"), the detector's evidence (the process in whose context it
// happened, named, not blamed; none in interrupt context), the engine keeping
// findings it would drop for a blamed process (a kernel thread, pid 0), no
// default action ladder, and the syslog and Prometheus lines.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "act/clock.h"
#include "alert/syslog.h"
#include "config/config.h"
#include "detect/detectors.h"
#include "detect/engine.h"
#include "detect/kernel_error.h"
#include "event_payload.h"
#include "faultprobe/abi.h"
#include "probe/event_decode.h"
#include "synthetic.h"
#include "util/text.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace synthetic;

constexpr uint32_t kSelf = 777;

fp_kerror_event kerror(uint32_t tgid, uint64_t start, const char* comm, uint32_t detector, uint64_t id,
                       uint32_t context = FP_KERR_CTX_TASK) {
  fp_kerror_event e{};
  test::hdr(e.hdr, FP_EV_KERNEL_ERROR, tgid, start, comm);
  e.id = id;
  e.detector = detector;
  e.tid = tgid + 1;
  e.context = context;
  e.flags = FP_KERR_IRQ_KNOWN;
  std::strncpy(e.task_comm, "worker-thread", FP_COMM_LEN - 1);
  return e;
}

KernelErrorRecord record_of(const fp_kerror_event& e) {
  EventBatch b;
  EXPECT_TRUE(decode_event(&e, sizeof e, b));
  EXPECT_EQ(b.kernel_errors.size(), 1u);
  return b.kernel_errors.empty() ? KernelErrorRecord{} : b.kernel_errors[0];
}

// The names this host's 6.18 kernel gives (enum error_detector).
const ErrorDetectorNames kNames =
    error_detector_names({{"ERROR_DETECTOR_KFENCE", 0}, {"ERROR_DETECTOR_KASAN", 1}, {"ERROR_DETECTOR_WARN", 2}});

TEST(KernelErrorDecode, EveryField) {
  fp_kerror_event e = kerror(4242, 99, "dbserver", 0, 0xdeadbeef00001000ull);
  KernelErrorRecord r = record_of(e);
  EXPECT_EQ(r.ts_ns, test::kEventTs);
  EXPECT_EQ(r.proc, (ProcKey{4242, 99}));
  EXPECT_EQ(r.comm, "dbserver");
  EXPECT_EQ(r.tid, 4243u);
  EXPECT_EQ(r.task_comm, "worker-thread");
  EXPECT_EQ(r.detector, 0u);
  EXPECT_EQ(r.id, 0xdeadbeef00001000ull);
  EXPECT_EQ(r.context, uint32_t(FP_KERR_CTX_TASK));
  EXPECT_TRUE(r.irq_known);
}

TEST(KernelErrorDecode, ShortRecordIsRefused) {
  fp_kerror_event e = kerror(1, 1, "x", 0, 1);
  EventBatch b;
  EXPECT_FALSE(decode_event(&e, sizeof e - 1, b));
  EXPECT_TRUE(b.kernel_errors.empty());
}

TEST(KernelErrorNames, FromTheKernelsEnum) {
  EXPECT_EQ(error_detector_name(0, &kNames), "kfence");
  EXPECT_EQ(error_detector_name(1, &kNames), "kasan");
  EXPECT_EQ(error_detector_name(2, &kNames), "warning");  // ERROR_DETECTOR_WARN, as the tracepoint prints it
  // A newer kernel's detector is named as that kernel names it.
  ErrorDetectorNames newer = error_detector_names({{"ERROR_DETECTOR_KMSAN", 3}, {"ERROR_DETECTOR_", 4}});
  EXPECT_EQ(error_detector_name(3, &newer), "kmsan");
  EXPECT_EQ(error_detector_name(4, &newer), "detector#4");  // an empty name is none
}

TEST(KernelErrorNames, UnknownValueIsCarriedAsANumber) {
  EXPECT_EQ(error_detector_name(7, &kNames), "detector#7");
  EXPECT_EQ(error_detector_name(0, nullptr), "detector#0");  // no BTF: numbers only
  EXPECT_EQ(kernel_error_context_name(FP_KERR_CTX_KTHREAD), "kernel_thread");
  EXPECT_EQ(kernel_error_context_name(9), "context#9");
  EXPECT_EQ(kernel_error_id_hex(0xdeadbeef00001000ull), "0xdeadbeef00001000");
  EXPECT_EQ(kernel_error_id_hex(0), "0x0");
}

// ---- the detector ----

RuleConfig kernel_rule() {
  Config c = default_config();
  for (const RuleConfig& r : c.rules)
    if (r.cls == FaultClass::KernelError) return r;
  ADD_FAILURE() << "no built-in kernel_error rule";
  return {};
}

struct Bench {
  ProcessTable table;
  FakeInfos infos;
  EventBatch events;
  uint64_t now = kT0;
  std::vector<Finding> tick(Detector& d, const ErrorDetectorNames* names = &kNames) {
    World w;
    w.now_ns = now;
    w.tick_ns = kTick;
    w.procs = &table;
    w.events = &events;
    w.infos = &infos;
    w.self_tgid = kSelf;
    w.error_detectors = names;
    std::vector<Finding> out;
    d.evaluate(w, out);
    events.clear();
    now += kTick;
    return out;
  }
};

TEST(KernelErrorRule, BuiltInIsOnAndEventDriven) {
  RuleConfig r = kernel_rule();
  EXPECT_EQ(r.name, "kernel_error");
  EXPECT_TRUE(r.enabled);
  EXPECT_EQ(r.severity, Severity::Warning);
  EXPECT_EQ(r.clear, 600s);
}

TEST(KernelErrorDetector, KfenceInAProcessNamesItWithoutBlame) {
  Bench b;
  b.table.update(b.now, proc(4242, 99, "dbserver"));
  auto d = make_kernel_error(kernel_rule());
  b.events.kernel_errors.push_back(record_of(kerror(4242, 99, "dbserver", 0, 0xdeadbeef00001000ull)));
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 1u);
  const Finding& f = out[0];
  EXPECT_EQ(f.culprit, (ProcKey{4242, 99}));
  EXPECT_TRUE(f.immediate);
  EXPECT_EQ(f.severity, Severity::Critical);  // a bad access inside the kernel
  EXPECT_EQ(f.subject, "kfence 0xdeadbeef00001000");
  EXPECT_EQ(f.evidence["report"], "kfence 0xdeadbeef00001000");
  EXPECT_EQ(f.evidence["source"], "kernel");
  EXPECT_EQ(f.evidence["detector"], "kfence");
  EXPECT_EQ(f.evidence["detector_value"], 0);
  EXPECT_EQ(f.evidence["id"], "0xdeadbeef00001000");
  EXPECT_EQ(f.evidence["context"], "task");
  EXPECT_EQ(f.evidence["tid"], 4243);
  EXPECT_EQ(f.evidence["comm"], "dbserver");
  EXPECT_EQ(f.evidence["thread"], "worker-thread");
  EXPECT_EQ(f.evidence["reports"], 1);
  EXPECT_NE(f.evidence["kernel_bug"].get<std::string>().find("not its cause"), std::string::npos);
  EXPECT_EQ(f.evidence["summary"],
            "kernel kfence report, id 0xdeadbeef00001000, in the kernel on behalf of pid 4242 dbserver (thread "
            "4243 worker-thread)");
  // Nothing the next tick: an event opens a fault once; the tracker keeps it open.
  EXPECT_TRUE(b.tick(*d).empty());
}

TEST(KernelErrorDetector, WarningAndAnUnknownDetectorAreCarried) {
  Bench b;
  auto d = make_kernel_error(kernel_rule());
  b.events.kernel_errors.push_back(record_of(kerror(50, 5, "app", 2, 0xffffffff81234567ull)));
  b.events.kernel_errors.push_back(record_of(kerror(50, 5, "app", 7, 0x1234)));
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].subject, "warning 0xffffffff81234567");
  EXPECT_EQ(out[0].severity, Severity::Warning);
  EXPECT_EQ(out[1].evidence["detector"], "detector#7");
  EXPECT_EQ(out[1].evidence["detector_value"], 7);
  EXPECT_EQ(out[1].severity, Severity::Warning);
}

TEST(KernelErrorDetector, RepeatsOfOneSiteAreOneFindingThatCountsThem) {
  Bench b;
  auto d = make_kernel_error(kernel_rule());
  for (int i = 0; i < 3; i++) b.events.kernel_errors.push_back(record_of(kerror(50, 5, "app", 2, 0xabc)));
  b.events.kernel_errors.push_back(record_of(kerror(51, 5, "other", 2, 0xabc)));
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].evidence["reports"], 3);
  EXPECT_EQ(out[1].culprit.tgid, 51u);
  EXPECT_EQ(out[1].evidence["reports"], 1);
}

TEST(KernelErrorDetector, InterruptContextNamesNoProcess) {
  Bench b;
  auto d = make_kernel_error(kernel_rule());
  b.events.kernel_errors.push_back(record_of(kerror(60, 6, "bystander", 1, 0xff00, FP_KERR_CTX_HARDIRQ)));
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit, ProcKey{});
  EXPECT_EQ(out[0].evidence["context"], "hardirq");
  EXPECT_EQ(out[0].evidence["interrupted"]["pid"], 60);
  EXPECT_FALSE(out[0].evidence.contains("tid"));
  EXPECT_NE(out[0].evidence["summary"].get<std::string>().find("interrupted pid 60 bystander"), std::string::npos);
}

TEST(KernelErrorDetector, CommBytesAreKeptAndTheSummaryIsPrintable) {
  Bench b;
  auto d = make_kernel_error(kernel_rule());
  b.events.kernel_errors.push_back(record_of(kerror(70, 7, "x\xff\n\x1b[2J", 0, 1)));
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].evidence["comm"], "x\xff\n\x1b[2J");  // the bytes, for the record's escaping
  const std::string summary = out[0].evidence["summary"];
  EXPECT_FALSE(needs_display_escape(summary)) << summary;
  EXPECT_NE(summary.find(R"(x\xff\x0a\x1b[2J)"), std::string::npos) << summary;
  // The event line escapes the evidence's bytes (reversibly).
  EXPECT_NE(safe_dump(out[0].evidence).find(R"(x\\xff\\x0a\\x1b[2J)"), std::string::npos) << safe_dump(out[0].evidence);
}

TEST(KernelErrorDetector, ARuleWithAMatchCoversOnlyItsProcesses) {
  Bench b;
  b.table.update(b.now, proc(80, 8, "postgres"));
  b.table.update(b.now, proc(81, 8, "nginx"));
  RuleConfig r = kernel_rule();
  r.match.comm = "postgres";
  auto d = make_kernel_error(r);
  b.events.kernel_errors.push_back(record_of(kerror(80, 8, "postgres", 0, 1)));
  b.events.kernel_errors.push_back(record_of(kerror(81, 8, "nginx", 0, 2)));
  b.events.kernel_errors.push_back(record_of(kerror(0, 0, "swapper/1", 0, 3, FP_KERR_CTX_SOFTIRQ)));
  auto out = b.tick(*d);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].culprit.tgid, 80u);
}

// ---- through the engine ----

Config engine_config() {
  Config c = default_config();
  c.sample_interval = 100ms;
  return c;
}

TEST(KernelErrorEngine, OpensForAKernelThreadAndForNoProcessAndStaysOpenAfterExit) {
  FakeInfos infos;
  Engine e(engine_config(), HostInfo{4, 8ull << 30, 4096}, infos, kSelf);
  ErrorDetectorNames names = kNames;
  e.set_error_detector_names(&names);
  std::vector<fp_proc> slots(4);
  slots[0] = proc(90, 9, "kworker/0:1");
  slots[0].flags |= FP_PROC_KTHREAD;
  slots[1] = proc(91, 9, "app");
  std::vector<SlotChange> changed = {{0, &slots[0]}, {1, &slots[1]}};
  EventBatch ev;
  ev.kernel_errors.push_back(record_of(kerror(90, 9, "kworker/0:1", 2, 0x10, FP_KERR_CTX_KTHREAD)));
  ev.kernel_errors.push_back(record_of(kerror(0, 0, "swapper/0", 0, 0x20, FP_KERR_CTX_SOFTIRQ)));
  ev.kernel_errors.push_back(record_of(kerror(91, 9, "app", 1, 0x30)));
  uint64_t now = kT0;
  auto out = e.tick(now, changed, ev);
  std::map<uint32_t, const FaultRecord*> ke;  // by pid
  for (const auto& r : out)
    if (r.cls == FaultClass::KernelError) ke[r.culprit.tgid] = &r;
  ASSERT_EQ(ke.size(), 3u);
  ASSERT_TRUE(ke.count(90) && ke.count(0) && ke.count(91));
  EXPECT_EQ(ke[90]->comm, "kworker/0:1");  // a kernel thread: named, never acted on (safety)
  EXPECT_EQ(ke[0]->subject, "kfence 0x20");
  EXPECT_EQ(ke[91]->comm, "app");
  EXPECT_EQ(ke[91]->severity, Severity::Critical);
  EXPECT_EQ(fault_to_json(*ke[91], 0)["class"], "kernel_error");
  EXPECT_EQ(fault_to_json(*ke[91], 0)["evidence"]["report"], "kasan 0x30");

  // The process exits: the kernel's report stays a fact until `clear`.
  slots[1].tgid = 0;
  EventBatch none;
  out = e.tick(now += kTick, {{1, &slots[1]}}, none);
  for (const auto& r : out) EXPECT_NE(r.cls, FaultClass::KernelError) << fault_to_json(r, 0).dump();
  size_t open = 0;
  for (const auto& r : e.open_faults()) open += r.cls == FaultClass::KernelError;
  EXPECT_EQ(open, 3u);
}

TEST(KernelErrorPolicy, NoDefaultLadder) {
  Config c = default_config();
  EXPECT_TRUE(c.policies.empty());  // no policy, no ladder: alerted only
  PolicyConfig p;
  p.name = "web";
  EXPECT_EQ(p.ladder(FaultClass::KernelError), nullptr);
}

// ---- faces ----

FaultRecord kernel_record() {
  FaultRecord r;
  r.cls = FaultClass::KernelError;
  r.severity = Severity::Critical;
  r.rule = "kernel_error";
  r.culprit = {4242, 99};
  r.comm = "dbserver";
  r.subject = "kfence 0xdeadbeef00001000";
  r.evidence = {{"detector", "kfence"}, {"id", "0xdeadbeef00001000"}, {"context", "task"}};
  return r;
}

struct Lines : SyslogSink {
  std::vector<AlertLine>* lines;
  explicit Lines(std::vector<AlertLine>* out) : lines(out) {}
  void send(const AlertLine& line) override { lines->push_back(line); }
  std::string describe() const override { return "lines"; }
};

TEST(KernelErrorFaces, SyslogNamesTheReport) {
  FakeClock clock;
  std::vector<AlertLine> lines;
  SyslogSinks sinks;
  sinks.push_back(std::make_unique<Lines>(&lines));
  DaemonConfig dc;
  Alerter a(dc, clock, std::move(sinks));
  a.fault_opened(kernel_record());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].text.rfind("fault class=kernel_error severity=critical rule=kernel_error pid=4242 comm=dbserver", 0),
            0u)
      << lines[0].text;
  EXPECT_NE(lines[0].text.find(R"(report="kfence 0xdeadbeef00001000")"), std::string::npos) << lines[0].text;
}

}  // namespace
}  // namespace fp
