// For the in-place throttle tests (e2e on cgroup v1, vm on v2): a CPU hog
// that forks on request, shell commands started in the background, and the
// processes and groups of a test's cgroup subtree.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "e2e_fixture.h"

namespace fp::e2e {

// python3 FILE TRIGGER REPORT: spins until TRIGGER exists, then forks 50
// children that sleep, writes "<forked> <refused>" to REPORT, then idles (so
// its cpu_runaway fault clears and the throttle is undone).
inline const char* forking_hog_py() {
  return R"(
import os, sys, time
trigger, report = sys.argv[1], sys.argv[2]
while not os.path.exists(trigger):
    for _ in range(100000):
        pass
forked = refused = 0
for _ in range(50):
    try:
        pid = os.fork()
    except OSError:
        refused += 1
        continue
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    forked += 1
with open(report + ".tmp", "w") as f:
    f.write("%d %d\n" % (forked, refused))
os.rename(report + ".tmp", report)
while True:
    time.sleep(1)
)";
}

// The daemon config of the in-place tests: cpu_runaway opens at half a core,
// the policy throttles the processes of `cgroup_glob` to 20 % of a CPU and
// 1000 pids (their groups allow fewer), and undoes it 15 s after the fault
// clears: the forks are over by then (the tests check). Other tests give
// their own ladder and windows.
inline std::string in_place_config(const std::string& cgroup_glob,
                                   const std::string& ladder = R"("throttle:cpu=20%,pids=1000")",
                                   const std::string& cooldown = "15s", const std::string& recovery_window = "3s") {
  return R"(
sample_interval = "100ms"
[rules.anomaly]
enabled = false
[rules.cpu_runaway]
for = "2s"
clear = "1s"
threshold = 0.5
resolve = 0.3

[[policy]]
name = "hog"
match = { cgroup = ")" + cgroup_glob + R"(" }
on.cpu_runaway = [)" + ladder + R"(]
cooldown = ")" + cooldown + R"("
recovery_window = ")" + recovery_window + R"("
)";
}

// Tells the throttled hog to fork (creates `trigger`) and waits for its
// REPORT; "" and the counts, or why the run proves nothing.
inline std::string fork_while_throttled(const Daemon& d, pid_t hog, const std::string& trigger,
                                        const std::string& report, int* forked, int* refused) {
  std::ofstream(trigger) << "go";
  if (!wait_for([&] { return std::filesystem::exists(report); }, std::chrono::seconds(30)))
    return "the hog never reported its forks";
  for (const auto& r : d.records())
    if (is_action(r, "unthrottle", "ok", uint32_t(hog)))
      return "the undo came before the forks: the test proves nothing (raise the cooldown)";
  std::istringstream(slurp(report)) >> *forked >> *refused;
  return "";
}

// /bin/sh -c CMD in the background; its pid (an exec'd program keeps it).
inline pid_t spawn_shell(const std::string& cmd) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Every pid listed in the cgroup directory and the groups below it.
inline std::vector<pid_t> pids_below(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<pid_t> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  auto add = [&](const fs::path& d) {
    std::ifstream in(d / "cgroup.procs");
    for (pid_t p; in >> p;) out.push_back(p);
  };
  add(dir);
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
    if (it->is_directory()) add(it->path());
  return out;
}

// Kills everything in a test's cgroup subtree and removes its groups, the
// deepest first (a group is removable once its processes are reaped).
inline void remove_cgroup_tree(const std::string& dir) {
  namespace fs = std::filesystem;
  for (pid_t p : pids_below(dir)) kill(p, SIGKILL);
  wait_for(
      [&] {
        std::error_code ec;
        std::vector<std::string> dirs;
        for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
          if (it->is_directory()) dirs.push_back(it->path().string());
        for (auto d = dirs.rbegin(); d != dirs.rend(); ++d) rmdir(d->c_str());
        return rmdir(dir.c_str()) == 0 || !fs::exists(dir, ec);
      },
      std::chrono::seconds(10));
}

}  // namespace fp::e2e
