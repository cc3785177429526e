// The snapshot's JSON is a contract: these names are what users script against.
#include <gtest/gtest.h>

#include "report/snapshot_report.h"

using namespace fp;

namespace {

SnapshotReport sample_report() {
  SnapshotReport r;
  r.interval_ns = 1'000'000'000;
  r.drops[FP_DROP_RINGBUF_FULL] = 3;
  ProcDelta running;
  running.key = {100, 5};
  running.ppid = 1;
  running.comm = "spinner";
  running.cpu_ns = 900'000'000;
  ProcDelta dead;
  dead.key = {200, 7};
  dead.comm = "crasher";
  dead.exited = true;
  dead.exit_signal = 11;
  dead.core_dumped = true;
  r.procs = {running, dead};
  ProcInfo info;
  info.found = true;
  info.exe = "/usr/bin/spinner";
  info.cgroup = "/system.slice/spin.service";
  r.infos = {info, ProcInfo{}};
  return r;
}

}  // namespace

TEST(SnapshotJson, HasEveryContractField) {
  auto j = snapshot_to_json(sample_report());
  ASSERT_TRUE(j.contains("interval_ns"));
  ASSERT_TRUE(j.contains("drops"));
  ASSERT_TRUE(j.contains("processes"));
  EXPECT_EQ(j["interval_ns"], 1'000'000'000u);
  EXPECT_EQ(j["drops"]["ringbuf_full"], 3u);
  EXPECT_EQ(j["io_bytes_from"], "task_io_accounting");
  const char* fields[] = {"pid", "ppid", "comm", "state", "exit_code", "exit_signal", "cpu_ns", "runq_wait_ns",
                          "runq_wait_max_ns", "runq_waits", "nvcsw", "nivcsw", "dstate_ns", "dstate_max_ns",
                          "forks", "execs", "io_read_bytes", "io_write_bytes", "io_cancelled_write_bytes",
                          "io_submit_read_bytes", "io_submit_write_bytes", "io_read_reqs", "io_write_reqs",
                          "io_lat_max_ns", "io_lat_p99_ns", "io_errors", "dirty_throttle_ns", "dirty_throttles",
                          "page_faults", "reclaim_ns", "rss_bytes", "oom_victim", "fatal_signals"};
  for (const auto& p : j["processes"])
    for (const char* f : fields) EXPECT_TRUE(p.contains(f)) << "missing " << f;
}

TEST(SnapshotJson, StateAndExitFields) {
  auto j = snapshot_to_json(sample_report());
  const auto& running = j["processes"][0];
  const auto& dead = j["processes"][1];
  EXPECT_EQ(running["state"], "running");
  EXPECT_TRUE(running["exit_code"].is_null());
  EXPECT_TRUE(running["exit_signal"].is_null());
  EXPECT_EQ(running["exe"], "/usr/bin/spinner");
  EXPECT_EQ(running["cgroup"], "/system.slice/spin.service");
  EXPECT_EQ(dead["state"], "exited");
  EXPECT_EQ(dead["exit_signal"], 11);
  EXPECT_EQ(dead["core_dumped"], true);
  EXPECT_FALSE(dead.contains("exe"));  // nothing known of a process that is gone
}

TEST(SnapshotTable, ShowsDropsByReasonAndExitState) {
  std::string t = snapshot_to_table(sample_report());
  EXPECT_NE(t.find("drops ringbuf_full: 3"), std::string::npos) << t;
  EXPECT_NE(t.find("sig11+core"), std::string::npos) << t;
  EXPECT_NE(t.find("spinner"), std::string::npos);
  EXPECT_NE(t.find("90.0"), std::string::npos) << "CPU% of 0.9 s in 1 s";
}

TEST(SnapshotTable, RowLimit) {
  std::string t = snapshot_to_table(sample_report(), 1);
  EXPECT_EQ(t.find("crasher"), std::string::npos);
}
