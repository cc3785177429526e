// The live view's data: rows from the process table, host stats from /proc,
// and the JSON transport between daemon and CLI.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "detect_sim.h"
#include "report/view.h"

namespace fp {
namespace {

using sim::kMs;
using sim::kSec;

// ---- build_rows --------------------------------------------------------------------

class BuildRowsTest : public ::testing::Test {
 protected:
  sim::Sim s{2};
  std::vector<ProcessRow> build(const std::vector<FaultRecord>& open = {}, const std::vector<uint32_t>& thr = {},
                                const std::vector<uint32_t>& rst = {}) {
    return build_rows(s.table, s.now, kSec, s.infos, open, thr, rst);
  }
  static const ProcessRow* find(const std::vector<ProcessRow>& rows, uint32_t pid) {
    for (const auto& r : rows)
      if (r.pid == pid) return &r;
    return nullptr;
  }
  void known(uint32_t pid, uint32_t uid, const std::string& cgroup) {
    ProcInfo i;
    i.found = true;
    i.uid = uid;
    i.cgroup = cgroup;
    s.infos.by_pid[pid] = i;
  }
};

TEST_F(BuildRowsTest, RatesOverTheWindowMatchTheLoad) {
  s.spawn(100, "busy");
  sim::Load busy;
  busy.cores = 0.5;
  busy.runq_waits = 10;
  busy.runq_wait_ns = 3 * kMs;  // log2 bucket [2048, 4096) us
  busy.io_bytes = 1 << 20;      // per 100 ms tick: 10 MiB/s
  busy.io_reqs = 4;
  busy.io_lat_ns = 20 * kMs;    // bucket [16384, 32768) us
  busy.page_faults = 30;        // 300/s
  busy.reclaim_ns = 2 * kMs;    // 20 ms per second
  busy.forks = 1;               // 10/s
  s.set_load(100, busy);
  known(100, 0, "/system.slice/busy.service");
  s.run(3);

  auto rows = build();
  const ProcessRow* r = find(rows, 100);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->comm, "busy");
  EXPECT_EQ(r->user, "root");
  EXPECT_EQ(r->cgroup, "/system.slice/busy.service");
  EXPECT_NEAR(r->cpu_pct, 50.0, 0.5);
  EXPECT_NEAR(r->io_write_bps, 10.0 * (1 << 20), 1e3);
  EXPECT_EQ(r->io_read_bps, 0);
  EXPECT_NEAR(r->faults_per_s, 300, 1);
  EXPECT_NEAR(r->reclaim_ms, 20, 0.1);
  EXPECT_NEAR(r->forks_per_s, 10, 0.1);
  // p99 lands in the bucket that holds every sample, capped by the exact maximum.
  EXPECT_GE(r->runq_p99_ms, 2.048);
  EXPECT_LE(r->runq_p99_ms, 3.0);
  EXPECT_GE(r->io_lat_p99_ms, 16.384);
  EXPECT_LE(r->io_lat_p99_ms, 20.0);
  EXPECT_EQ(r->rss_bytes, 64u << 20);
  EXPECT_EQ(r->state, "ok");
  EXPECT_TRUE(r->evidence.is_null());
}

TEST_F(BuildRowsTest, IdleProcessesGetARowAfterTheActiveOnes) {
  s.spawn(300, "idle-b");
  s.spawn(200, "idle-a");
  s.spawn(50, "light");
  s.spawn(60, "heavy");
  s.run(0.2);  // every process reported once
  s.set_load(50, {.cores = 0.1});
  s.set_load(60, {.cores = 0.9});
  s.run(3);

  auto rows = build();
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].pid, 60u);  // active, by CPU
  EXPECT_EQ(rows[1].pid, 50u);
  EXPECT_EQ(rows[2].pid, 200u);  // idle, by pid
  EXPECT_EQ(rows[3].pid, 300u);
  EXPECT_EQ(rows[3].cpu_pct, 0);
  EXPECT_EQ(rows[3].rss_bytes, 64u << 20);  // gauges still shown
  EXPECT_EQ(rows[3].user, "");              // /proc knew nothing of it
  EXPECT_FALSE(rows[0].idle);
  EXPECT_TRUE(rows[2].idle);
  EXPECT_TRUE(rows[3].idle);
}

TEST_F(BuildRowsTest, AnIdleProcessInDStateShowsTheOngoingSleep) {
  fp_proc& p = s.spawn(70, "stuck");
  s.run(0.2);
  p.dstate_active = 1;
  p.dstate_since_ns = s.now;  // entered D now, then nothing changes
  s.run(5);
  auto rows = build();
  const ProcessRow* r = find(rows, 70);
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->in_dstate);
  EXPECT_FALSE(r->idle) << "a process in D is not idle";
  EXPECT_NEAR(r->dstate_ms, 1000, 1);  // the whole 1 s window
}

FaultRecord fault(const ProcKey& k, FaultClass c, Severity sev, uint64_t at, const char* metric) {
  FaultRecord f;
  f.cls = c;
  f.severity = sev;
  f.culprit = k;
  f.mono_ns = at;
  f.evidence = {{"metric", metric}};
  return f;
}

TEST_F(BuildRowsTest, StatePrecedenceFaultThenThrottledThenRestarted) {
  for (uint32_t pid : {1001u, 1002u, 1003u, 1004u}) s.spawn(pid, "svc");
  s.run(1);
  std::vector<FaultRecord> open = {
      fault(s.key(1001), FaultClass::MemoryLeak, Severity::Warning, s.now - 5 * kSec, "rss"),
      fault(s.key(1001), FaultClass::CpuRunaway, Severity::Critical, s.now, "cpu_cores"),
      fault(s.key(1001), FaultClass::IoLatency, Severity::Warning, s.now - 9 * kSec, "p99"),
  };
  FaultRecord resolved = fault(s.key(1004), FaultClass::Hang, Severity::Critical, s.now, "d");
  resolved.kind = FaultRecord::Kind::Resolved;  // not open: no state
  open.push_back(resolved);
  auto rows = build(open, {1001, 1002}, {1001, 1002, 1003});
  EXPECT_EQ(find(rows, 1001)->state, "cpu_runaway");  // the critical one wins over earlier warnings
  EXPECT_EQ(find(rows, 1001)->evidence["metric"], "cpu_cores");
  EXPECT_EQ(find(rows, 1002)->state, "throttled");
  EXPECT_EQ(find(rows, 1003)->state, "restarted");
  EXPECT_EQ(find(rows, 1004)->state, "ok");

  // A fault of an earlier process with the same pid is not this one's.
  std::vector<FaultRecord> stale = {fault({1002, 1}, FaultClass::Hang, Severity::Critical, s.now, "d")};
  EXPECT_EQ(find(build(stale), 1002)->state, "ok");
}

TEST(RowState, Precedence) {
  FaultRecord f;
  f.cls = FaultClass::ForkBomb;
  EXPECT_EQ(row_state(&f, true, true), "fork_bomb");
  EXPECT_EQ(row_state(nullptr, true, true), "throttled");
  EXPECT_EQ(row_state(nullptr, false, true), "restarted");
  EXPECT_EQ(row_state(nullptr, false, false), "ok");
}

TEST(UserName, FromPasswdElseTheNumber) {
  EXPECT_EQ(user_name(0), "root");
  EXPECT_EQ(user_name(3999999u), "3999999");
  EXPECT_EQ(user_name(3999999u), "3999999");  // cached
}

// The cost of a build over many processes, most of them idle as on a real
// host: idle ones take no history walk. Printed so regressions are visible.
TEST(BuildRowsCost, TenThousandProcesses) {
  sim::Sim s{2};
  constexpr uint32_t kProcs = 10000, kActive = 500;
  for (uint32_t i = 0; i < kProcs; ++i) s.spawn(1000 + i, "p");
  s.run(0.2);
  for (uint32_t i = 0; i < kActive; ++i) s.set_load(1000 + i * (kProcs / kActive), {.cores = 0.01, .page_faults = 3});
  s.run(2);
  auto time_build = [&] {
    auto t0 = std::chrono::steady_clock::now();
    auto rows = build_rows(s.table, s.now, kSec, s.infos, {});
    auto dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(rows.size(), kProcs);
    return dt;
  };
  double mostly_idle = time_build();
  for (uint32_t i = 0; i < kProcs; ++i) s.set_load(1000 + i, {.cores = 0.01, .page_faults = 3});
  s.run(2);
  double all_active = time_build();
  std::printf("build_rows over %u processes: %.2f ms with %u active, %.2f ms with all active\n", kProcs,
              mostly_idle, kActive, all_active);
  // Generous bounds (sanitizer builds, a loaded CI machine); typical is a few ms.
  EXPECT_LT(mostly_idle, 250.0);
  EXPECT_LT(all_active, 1000.0);
}

// ---- HostSampler -------------------------------------------------------------------

class FakeProc {
 public:
  FakeProc() {
    char tmpl[] = "/tmp/fp_fakeproc_XXXXXX";
    root = mkdtemp(tmpl);
  }
  ~FakeProc() { std::filesystem::remove_all(root); }
  void write(const std::string& name, const std::string& text) { std::ofstream(root + "/" + name) << text; }
  void stat(uint64_t user, uint64_t system, uint64_t idle, uint64_t iowait, uint64_t steal) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "cpu  %lu 0 %lu %lu %lu 0 0 %lu 7 7\ncpu0 1 0 1 1 0 0 0 0 0 0\ncpu1 1 0 1 1 0 0 0 0 0 0\n"
                  "cpu2 1 0 1 1 0 0 0 0 0 0\nintr 1 2 3\nctxt 99\n",
                  (unsigned long)user, (unsigned long)system, (unsigned long)idle, (unsigned long)iowait,
                  (unsigned long)steal);
    write("stat", buf);
  }
  // Sectors read/written per device line: sda (disk) and its partitions, an nvme disk and partition,
  // a loop device, a device-mapper volume, a ram disk and an md array.
  void diskstats(uint64_t sda_rd, uint64_t sda_wr, uint64_t nvme_rd, uint64_t nvme_wr) {
    auto line = [](const char* name, uint64_t rd, uint64_t wr) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "   8       0 %s 10 0 %lu 5 20 0 %lu 9 0 12 14 0 0 0 0 0 0\n", name,
                    (unsigned long)rd, (unsigned long)wr);
      return std::string(buf);
    };
    write("diskstats", line("sda", sda_rd, sda_wr) + line("sda1", sda_rd, sda_wr / 2) +
                           line("sda2", 0, sda_wr / 2) + line("nvme0n1", nvme_rd, nvme_wr) +
                           line("nvme0n1p1", nvme_rd, nvme_wr) + line("loop0", 5000, 5000) +
                           line("dm-0", sda_rd, sda_wr) + line("ram0", 77, 77) + line("md0", 9, 9));
  }
  std::string root;
};

TEST(HostSampler, CpuMemoryAndWholeDiskIoRates) {
  FakeProc proc;
  proc.write("meminfo", "MemTotal:        4000000 kB\nMemFree:          100000 kB\nMemAvailable:    1000000 kB\n");
  proc.stat(/*user*/ 600, /*system*/ 200, /*idle*/ 1000, /*iowait*/ 100, /*steal*/ 100);
  proc.diskstats(1000, 2000, 500, 0);
  HostSampler hs(proc.root);

  HostStats first = hs.sample(10 * kSec);
  EXPECT_EQ(first.ncpus, 3u);
  // Since boot: busy = 600 + 200 + 100 (steal) of 2000; iowait is not busy; guest is inside user.
  EXPECT_NEAR(first.cpu_pct, 45.0, 1e-9);
  EXPECT_EQ(first.mem_total_bytes, 4000000ull * 1024);
  EXPECT_EQ(first.mem_available_bytes, 1000000ull * 1024);
  EXPECT_EQ(first.io_read_bps, 0);  // no interval yet
  EXPECT_EQ(first.io_write_bps, 0);

  // 2 s later: +300 busy, +100 idle, +100 iowait; sda +2048 sectors read, nvme +4096 written.
  proc.stat(800, 300, 1100, 200, 100);
  proc.diskstats(3048, 2000, 500, 4096);
  HostStats second = hs.sample(12 * kSec);
  EXPECT_NEAR(second.cpu_pct, 60.0, 1e-9);  // 300 of 500
  EXPECT_NEAR(second.io_read_bps, 2048.0 * 512 / 2, 1e-6);
  EXPECT_NEAR(second.io_write_bps, 4096.0 * 512 / 2, 1e-6);

  // Counters that went backwards (a device removed) count as no IO, not as a huge rate.
  proc.diskstats(0, 0, 0, 0);
  HostStats third = hs.sample(13 * kSec);
  EXPECT_EQ(third.io_read_bps, 0);
  EXPECT_EQ(third.io_write_bps, 0);
}

TEST(HostSampler, PressureOfEachResourceTheHostReports) {
  FakeProc proc;
  std::filesystem::create_directory(proc.root + "/pressure");
  proc.write("pressure/memory", "some avg10=12.50 avg60=3.00 avg300=1.00 total=3500000\n"
                                "full avg10=2.25 avg60=1.00 avg300=0.50 total=500000\n");
  proc.write("pressure/cpu", "some avg10=40.00 avg60=30.00 avg300=20.00 total=9000000\n");  // no full line
  proc.write("pressure/io", "garbage\n");
  HostSampler hs(proc.root);
  HostStats h = hs.sample(kSec);
  const HostPsi& mem = h.psi[static_cast<size_t>(PsiResource::Memory)];
  ASSERT_TRUE(mem.ok);
  EXPECT_EQ(mem.some_avg10, 12.5);
  ASSERT_TRUE(mem.full_avg10.has_value());
  EXPECT_EQ(*mem.full_avg10, 2.25);
  EXPECT_EQ(mem.some_total_us, 3'500'000u);
  EXPECT_EQ(mem.full_total_us, 500'000u);
  const HostPsi& cpu = h.psi[static_cast<size_t>(PsiResource::Cpu)];
  ASSERT_TRUE(cpu.ok);
  EXPECT_FALSE(cpu.full_avg10.has_value());
  EXPECT_FALSE(h.psi[static_cast<size_t>(PsiResource::Io)].ok);  // unparsable: unknown, not 0

  // The view's JSON carries exactly what was read, and reads it back.
  DaemonView v;
  v.host = h;
  nlohmann::json j = view_to_json(v);
  EXPECT_EQ(j["host"]["psi"]["memory"]["full_avg10"], 2.25);
  EXPECT_FALSE(j["host"]["psi"]["cpu"].contains("full_avg10"));
  EXPECT_FALSE(j["host"]["psi"].contains("io"));
  DaemonView back = view_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(view_to_json(back), j);
  EXPECT_EQ(back.host.psi[static_cast<size_t>(PsiResource::Memory)].full_total_us, 500'000u);
}

TEST(HostSampler, MissingFilesGiveZeros) {
  HostSampler hs("/nonexistent/proc");
  HostStats h = hs.sample(kSec);
  EXPECT_EQ(h.ncpus, 1u);
  EXPECT_EQ(h.cpu_pct, 0);
  EXPECT_EQ(h.mem_total_bytes, 0u);
  for (const HostPsi& p : h.psi) EXPECT_FALSE(p.ok);
}

// ---- JSON --------------------------------------------------------------------------

DaemonView full_view() {
  DaemonView v;
  v.realtime_ns = 1'700'000'000'123'456'789ull;
  v.window_ns = kSec;
  v.hostname = "db1";
  v.host = {4, 37.5, 8ull << 30, 3ull << 30, 1.5e6, 2.5e6};
  for (unsigned i = 0; i < FP_DROP_NR; ++i) v.health.drops[i] = i * 3 + 1;
  v.health.drops_total = 100;
  v.health.sample_hz = 9.9;
  v.health.ticks = 12345;
  v.health.tick_us_p50 = 120.5;
  v.health.tick_us_p99 = 800.25;
  v.health.procs_tracked = 321;
  v.health.max_procs = 32768;
  v.health.malformed_events = 2;
  ProcessRow r;
  r.pid = 4242;
  r.start_ns = 99;
  r.uid = 1000;
  r.user = "alice";
  r.comm = "hog";
  r.cgroup = "/user.slice";
  r.cpu_pct = 99.5;
  r.runq_p99_ms = 1.25;
  r.dstate_ms = 3.5;
  r.in_dstate = true;
  r.io_read_bps = 10;
  r.io_write_bps = 20;
  r.io_lat_p99_ms = 4.5;
  r.io_errors = 7;
  r.faults_per_s = 55.5;
  r.reclaim_ms = 0.5;
  r.dirty_throttle_ms = 12.5;
  r.rss_bytes = 1ull << 33;
  r.forks_per_s = 2;
  r.state = "cpu_runaway";
  r.evidence = {{"metric", "cpu_cores"}, {"value", 1.0}};
  v.procs.push_back(r);
  ProcessRow idle;
  idle.pid = 1;
  idle.comm = "init";
  idle.idle = true;
  idle.kernel = false;
  v.procs.push_back(idle);
  ProcessRow kthread;
  kthread.pid = 2;
  kthread.comm = "kthreadd";
  kthread.idle = true;
  kthread.kernel = true;
  v.procs.push_back(kthread);
  nlohmann::ordered_json f;
  f["class"] = "cpu_runaway";
  f["pid"] = 4242;
  f["victims"] = {1, 2};
  v.open_faults.push_back(f);
  v.counters.faults_by_class = {{"cpu_runaway", 3}, {"hang", 1}};
  v.counters.resolved_by_class = {{"cpu_runaway", 2}};
  v.counters.actions = {{"throttle/ok", 4}};
  v.counters.syslog_sent = 8;
  v.counters.syslog_suppressed = 9;
  v.counters.syslog_forward_failures = 10;
  v.status = {{"criu", "unavailable"}, {"hooks", {{"sched_switch", "tp_btf"}}}};
  return v;
}

TEST(ViewJson, RoundTripKeepsEveryField) {
  DaemonView v = full_view();
  nlohmann::json j = view_to_json(v);
  DaemonView back = view_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(view_to_json(back), j);

  EXPECT_EQ(back.realtime_ns, v.realtime_ns);
  EXPECT_EQ(back.hostname, "db1");
  EXPECT_EQ(back.host.ncpus, 4u);
  EXPECT_EQ(back.host.mem_available_bytes, 3ull << 30);
  EXPECT_EQ(back.health.drops, v.health.drops);
  EXPECT_EQ(back.health.tick_us_p99, 800.25);
  ASSERT_EQ(back.procs.size(), 3u);
  EXPECT_FALSE(back.procs[0].idle);
  EXPECT_TRUE(back.procs[1].idle);
  EXPECT_FALSE(back.procs[1].kernel);
  EXPECT_TRUE(back.procs[2].kernel);
  const ProcessRow& r = back.procs[0];
  EXPECT_EQ(r.pid, 4242u);
  EXPECT_EQ(r.user, "alice");
  EXPECT_TRUE(r.in_dstate);
  EXPECT_EQ(r.rss_bytes, 1ull << 33);
  EXPECT_EQ(r.dirty_throttle_ms, 12.5);
  EXPECT_EQ(r.state, "cpu_runaway");
  EXPECT_EQ(r.evidence["metric"], "cpu_cores");
  EXPECT_TRUE(back.procs[1].evidence.is_null());
  ASSERT_EQ(back.open_faults.size(), 1u);
  EXPECT_EQ(back.open_faults[0]["victims"], nlohmann::ordered_json({1, 2}));
  EXPECT_EQ(back.counters.faults_by_class.at("hang"), 1u);
  EXPECT_EQ(back.counters.actions.at("throttle/ok"), 4u);
  EXPECT_EQ(back.counters.syslog_forward_failures, 10u);
  EXPECT_EQ(back.status["hooks"]["sched_switch"], "tp_btf");
  // Drops travel by reason name.
  EXPECT_EQ(j["health"]["drops"]["ringbuf_full"], v.health.drops[FP_DROP_RINGBUF_FULL]);
}

TEST(ViewJson, ReaderIsLenient) {
  DaemonView d = view_from_json(nlohmann::json::array());
  EXPECT_TRUE(d.procs.empty());
  nlohmann::json j = {{"hostname", 5},                                  // wrong type: default
                      {"host", {{"cpu_pct", "high"}, {"ncpus", 8}}},    // one good field
                      {"procs", {{{"pid", 7}}, "garbage", {{"comm", "x"}, {"cpu_pct", nullptr}}}},
                      {"open_faults", "none"},
                      {"future_field", {1, 2, 3}}};
  DaemonView v = view_from_json(j);
  EXPECT_EQ(v.hostname, "");
  EXPECT_EQ(v.host.cpu_pct, 0);
  EXPECT_EQ(v.host.ncpus, 8u);
  ASSERT_EQ(v.procs.size(), 2u);
  EXPECT_EQ(v.procs[0].pid, 7u);
  EXPECT_EQ(v.procs[0].state, "ok");
  EXPECT_EQ(v.procs[1].comm, "x");
  EXPECT_TRUE(v.open_faults.empty());
}

}  // namespace
}  // namespace fp
