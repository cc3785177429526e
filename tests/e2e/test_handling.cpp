// Handling and recovery end to end: the real daemon, real policies, real
// cgroups and signals, against faultgen and supervised services.
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "cgroup_read.h"
#include "cpu_throttle.h"
#include "e2e_fixture.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;
namespace fs = std::filesystem;

// A CPU hog under a throttle policy drops to the set share (the probe's own
// counters say so) and is moved back to its cgroup after the cooldown.
TEST(Handling, ThrottleCpuHogThenUndo) {
  Daemon d(cpu_throttle_config("4s"));
  ASSERT_TRUE(d.ready());
  FaultGen g({"cpu", "--duration", "40s"});
  ASSERT_TRUE(g.started());
  const uint32_t pid = g.culprit();
  const std::string before = cgroup_of(pid, "cpu");
  ASSERT_TRUE(wait_cpu_throttled(d, pid, 10s, 5s));
  EXPECT_NE(cgroup_of(pid, "cpu"), before);
  EXPECT_NE(cgroup_of(pid, "cpu").find("faultprobe"), std::string::npos);

  double probe_share = probe_cpu_share(d, pid, 3);
  expect_probe_share_throttled(probe_share, proc_cpu_share(pid, 2s));

  // The fault clears at 20 %, the recovery check says so, and after the
  // cooldown the hog goes back where it was.
  ASSERT_TRUE(d.wait_resolved("cpu_runaway", pid, 10s)) << describe(d.records());
  EXPECT_TRUE(d.wait_record(
      [&](const json& r) { return r.value("kind", "") == "recovery" && r.value("pid", 0u) == pid &&
                                  r["recovery"].value("recovered", false); },
      10s))
      << describe(d.records());
  ASSERT_TRUE(d.wait_record([&](const json& r) { return is_action(r, "unthrottle", "ok", pid); }, 15s))
      << describe(d.records()) << d.log();
  EXPECT_EQ(cgroup_of(pid, "cpu"), before);
  // Back at full speed (on a loaded 2-CPU machine, give the scheduler a few tries).
  double share = 0;
  EXPECT_TRUE(wait_for([&] { return (share = proc_cpu_share(pid, 500ms)) > 0.6; }, 8s))
      << "share " << share << " after the unthrottle\n" << describe(d.records()) << d.log();
}

// A policy that matches a protected process is refused, and says why. faultgen
// names itself fg-cpu, which is not its executable's name: it is protected by
// its executable's path (a name alone protects only the program of that name).
TEST(Handling, ProtectedProcessIsNeverTouched) {
  Daemon d("protected_comms = [\"" + std::string(FP_FAULTGEN_BIN) + "\"]\n" + kBase + R"(
[rules.cpu_runaway]
for = "1s"

[[policy]]
name = "hogs"
match = { comm = "fg-cpu" }
on.cpu_runaway = ["kill"]
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"cpu", "--duration", "20s"});
  ASSERT_TRUE(g.started());
  const uint32_t pid = g.culprit();
  const std::string before = cgroup_of(pid, "cpu");
  auto act = d.wait_record([&](const json& r) { return r.value("kind", "") == "action" && r.value("pid", 0u) == pid; },
                           10s);
  // protected_comms also keeps it from being blamed: either no fault at all or a skipped action
  if (act) {
    EXPECT_EQ((*act)["action"]["result"], "skipped") << act->dump();
    EXPECT_NE((*act)["action"].value("detail", "").find("protected"), std::string::npos) << act->dump();
  }
  EXPECT_EQ(kill(pid_t(pid), 0), 0) << "the protected process was killed";
  EXPECT_EQ(cgroup_of(pid, "cpu"), before);
}

// --dry-run: the action is recorded as "would", nothing changes.
TEST(Handling, DryRunChangesNothing) {
  Daemon d(kBase + R"(
[rules.cpu_runaway]
for = "1s"

[[policy]]
name = "hogs"
match = { comm = "fg-cpu" }
on.cpu_runaway = ["throttle:cpu=10%", "kill"]
recovery_window = "1s"
)",
           {"--dry-run"});
  ASSERT_TRUE(d.ready());
  FaultGen g({"cpu", "--duration", "20s"});
  ASSERT_TRUE(g.started());
  const uint32_t pid = g.culprit();
  const std::string before = cgroup_of(pid, "cpu");
  auto act = d.wait_record([&](const json& r) { return is_action(r, "throttle", "dry_run", pid); }, 10s);
  ASSERT_TRUE(act) << describe(d.records());
  EXPECT_NE((*act)["action"].value("detail", "").find("would"), std::string::npos) << act->dump();
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(cgroup_of(pid, "cpu"), before);
  EXPECT_EQ(kill(pid_t(pid), 0), 0);
  for (const auto& r : d.records())
    if (r.value("kind", "") == "action") {
      EXPECT_EQ(r["action"]["result"], "dry_run") << r.dump();
    }
}

// A crashing service is restarted within a second, and stays down once it
// reaches the crash-loop limit, with a critical line saying so.
TEST(Handling, CrashingServiceRestartsThenStopsAtCrashLoopLimit) {
  Daemon d(kBase + R"(
[[service]]
name = "crasher"
command = ["/bin/sh", "-c", "sleep 0.5; kill -SEGV $$"]
restart = "on-failure"
crash_loop_limit = 3
crash_loop_window = "60s"
)");
  ASSERT_TRUE(d.ready());
  auto starts = [&] {
    std::vector<json> out;
    for (const auto& r : d.records())
      if (r.value("kind", "") == "service" && r.value("service", "") == "crasher" && r.value("event", "") == "started")
        out.push_back(r);
    return out;
  };
  ASSERT_TRUE(d.wait_record(
      [&](const json& r) { return r.value("kind", "") == "service" && r.value("event", "") == "crash_loop_tripped"; },
      20s))
      << describe(d.records());
  auto s = starts();
  ASSERT_EQ(s.size(), 3u) << describe(d.records());
  // The daemon saw each crash, and each restart came within a second of the exit before it.
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    uint32_t pid = s[i].value("pid", 0u);
    EXPECT_TRUE(d.wait_record(
        [&](const json& r) { return r.value("kind", "") == "fault" && r.value("class", "") == "crash" &&
                                    r.value("pid", 0u) == pid; },
        1s))
        << "no crash fault for pid " << pid << "\n" << describe(d.records());
  }
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    auto exited = d.wait_record(
        [&](const json& r) { return r.value("kind", "") == "service" && r.value("event", "") == "exited" &&
                                    r.value("pid", 0u) == s[i].value("pid", 0u); },
        1s);
    ASSERT_TRUE(exited) << describe(d.records());
    double gap_s = s[i + 1].value("mono_s", 0.0) - (*exited).value("mono_s", 0.0);
    EXPECT_GE(gap_s, 0.0);
    EXPECT_LT(gap_s, 1.0) << "restart took " << gap_s << " s";
  }
  // It stays down.
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(starts().size(), 3u);
  auto st = d.query({{"cmd", "status"}});
  ASSERT_TRUE(st.is_object()) << d.log();
  bool found = false;
  for (const auto& svc : st["status"]["services"])
    if (svc.value("name", "") == "crasher") {
      found = true;
      EXPECT_EQ(svc.value("state", ""), "failed") << svc.dump();
    }
  EXPECT_TRUE(found) << st.dump();
}

// A service stuck in uninterruptible sleep is restarted by its hang policy.
TEST(Handling, HungServiceIsRestarted) {
  Daemon d(kBase + R"(
[rules.hang]
threshold = 2

[[service]]
name = "stuck"
command = [")" + std::string(FP_FAULTGEN_BIN) + R"(", "hang", "--dstate", "600s"]
restart = "no"

[[policy]]
name = "stuck"
match = { comm = "fg-hang*" }
on.hang = ["restart"]
recovery_window = "4s"
)");
  ASSERT_TRUE(d.ready());
  auto f = d.wait_record([&](const json& r) { return r.value("kind", "") == "fault" && r.value("class", "") == "hang"; },
                         15s);
  ASSERT_TRUE(f) << describe(d.records()) << d.log();
  const uint32_t hung = (*f).value("pid", 0u);
  auto act = d.wait_record([&](const json& r) { return is_action(r, "restart", "ok", hung); }, 5s);
  ASSERT_TRUE(act) << describe(d.records()) << d.log();
  // the old one is gone and the service runs again with another pid
  EXPECT_TRUE(wait_for([&] { return kill(pid_t(hung), 0) != 0; }, 10s));
  auto started = d.wait_record(
      [&](const json& r) { return r.value("kind", "") == "service" && r.value("event", "") == "started" &&
                                  r.value("n", 0) >= 2; },
      10s);
  EXPECT_TRUE(started) << describe(d.records());
}

// A leaking service in a memory-limited cgroup is restarted before the
// kernel's OOM killer fires.
TEST(Handling, LeakingServiceRestartedBeforeOom) {
  const std::string cg = "/sys/fs/cgroup/memory/fp-e2e-leak-" + std::to_string(getpid());
  ASSERT_TRUE(fs::exists("/sys/fs/cgroup/memory")) << "the test needs the cgroup v1 memory controller";
  fs::create_directory(cg);
  std::ofstream(cg + "/memory.limit_in_bytes") << (512ull << 20);
  std::string script = "echo $$ > " + cg + "/cgroup.procs && exec " + FP_FAULTGEN_BIN +
                       " leak --rate 40 --max 2000";
  {
    Daemon d(kBase + R"(
[rules.memory_leak]
window = "4s"
threshold = 5.0

[[service]]
name = "leaky"
command = ["/bin/sh", "-c", ")" + script + R"("]
restart = "no"

[[policy]]
name = "leaky"
match = { comm = "fg-leak*" }
on.memory_leak = ["restart"]
recovery_window = "3s"
)");
    ASSERT_TRUE(d.ready());
    auto f = d.wait_record(
        [&](const json& r) {
          // the service's leaker (faultgen, renamed fg-leak once it runs), not any leak of the host
          const std::string comm = r.value("comm", "");
          return r.value("kind", "") == "fault" && r.value("class", "") == "memory_leak" &&
                 (comm == "faultgen" || comm.rfind("fg-leak", 0) == 0);
        },
        30s);
    ASSERT_TRUE(f) << describe(d.records()) << d.log();
    const uint32_t pid = (*f).value("pid", 0u);
    ASSERT_TRUE(d.wait_record([&](const json& r) { return is_action(r, "restart", "ok", pid); }, 5s))
        << describe(d.records()) << d.log();
    std::this_thread::sleep_for(1s);
    for (const auto& r : d.records())
      EXPECT_FALSE(r.value("class", "") == "oom_kill" &&
                   (r.value("comm", "") == "faultgen" || r.value("comm", "").rfind("fg-leak", 0) == 0))
          << "the OOM killer fired first: " << r.dump();
    d.stop();
  }
  // empty the cgroup before removing it
  std::ifstream procs(cg + "/cgroup.procs");
  for (std::string p; std::getline(procs, p);) kill(std::stoi(p), SIGKILL);
  wait_for([&] { return rmdir(cg.c_str()) == 0; }, 5s);
}

// An application-assisted service that counts and checkpoints resumes from
// its last checkpoint after a crash.
TEST(Handling, AppCheckpointServiceResumesAfterCrash) {
  std::string ckpt = temp_dir() + "/ckpt";
  fs::create_directories(ckpt);
  Daemon d(kBase + R"(
[[service]]
name = "counter"
command = [")" + std::string(FP_FAULTGEN_BIN) + R"(", "counter", "--crash-at", "150"]
restart = "no"
checkpoint = { backend = "app", dir = ")" + ckpt + R"(" }

[[policy]]
name = "counter"
match = { comm = "faultgen" }
on.crash = ["restore"]
)");
  ASSERT_TRUE(d.ready());
  // the service's own crash: on some kernels `criu check` (the daemon's CRIU probe)
  // crashes a child of its own at start, and that is reported too
  auto started = d.wait_record(
      [&](const json& r) { return r.value("kind", "") == "service" && r.value("event", "") == "started"; }, 10s);
  ASSERT_TRUE(started) << describe(d.records()) << d.log();
  const uint32_t pid = (*started).value("pid", 0u);
  auto crash = d.wait_record(
      [&](const json& r) {
        return r.value("kind", "") == "fault" && r.value("class", "") == "crash" && r.value("pid", 0u) == pid;
      },
      20s);
  ASSERT_TRUE(crash) << describe(d.records()) << d.log();
  auto act = d.wait_record([&](const json& r) { return is_action(r, "restore", "ok", pid); }, 5s);
  ASSERT_TRUE(act) << describe(d.records()) << d.log();
  EXPECT_NE((*act)["action"].value("detail", "").find(ckpt), std::string::npos) << act->dump();
  // the restored counter says where it resumed: at or after its last checkpoint, not from 0
  std::string log_path = d.dir() + "/logs/counter.log";
  ASSERT_TRUE(wait_for([&] { return slurp(log_path).find("restored from") != std::string::npos; }, 10s))
      << slurp(log_path);
  std::string text = slurp(log_path);
  auto at = text.find(" at ", text.find("restored from"));
  ASSERT_NE(at, std::string::npos) << text;
  long resumed = std::stol(text.substr(at + 4));
  EXPECT_GE(resumed, 100) << text;  // checkpoints every 100 ms at 10 ms ticks: within 10 counts of 150
  EXPECT_LE(resumed, 150) << text;
}

// The CRIU probe's result is reported in status, with the reason when it
// does not work on this kernel.
TEST(Handling, CriuAvailabilityIsReported) {
  Daemon d(kBase);
  ASSERT_TRUE(d.ready());
  auto st = d.query({{"cmd", "status"}});
  ASSERT_TRUE(st.is_object() && st.contains("status")) << st.dump() << d.log();
  const auto& criu = st["status"]["criu"];
  ASSERT_TRUE(criu.is_object()) << st.dump();
  ASSERT_TRUE(criu.contains("available")) << criu.dump();
  if (!criu["available"].get<bool>()) {
    EXPECT_FALSE(criu.value("reason", "").empty()) << criu.dump();
  }
}
