// A throttle undone behind the daemon's back is put back, once (issue 15
// item 3's defence in depth): against the real daemon on this host's cgroup
// v1, a CPU hog alone in a cpu group of its own is throttled to 20 % there;
// the test then writes the group's quota back to -1 (what systemd does to a
// unit's cgroup at daemon-reload on v2). The daemon writes 20000 again and
// logs it; undone a second time, that is an evasion: the policy's next step
// (kill) comes at once, though the fault has cleared.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cgroup_read.h"
#include "e2e_fixture.h"
#include "forking_hog.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string quota(const std::string& dir) { return std::string(slurp(dir + "/cpu.cfs_quota_us")); }

}  // namespace

TEST(ThrottleReapply, AQuotaUndoneBehindTheDaemonIsPutBackThenEscalated) {
  ASSERT_TRUE(fs::exists("/sys/fs/cgroup/cpu/cgroup.procs")) << "the test needs the cgroup v1 cpu hierarchy";
  const std::string name = "fp-e2e-reapply-" + std::to_string(getpid());
  const std::string group = "/sys/fs/cgroup/cpu/" + name;
  fs::create_directory(group);
  // One group competing with the root's tasks: at the default weight its hog
  // would not run a core hot on a machine busy with other work.
  std::ofstream(group + "/cpu.shares") << 262144;

  Daemon d(in_place_config("/" + name, R"("throttle:cpu=20%", "kill")", "300s", "300s"));
  ASSERT_TRUE(d.ready()) << d.log();
  pid_t hog = spawn_shell("echo $$ > " + group + "/cgroup.procs && exec python3 -c 'while 1: pass'");
  ASSERT_TRUE(wait_for([&] { return cgroup_of(uint32_t(hog), "cpu") == "/" + name; }, 10s));

  ASSERT_TRUE(d.wait_fault("cpu_runaway", uint32_t(hog), 30s)) << describe(d.records()) << d.log();
  auto act = d.wait_record([&](const json& r) { return is_action(r, "throttle", "ok", uint32_t(hog)); }, 10s);
  ASSERT_TRUE(act) << describe(d.records()) << d.log();
  ASSERT_EQ(cgroup_of(uint32_t(hog), "cpu"), "/" + name);  // alone there: limited in its own group
  ASSERT_EQ(quota(group), "20000\n");

  // Undone once: put back and logged, no escalation.
  std::ofstream(group + "/cpu.cfs_quota_us") << -1;
  ASSERT_TRUE(wait_for([&] { return quota(group) == "20000\n"; }, 15s)) << quota(group) << d.log();
  EXPECT_NE(d.log().find("re-applied"), std::string::npos) << d.log();
  EXPECT_FALSE(first_match(d.records(), [&](const json& r) {
    return r.value("kind", "") == "action" && r["action"].value("type", "") == "kill";
  }));

  // Undone again: an evasion, and the policy's next step at once.
  std::ofstream(group + "/cpu.cfs_quota_us") << -1;
  auto rec = d.wait_record(
      [&](const json& r) {
        return r.value("kind", "") == "recovery" && r.value("pid", 0u) == uint32_t(hog) &&
               r["recovery"].value("detail", "").find("evaded") != std::string::npos;
      },
      20s);
  ASSERT_TRUE(rec) << describe(d.records()) << d.log();
  EXPECT_NE((*rec)["recovery"].value("detail", "").find("cpu.cfs_quota_us"), std::string::npos) << rec->dump();
  auto killed = d.wait_record([&](const json& r) { return is_action(r, "kill", "ok", uint32_t(hog)); }, 10s);
  EXPECT_TRUE(killed) << describe(d.records()) << d.log();
  std::printf("evasion: %s\n", (*rec)["recovery"].value("detail", "").c_str());

  d.stop();
  kill(hog, SIGKILL);
  waitpid(hog, nullptr, 0);
  remove_cgroup_tree(group);
}
