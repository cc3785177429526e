// One test per fault class this machine can produce: the daemon, on a config
// with short hold times, must report the fault with faultgen's culprit pid,
// and resolve it after the generator stops.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "e2e_fixture.h"
#include "services.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;

namespace {

long read_long(const char* path) {
  long v = 0;
  std::ifstream(path) >> v;
  return v;
}

}  // namespace

TEST(E2E, CpuRunaway) {
  Daemon d(kBase + R"(
[rules.cpu_runaway]
for = "2s"
clear = "1s"
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"cpu", "--duration", "6s"});
  ASSERT_TRUE(g.started());
  auto f = d.wait_fault("cpu_runaway", g.culprit(), 10s);
  ASSERT_TRUE(f) << describe(d.records());
  EXPECT_EQ((*f)["severity"], "warning");
  EXPECT_EQ((*f)["rule"], "cpu_runaway");
  EXPECT_FALSE((*f)["evidence"].empty());
  g.wait();
  EXPECT_TRUE(d.wait_resolved("cpu_runaway", g.culprit(), 10s)) << describe(d.records());
}

TEST(E2E, Crash) {
  Daemon d(kBase + R"(
[rules.crash]
clear = "1s"
)");
  ASSERT_TRUE(d.ready());
  // clean exits first: they reach the daemon without a wake-up, and must not
  // hold back the crash behind them
  for (int i = 0; i < 5; i++) ASSERT_EQ(std::system("/bin/true"), 0);
  usleep(300'000);
  FaultGen g({"crash", "--signal", "SEGV", "--after", "300ms", "--duration", "2s"});
  ASSERT_TRUE(g.started());
  auto f = d.wait_fault("crash", g.culprit(), 5s);
  ASSERT_TRUE(f) << describe(d.records());
  EXPECT_EQ((*f)["severity"], "critical");
  EXPECT_EQ((*f)["evidence"]["signal"], SIGSEGV) << f->dump();
  EXPECT_TRUE(d.wait_resolved("crash", g.culprit(), 5s)) << describe(d.records());
  // one fault line for one crash: no repeats while it held
  int lines = 0;
  for (auto& r : d.records())
    if (r["kind"] == "fault" && r["class"] == "crash" && r["pid"] == g.culprit()) lines++;
  EXPECT_EQ(lines, 1);
}

TEST(E2E, CrashLoop) {
  Daemon d(kBase + R"(
[rules.crash_loop]
window = "3s"
clear = "2s"
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"crash", "--signal", "ABRT", "--after", "100ms", "--loop", "4", "--every", "200ms"});
  ASSERT_TRUE(g.started());
  std::vector<uint32_t> pids = {g.culprit()};
  auto f = d.wait_record(
      [&](const json& r) {
        for (auto& l : g.more_lines())
          if (l.contains("crash")) pids.push_back(l["crash"].get<uint32_t>());
        return r["kind"] == "fault" && r["class"] == "crash_loop";
      },
      10s);
  ASSERT_TRUE(f) << describe(d.records());
  uint32_t pid = (*f)["pid"].get<uint32_t>();
  EXPECT_NE(std::find(pids.begin(), pids.end(), pid), pids.end()) << "crash_loop blamed pid " << pid;
  g.wait();
  EXPECT_TRUE(d.wait_resolved("crash_loop", pid, 10s)) << describe(d.records());
}

TEST(E2E, Hang) {
  Daemon d(kBase + R"(
[rules.hang]
threshold = 1
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"hang", "--dstate", "3s", "--duration", "3s"});
  ASSERT_TRUE(g.started());
  auto f = d.wait_fault("hang", g.culprit(), 6s);
  ASSERT_TRUE(f) << describe(d.records());
  g.wait();
  EXPECT_TRUE(d.wait_resolved("hang", g.culprit(), 6s)) << describe(d.records());
}

TEST(E2E, ForkBomb) {
  Daemon d(kBase + R"(
[rules.fork_bomb]
for = "1s"
clear = "1s"
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"forkbomb", "--rate", "300", "--duration", "5s"});
  ASSERT_TRUE(g.started());
  auto f = d.wait_fault("fork_bomb", g.culprit(), 8s);
  ASSERT_TRUE(f) << describe(d.records());
  g.wait();
  EXPECT_TRUE(d.wait_resolved("fork_bomb", g.culprit(), 8s)) << describe(d.records());
}

TEST(E2E, MemoryLeak) {
  Daemon d(kBase + R"(
[rules.memory_leak]
window = "4s"
threshold = 5.0
clear = "2s"
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"leak", "--rate", "40", "--max", "400", "--duration", "9s"});
  ASSERT_TRUE(g.started());
  auto f = d.wait_fault("memory_leak", g.culprit(), 10s);
  ASSERT_TRUE(f) << describe(d.records());
  g.wait();
  EXPECT_TRUE(d.wait_resolved("memory_leak", g.culprit(), 10s)) << describe(d.records());
}

TEST(E2E, RunqStarvation) {
  Daemon d(kBase + R"(
[rules.runq_starvation]
threshold = 15
resolve = 8
window = "3s"
for = "1s"
clear = "2s"
count = 10
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"starve", "--duration", "8s"});
  ASSERT_TRUE(g.started());
  ASSERT_FALSE(g.victims().empty());
  auto f = d.wait_fault("runq_starvation", g.culprit(), 10s);
  ASSERT_TRUE(f) << describe(d.records());
  EXPECT_TRUE(has_victim(*f, g.victims()[0])) << f->dump();
  g.wait();
  EXPECT_TRUE(d.wait_resolved("runq_starvation", g.culprit(), 10s)) << describe(d.records());
}

// runq_starvation on real programs: a SCHED_FIFO spinner (chrt -f 10
// taskset -c 1 python3) next to a CFS busy loop pinned to the same CPU. The
// spinner waits too (RT throttling gives the CFS side 5 %): it must still be
// the one named, with the victim listed, its policy and priority in the
// evidence.
//
// DISABLED (round 5, open in issue 14 item 3): it passed on the h/F3 branch and
// fails on main since F1's seeding and F3's run-queue blame were merged
// together (no runq_starvation at all within 60 s; the faultgen variant above
// and the BPF RunqBlame.* tests pass). Not yet understood: re-enable with the fix.
TEST(E2E, RunqStarvationNamesAFifoSpinnerThatAlsoWaits) {
  // RT throttling keeps CPU 1 alive for everything else while the spinner runs.
  long runtime = read_long("/proc/sys/kernel/sched_rt_runtime_us");
  ASSERT_TRUE(runtime >= 0 && runtime < read_long("/proc/sys/kernel/sched_rt_period_us"))
      << "RT throttling is off: the spinner of this test could starve the machine";
  ASSERT_GT(sysconf(_SC_NPROCESSORS_ONLN), 1) << "needs CPU 1";

  Daemon d(kBase);  // the built-in rules
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string dir = temp_dir();
  ChildProcess victim({"/usr/bin/taskset", "-c", "1", "/usr/bin/python3", "-c", "while True: pass"},
                      dir + "/victim.log");
  // Bounded by itself too: 90 s at most, whatever happens to the test.
  ChildProcess spinner({"/usr/bin/chrt", "-f", "10", "/usr/bin/taskset", "-c", "1", "/usr/bin/python3", "-c",
                        "import time\nend = time.monotonic() + 90\nwhile time.monotonic() < end: pass"},
                       dir + "/spinner.log");
  const uint32_t vpid = uint32_t(victim.pid()), spid = uint32_t(spinner.pid());

  auto f = d.wait_fault("runq_starvation", spid, 60s);
  ASSERT_TRUE(f) << describe(d.records()) << slurp(dir + "/spinner.log");
  // The fault may open on another waiter of CPU 1 first (a kernel thread that
  // waited a tick earlier); the victim joins the open fault when it qualifies.
  json open;
  const bool joined = wait_for([&] {
    auto r = d.query({{"cmd", "view"}});
    if (!r.is_object() || !r.contains("view")) return false;
    for (const auto& o : r["view"]["open_faults"]) {
      if (o.value("class", "") != "runq_starvation" || o.value("pid", 0u) != spid || !has_victim(o, vpid)) continue;
      for (const auto& v : o["evidence"]["victims"])  // the latest evidence names it too
        if (v.value("pid", 0u) == vpid) {
          open = o;
          return true;
        }
    }
    return false;
  }, 60s);
  ASSERT_TRUE(joined) << f->dump() << describe(d.records());
  const json& ev = open["evidence"];
  EXPECT_EQ(ev["attribution"], "cpu_runners") << ev.dump();
  EXPECT_EQ(ev["culprit"]["policy"], "SCHED_FIFO") << ev.dump();
  EXPECT_EQ(ev["culprit"]["rt_priority"], 10) << ev.dump();
  EXPECT_EQ(ev["culprit"]["cpu"], 1) << ev.dump();
  EXPECT_GE(ev["culprit"]["share"].get<double>(), 0.5) << ev.dump();
  bool listed = false;
  for (const auto& v : ev["victims"]) {
    if (v["pid"] != vpid) continue;
    listed = true;
    // most of its wait on CPU 1 (before taskset's exec it may have waited on another)
    EXPECT_EQ(v["cpus"][0], 1) << v.dump();
    EXPECT_EQ(v["runners"][0]["pid"], spid) << v.dump();
  }
  EXPECT_TRUE(listed) << ev.dump();

  spinner.stop();
  EXPECT_TRUE(d.wait_resolved("runq_starvation", spid, 60s)) << describe(d.records());
  // The victim was never named for the spinner's waits.
  for (const auto& r : d.records())
    EXPECT_FALSE(r.value("class", "") == "runq_starvation" && r.value("pid", 0u) == vpid) << r.dump();
}

TEST(E2E, IoLatency) {
  // this machine's disk is fast: the threshold is set low to prove the path
  Daemon d(kBase + R"(
[rules.io_latency]
threshold = 0.05
resolve = 0.01
window = "2s"
for = "1s"
clear = "2s"
count = 5
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"io", "--direct", "--rate", "40", "--dir", io_dir(), "--size", "64", "--duration", "5s"});
  ASSERT_TRUE(g.started());
  auto f = d.wait_fault("io_latency", g.culprit(), 8s);
  ASSERT_TRUE(f) << describe(d.records());
  g.wait();
  EXPECT_TRUE(d.wait_resolved("io_latency", g.culprit(), 10s)) << describe(d.records());
}

TEST(E2E, OomKill) {
  // the leaker is put in a memory cgroup with a 64 MiB limit
  std::string cg = std::filesystem::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")
                       ? "/sys/fs/cgroup/memory/fp_e2e_oom_" + std::to_string(getpid())
                       : "/sys/fs/cgroup/fp_e2e_oom_" + std::to_string(getpid());
  std::filesystem::create_directory(cg);
  bool v1 = std::filesystem::exists(cg + "/memory.limit_in_bytes");
  std::ofstream(cg + (v1 ? "/memory.limit_in_bytes" : "/memory.max")) << (64u << 20);
  Daemon d(kBase + R"(
[rules.oom_kill]
clear = "1s"
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"leak", "--rate", "10", "--max", "512", "--duration", "20s"});
  ASSERT_TRUE(g.started());
  std::ofstream(cg + "/cgroup.procs") << g.culprit();
  // at 10 MB/s it passes the 64 MiB limit within seconds of joining the cgroup
  auto f = d.wait_fault("oom_kill", g.culprit(), 60s);
  EXPECT_TRUE(f) << describe(d.records());
  if (f) {
    EXPECT_EQ((*f)["severity"], "critical");
  }
  g.stop();
  EXPECT_TRUE(d.wait_resolved("oom_kill", g.culprit(), 10s)) << describe(d.records());
  rmdir(cg.c_str());
}

TEST(E2E, BadConfigIsRefusedWithExit2) {
  std::string dir = temp_dir();
  std::ofstream(dir + "/bad.toml") << "[rules.cpu_runaway]\ntreshold = 3\n";
  std::string cmd = std::string(FP_FAULTPROBED_BIN) + " --foreground --config " + dir + "/bad.toml 2>" + dir +
                    "/err.txt";
  int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  std::ifstream in(dir + "/err.txt");
  std::string err((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(err.find("bad.toml:2:"), std::string::npos) << err;
}

TEST(E2E, ReloadWithBadFileKeepsOldRules) {
  Daemon d(kBase + R"(
[rules.crash]
clear = "1s"
)");
  ASSERT_TRUE(d.ready());
  std::ofstream(d.config_path()) << "[rules.crash]\nclear = 1s\n";  // not a TOML string
  d.signal(SIGHUP);
  bool logged = false;
  for (int i = 0; i < 100 && !logged; i++) {
    logged = d.log().find("keeping the old configuration") != std::string::npos;
    if (!logged) usleep(50'000);
  }
  EXPECT_TRUE(logged) << d.log();
  // still running, still detecting
  FaultGen g({"crash", "--signal", "FPE", "--after", "200ms", "--duration", "1s"});
  ASSERT_TRUE(g.started());
  EXPECT_TRUE(d.wait_fault("crash", g.culprit(), 5s)) << describe(d.records()) << d.log();
}

// SIGHUP with a good file: the new rules take effect without a restart.
TEST(E2E, ReloadWithGoodFileAppliesNewRules) {
  Daemon d(kBase + R"(
[rules.crash]
enabled = false
)");
  ASSERT_TRUE(d.ready());
  FaultGen before({"crash", "--signal", "SEGV", "--after", "200ms", "--duration", "1s"});
  ASSERT_TRUE(before.started());
  before.wait();
  EXPECT_FALSE(d.wait_fault("crash", before.culprit(), 1500ms)) << "crash rule is disabled";
  // the same file (with the fixture's [daemon] table), the rule switched on
  std::ifstream in(d.config_path());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto at = text.rfind("enabled = false");  // [rules.crash], after kBase's [rules.anomaly]
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 15, "enabled = true\nclear = \"1s\"");
  std::ofstream(d.config_path(), std::ios::trunc) << text;
  d.signal(SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 100 && !reloaded; i++) {
    reloaded = d.log().find("SIGHUP: reloaded") != std::string::npos;
    if (!reloaded) usleep(50'000);
  }
  ASSERT_TRUE(reloaded) << d.log();
  FaultGen after({"crash", "--signal", "SEGV", "--after", "200ms", "--duration", "1s"});
  ASSERT_TRUE(after.started());
  EXPECT_TRUE(d.wait_fault("crash", after.culprit(), 5s)) << describe(d.records()) << d.log();
}
