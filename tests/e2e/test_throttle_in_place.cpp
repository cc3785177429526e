// A throttle stays in place (issue 15 item 3), against the real daemon on
// this host's cgroup v1: a CPU hog that shares a cpu group and a pids group
// (pids.max = 20) with a sleeper is throttled by a cpu_runaway policy
// (cpu and pids limits) into children of its own groups, so the group's
// pids.max still holds when it then tries to fork 50 children; the undo
// puts it (and its children) back into exactly the groups it came from.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "e2e_fixture.h"
#include "forking_hog.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The v1 cgroup of pid for a controller ("" if gone).
std::string cgroup_of(pid_t pid, const std::string& controller) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  for (std::string line; std::getline(in, line);) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::stringstream ss(line.substr(a + 1, b - a - 1));
    for (std::string c; std::getline(ss, c, ',');)
      if (c == controller) return line.substr(b + 1);
  }
  return "";
}

// Two groups of this test in the cpu and pids hierarchies; everything in
// them is killed and the groups removed at the end.
struct Groups {
  std::string name = "fp-e2e-inplace-" + std::to_string(getpid());
  std::string cpu = "/sys/fs/cgroup/cpu/" + name, pids = "/sys/fs/cgroup/pids/" + name;
  Groups() {
    fs::create_directory(cpu);
    fs::create_directory(pids);
    std::ofstream(pids + "/pids.max") << 20;
    // The group competes with the root's tasks as one: on a machine busy
    // with other work its hog would not run a core hot at the default weight.
    std::ofstream(cpu + "/cpu.shares") << 262144;
  }
  ~Groups() {
    remove_cgroup_tree(cpu);
    remove_cgroup_tree(pids);
  }
  // A shell line that moves itself into both groups.
  std::string enter() const { return "echo $$ > " + cpu + "/cgroup.procs && echo $$ > " + pids + "/cgroup.procs && "; }
};

}  // namespace

TEST(ThrottleInPlace, APidsLimitedHogCannotForkPastItsGroupsLimitAndGoesBackAfterTheUndo) {
  ASSERT_TRUE(fs::exists("/sys/fs/cgroup/pids/cgroup.procs")) << "the test needs the cgroup v1 pids hierarchy";
  ASSERT_TRUE(fs::exists("/sys/fs/cgroup/cpu/cgroup.procs")) << "the test needs the cgroup v1 cpu hierarchy";
  Groups g;
  const std::string dir = temp_dir();
  const std::string trigger = dir + "/fork-now", report = dir + "/forked";
  std::ofstream(dir + "/hog.py") << forking_hog_py();

  Daemon d(in_place_config("/" + g.name + "*"));
  ASSERT_TRUE(d.ready()) << d.log();

  // A sleeper shares both groups with the hog.
  pid_t sleeper = spawn_shell(g.enter() + "exec sleep 300");
  pid_t hog = spawn_shell(g.enter() + "exec python3 " + dir + "/hog.py " + trigger + " " + report);
  ASSERT_TRUE(wait_for([&] { return cgroup_of(hog, "pids") == "/" + g.name && cgroup_of(sleeper, "pids") == "/" + g.name; },
                       10s));

  ASSERT_TRUE(d.wait_fault("cpu_runaway", uint32_t(hog), 30s)) << describe(d.records()) << d.log();
  auto act = d.wait_record([&](const json& r) { return is_action(r, "throttle", "ok", uint32_t(hog)); }, 10s);
  ASSERT_TRUE(act) << describe(d.records()) << d.log();
  // In place: below its own groups, not at the root.
  const std::string cpu_now = cgroup_of(hog, "cpu"), pids_now = cgroup_of(hog, "pids");
  EXPECT_EQ(cpu_now.rfind("/" + g.name + "/faultprobe-p" + std::to_string(hog) + "-", 0), 0u) << cpu_now;
  EXPECT_EQ(pids_now.rfind("/" + g.name + "/faultprobe-p" + std::to_string(hog) + "-", 0), 0u) << pids_now;
  EXPECT_EQ(cgroup_of(sleeper, "pids"), "/" + g.name);
  // Its group's 20 is lower than the throttle's 1000: nothing to write there.
  EXPECT_EQ(slurp(g.pids + pids_now.substr(g.name.size() + 1) + "/pids.max"), "max\n");
  EXPECT_NE((*act)["action"].value("detail", "").find("pids already at or below the limit"), std::string::npos);

  // Now it tries to fork 50 children: its group's pids.max (20) still holds.
  int forked = -1, refused = -1;
  const std::string why = fork_while_throttled(d, hog, trigger, report, &forked, &refused);
  ASSERT_EQ(why, "");
  std::printf("throttle: %s\nforks: %d done, %d refused; pids.current %s", (*act)["action"].value("detail", "").c_str(),
              forked, refused, slurp(g.pids + "/pids.current").c_str());
  EXPECT_LE(forked, 18) << "forked " << forked << " children past pids.max = 20 (the sleeper and the hog count too)";
  EXPECT_EQ(forked + refused, 50);
  EXPECT_LE(pids_below(g.pids).size(), 20u);
  EXPECT_EQ(std::stoi(slurp(g.pids + "/pids.current")), int(pids_below(g.pids).size()));

  // The undo: back into exactly its groups, with its children; ours are gone.
  auto undo = d.wait_record([&](const json& r) { return is_action(r, "unthrottle", "ok", uint32_t(hog)); }, 40s);
  ASSERT_TRUE(undo) << describe(d.records()) << d.log();
  std::printf("unthrottle: %s\n", (*undo)["action"].value("detail", "").c_str());
  EXPECT_EQ(cgroup_of(hog, "cpu"), "/" + g.name);
  EXPECT_EQ(cgroup_of(hog, "pids"), "/" + g.name);
  EXPECT_EQ(cgroup_of(sleeper, "pids"), "/" + g.name);
  std::set<std::string> subdirs;
  for (const auto& gdir : {g.cpu, g.pids})
    for (const auto& e : fs::directory_iterator(gdir))
      if (e.is_directory()) subdirs.insert(e.path().string());
  EXPECT_TRUE(subdirs.empty()) << *subdirs.begin();
  EXPECT_EQ(pids_below(g.pids).size(), size_t(forked + 2));  // the children came back too
  EXPECT_EQ(slurp(g.pids + "/pids.max"), "20\n");

  d.stop();
  kill(hog, SIGKILL);
  kill(sleeper, SIGKILL);
  waitpid(hog, nullptr, 0);
  waitpid(sleeper, nullptr, 0);
  fs::remove_all(dir);
}
