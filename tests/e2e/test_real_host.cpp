// Faults as real hosts have them, not as faultgen makes them (issue 14):
// a shell-function fork bomb whose generations reparent, held by a pids
// limit; a 50 MB/s leak inside a 1 GiB memory cgroup; and a clean spell of
// a parallel build, a `find /` and a buffered copy. Real daemon, built-in
// rules (plus a kill policy for the bomb). Every workload runs in a
// CgroupSandbox, which kills what is left of it on every path.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "cgroup_sandbox.h"
#include "e2e_fixture.h"
#include "services.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

pid_t start(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

// Every pid the sandbox held while it ran (polled every 5 ms).
class Watcher {
 public:
  explicit Watcher(const CgroupSandbox& cg)
      : thread_([this, &cg] {
          while (!stop_) {
            for (pid_t p : cg.pids()) {
              std::lock_guard<std::mutex> l(mu_);
              seen_.insert(uint32_t(p));
            }
            std::this_thread::sleep_for(5ms);
          }
        }) {}
  ~Watcher() {
    stop_ = true;
    thread_.join();
  }
  bool saw(uint32_t pid) const {
    std::lock_guard<std::mutex> l(mu_);
    return seen_.count(pid) != 0;
  }
  size_t count() const {
    std::lock_guard<std::mutex> l(mu_);
    return seen_.size();
  }

 private:
  mutable std::mutex mu_;
  std::set<uint32_t> seen_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

bool is_fault(const json& r, const std::string& cls) { return r["kind"] == "fault" && r["class"] == cls; }

}  // namespace

// `b(){ b|b& }; b` in a pids-limited cgroup: each member forks two replicas
// and exits, so every generation reparents to init and no process or tree
// forks fast. One fork_bomb fault names a member of the bomb, and the kill
// policy stops and kills the whole group: nothing of it is left running.
TEST(E2E, ForkBombWhoseGenerationsReparentIsOneFaultAndKillLeavesNoMember) {
  const std::string name = "fpe2e-bomb-" + std::to_string(getpid());
  CgroupSandbox cg(name, {"pids", "cpu"});
  ASSERT_TRUE(cg.ok()) << cg.error();
  ASSERT_TRUE(cg.limit_pids(128));
  ASSERT_TRUE(cg.limit_cpu(0.5));  // the host stays usable whatever happens
  Daemon d(kBase + R"(
[[policy]]
name = "bombs"
match = { cgroup = "/fpe2e-bomb-*" }
on.fork_bomb = ["kill"]
)", {"-v"});  // -v: the handler's choice of policy is in the log a failure prints
  ASSERT_TRUE(d.ready());
  Watcher seen(cg);
  // sh enters the groups and execs bash: the bomb's origin keeps sh's pid.
  // Its members' "fork: retry" complaints (one per failed fork, thousands)
  // go nowhere: they would bury this test's own failure message.
  const pid_t origin = start(cg.wrap({"/bin/bash", "-c", "exec 2>/dev/null; b(){ b|b& }; b"}));
  ASSERT_GT(origin, 0);
  waitpid(origin, nullptr, 0);  // it returns once it started the first pipeline

  auto f = d.wait_record([](const json& r) { return is_fault(r, "fork_bomb"); }, 40s);
  ASSERT_TRUE(f) << "members seen: " << seen.count() << "\n" << describe(d.records());
  const uint32_t culprit = (*f)["pid"].get<uint32_t>();
  EXPECT_TRUE(culprit == uint32_t(origin) || seen.saw(culprit)) << "pid " << culprit << " is no member: " << f->dump();
  const json& group = (*f)["evidence"]["group"];
  EXPECT_GE(group["size"].get<size_t>(), 2u) << f->dump();
  EXPECT_GE(group["generations"].get<uint32_t>(), 4u) << f->dump();
  // One fault for the bomb, not one per generation.
  for (const json& r : d.records())
    if (is_fault(r, "fork_bomb")) {
      EXPECT_EQ(r["pid"], culprit) << r.dump();
    }

  auto a = d.wait_record([&](const json& r) { return is_action(r, "kill", "ok", culprit); }, 20s);
  ASSERT_TRUE(a) << describe(d.records()) << "\ndaemon log:\n" << d.log();
  EXPECT_NE((*a)["action"]["detail"].get<std::string>().find("stopped and killed"), std::string::npos) << a->dump();
  EXPECT_TRUE(wait_for([&] { return cg.pids().empty(); }, 10s)) << cg.pids().size() << " left: " << a->dump();
  std::this_thread::sleep_for(1s);  // a member missed would have bred again by now
  EXPECT_TRUE(cg.pids().empty()) << cg.pids().size() << " members alive after the kill";
}

// python3 appending 5 MiB to a list every 100 ms (~50 MB/s) in a 1 GiB
// memory cgroup: the OOM killer comes after ~20 s, the slow window (60 s)
// never; the forecast opens memory_leak first, naming the limit it will hit.
TEST(E2E, MemoryLeakIsForecastBeforeTheOomKiller) {
  const std::string name = "fpe2e-leak-" + std::to_string(getpid());
  CgroupSandbox cg(name, {"memory"});
  ASSERT_TRUE(cg.ok()) << cg.error();
  ASSERT_TRUE(cg.limit_memory(1ull << 30));
  Daemon d(kBase);
  ASSERT_TRUE(d.ready());
  const pid_t leak = start(cg.wrap({"/usr/bin/python3", "-c",
                                    "import time\n"
                                    "a = []\n"
                                    "while True:\n"
                                    "    a.append(b'\\x01' * (5 << 20))\n"
                                    "    time.sleep(0.1)\n"}));
  ASSERT_GT(leak, 0);
  auto f = d.wait_record(
      [&](const json& r) {
        return (is_fault(r, "memory_leak") || is_fault(r, "oom_kill")) && r["pid"] == uint32_t(leak);
      },
      60s);
  const uint64_t ooms = cg.oom_kills();
  kill(leak, SIGKILL);
  waitpid(leak, nullptr, 0);
  ASSERT_TRUE(f) << describe(d.records());
  EXPECT_EQ((*f)["class"], "memory_leak") << "the OOM killer came first: " << f->dump();
  EXPECT_EQ(ooms, 0u) << "the OOM killer fired before the alert";
  const json& ev = (*f)["evidence"];
  EXPECT_EQ(ev["opened_by"], "forecast") << f->dump();
  EXPECT_EQ(ev["limit"]["name"], "memory cgroup " + cg.path() + (cg.v2() ? " (memory.max)" : " (memory.limit_in_bytes)"))
      << f->dump();
  EXPECT_EQ(ev["limit"]["limit_bytes"], 1ull << 30) << f->dump();
  EXPECT_GT(ev["time_to_exhaustion_s"].get<double>(), 0) << f->dump();
  EXPECT_LE(ev["time_to_exhaustion_s"].get<double>(), ev["horizon_s"].get<double>()) << f->dump();
}

// make -j4 of 200 tiny C files, `find / -xdev`, a 256 MiB buffered copy and
// a shell loop running /bin/true 2000 times, at once: no fault of any class
// on any of their processes.
TEST(E2E, CleanSpellOfABuildAFindAndACopyRaisesNothing) {
  const std::string name = "fpe2e-clean-" + std::to_string(getpid());
  CgroupSandbox cg(name, {"cpu"});
  ASSERT_TRUE(cg.ok()) << cg.error();
  const std::string dir = temp_dir();
  {
    std::ofstream mk(dir + "/Makefile");
    mk << "OBJS := $(patsubst %.c,%.o,$(wildcard *.c))\nall: $(OBJS)\n%.o: %.c\n\t$(CC) -O0 -c $< -o $@\n";
    for (int i = 0; i < 200; ++i)
      std::ofstream(dir + "/f" + std::to_string(i) + ".c") << "int f" << i << "(int x) { return x * " << i << "; }\n";
  }
  Daemon d(kBase);
  ASSERT_TRUE(d.ready());
  Watcher seen(cg);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<pid_t> jobs = {
      start(cg.wrap({"/usr/bin/make", "-s", "-j4", "-C", dir})),
      start(cg.wrap({"/bin/sh", "-c", "find / -xdev > /dev/null 2>&1; exit 0"})),
      start(cg.wrap({"/bin/sh", "-c",
                     "dd if=/dev/zero of=" + dir + "/src bs=1M count=256 status=none && cp " + dir + "/src " + dir +
                         "/dst"})),
      start(cg.wrap({"/bin/bash", "-c", "for i in $(seq 2000); do /bin/true; done"})),
  };
  std::vector<int> status(jobs.size(), -1);
  EXPECT_TRUE(wait_for(
      [&] {
        bool all = true;
        for (size_t i = 0; i < jobs.size(); ++i) {
          if (status[i] >= 0) continue;
          int st = 0;
          if (waitpid(jobs[i], &st, WNOHANG) == jobs[i])
            status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
          else
            all = false;
        }
        return all;
      },
      180s));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(status[0], 0) << "make";
  EXPECT_EQ(status[2], 0) << "dd + cp";
  EXPECT_EQ(status[3], 0) << "the shell loop";
  EXPECT_GE(seen.count(), 3u);
  std::this_thread::sleep_for(2s);  // what the last ticks saw reaches the event stream
  for (const json& r : d.records()) {
    if (r["kind"] != "fault") continue;
    const uint32_t pid = r["pid"].get<uint32_t>();
    EXPECT_FALSE(seen.saw(pid) || r.value("cgroup", "") == cg.path())
        << "a fault on the clean spell (" << secs << " s): " << r.dump();
  }
  std::cout << "clean spell: " << secs << " s, " << seen.count() << " processes seen\n";
  cg.kill_all();
  fs::remove_all(dir);
}

// A process held by its own CPU quota (a container at its limit, or a
// throttle of ours) beside a busy neighbour on its CPU: the kernel counts its
// throttled time as run-queue wait (~0.9 s a second here, in waits of up to
// 0.9 s with a 1 s period), yet the neighbour starves nobody. Built-in
// rules: no runq_starvation names the capped process as a victim, nor the
// neighbour as a culprit. (Before the quota check it was blamed on the
// neighbour: the campaign's throttled hog named its own victim.)
TEST(E2E, AProcessHeldByItsOwnCpuQuotaIsNoVictim) {
  ASSERT_GT(sysconf(_SC_NPROCESSORS_ONLN), 1) << "needs CPU 1";
  const std::string name = "fpe2e-capped-" + std::to_string(getpid());
  CgroupSandbox cg(name, {"cpu"});
  ASSERT_TRUE(cg.ok()) << cg.error();
  ASSERT_TRUE(cg.limit_cpu(0.1, 1'000'000));
  Daemon d(kBase);
  ASSERT_TRUE(d.ready()) << d.log();
  const std::string dir = temp_dir();
  const std::vector<std::string> spin = {"/usr/bin/taskset", "-c", "1", "/usr/bin/python3", "-c",
                                         "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass"};
  ChildProcess neighbour(spin, dir + "/neighbour.log");
  ChildProcess capped(cg.wrap(spin), dir + "/capped.log");
  const uint32_t npid = uint32_t(neighbour.pid()), cpid = uint32_t(capped.pid());
  // The state that used to open the fault: 15 s of the capped process's
  // run-queue wait as the kernel counts it (/proc/PID/schedstat's second field).
  auto run_delay_s = [&] {
    std::ifstream f("/proc/" + std::to_string(cpid) + "/schedstat");
    uint64_t run = 0, delay = 0;
    f >> run >> delay;
    return double(delay) / 1e9;
  };
  ASSERT_TRUE(wait_for([&] { return run_delay_s() >= 15; }, 60s)) << run_delay_s() << " s waited";
  std::this_thread::sleep_for(1s);  // what the last ticks saw reaches the event stream
  for (const json& r : d.records()) {
    if (r.value("class", "") != "runq_starvation") continue;
    EXPECT_NE(r.value("pid", 0u), npid) << "the neighbour blamed: " << r.dump();
    for (const auto& v : r["victims"]) EXPECT_NE(v.get<uint32_t>(), cpid) << "the capped process a victim: " << r.dump();
  }
  capped.stop();
  neighbour.stop();
  fs::remove_all(dir);
}
