// A respawn runs as root on behalf of an unprivileged process: what it opens,
// which groups and OOM priority it gives the new process, and that it leaves
// no zombie and never waits on the loop. Real processes, real /proc (root).
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "act/process.h"
#include "act/real_actuator.h"
#include "act/respawn.h"
#include "act/spawn.h"
#include "act/systemd.h"
#include "fake_command_runner.h"
#include "../time_scale.h"
#include "result_or.h"

namespace fp {
namespace {

namespace fs = std::filesystem;

using test::or_else;

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr uid_t kNobody = 65534;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/fp-rsp-XXXXXX";
    path = mkdtemp(tmpl);
    fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The field after "NAME:" in /proc/PID/status.
std::string status_field(pid_t pid, const std::string& name) {
  std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + ":", 0) == 0) {
      std::string v = line.substr(name.size() + 1);
      while (!v.empty() && (v.front() == '\t' || v.front() == ' ')) v.erase(0, 1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
      return v;
    }
  return "";
}

std::set<gid_t> groups_of(pid_t pid) {
  std::set<gid_t> out;
  std::istringstream in(status_field(pid, "Groups"));
  for (gid_t g; in >> g;) out.insert(g);
  return out;
}

int oom_score_adj_of(pid_t pid) { return std::stoi(slurp("/proc/" + std::to_string(pid) + "/oom_score_adj")); }

// A process as an unprivileged user would start it: its groups, its OOM
// priority, its stdout on a file it opened itself; then exec `argv`.
struct UserProcess {
  pid_t pid = -1;
  ~UserProcess() { stop(); }
  void stop() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
};

void start_user_process(UserProcess& p, const std::vector<gid_t>& groups, int oom, const fs::path& out,
                        std::vector<std::string> argv) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    int fd = open("/proc/self/oom_score_adj", O_WRONLY);
    std::string text = std::to_string(oom);
    if (fd < 0 || write(fd, text.data(), text.size()) < 0) _exit(121);
    close(fd);
    if (setgroups(groups.size(), groups.data()) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0) _exit(122);
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (o < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0) _exit(123);
    char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
    execve(a[0], a.data(), envp);
    _exit(127);
  }
  p.pid = pid;
}

// The spec once the exec shows in /proc (before it, the command line is the test's).
Result<SpawnSpec> capture_after_exec(pid_t pid, const std::string& exe) {
  const auto deadline = steady::now() + test::scaled(5s);
  Result<SpawnSpec> spec = Error{EAGAIN, "no exec seen"};
  while (steady::now() < deadline) {
    auto link = read_link_path("/proc/" + std::to_string(pid) + "/exe");
    if (link && *link == exe) {
      spec = capture_spawn_spec(pid);
      if (spec.ok()) return spec;
    }
    std::this_thread::sleep_for(5ms);
  }
  return spec;
}

// A user's process wrote to a file in its own directory; before the respawn
// the user swaps the file for a symlink to a root-owned file. The respawn
// (as the user, and even as root) must not write through it.
TEST(RespawnPrivilege, SymlinkedStdoutIsLeftUntouched) {
  ASSERT_EQ(geteuid(), 0u) << "needs root: it respawns as another user";
  TempDir dir;
  const fs::path user_dir = dir.path / "home";
  fs::create_directory(user_dir);
  ASSERT_EQ(chown(user_dir.c_str(), kNobody, kNobody), 0);
  const fs::path secret = dir.path / "secret";
  std::ofstream(secret) << "root's\n";
  const fs::path out = user_dir / "out.log";

  UserProcess p;
  start_user_process(p, {kNobody}, 0, out, {"/usr/bin/sleep", "30"});
  auto spec = capture_after_exec(p.pid, "/usr/bin/sleep");
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  p.stop();
  EXPECT_EQ(spec->log_path, out.string());
  EXPECT_TRUE(spec->log_as_user);

  // An ordinary respawn appends to the file, as the user.
  spec->argv = {"/bin/sh", "-c", "echo again"};
  auto r = spawn_process(*spec);
  ASSERT_TRUE(r.ok()) << r.error().message;
  waitpid(r->pid, nullptr, 0);
  close(r->pidfd);
  EXPECT_EQ(r->warning, "");
  EXPECT_EQ(slurp(out), "again\n");

  // The user swaps it for a link to root's file.
  fs::remove(out);
  fs::create_symlink(secret, out);
  ASSERT_EQ(lchown(out.c_str(), kNobody, kNobody), 0);
  spec->argv = {"/bin/sh", "-c", "echo pwned; echo pwned >&2"};
  for (uid_t as : {kNobody, uid_t(0)}) {
    SpawnSpec s = *spec;
    s.uid = s.gid = as;
    auto r2 = spawn_process(s);
    ASSERT_TRUE(r2.ok()) << r2.error().message;
    int status = 0;
    waitpid(r2->pid, &status, 0);
    close(r2->pidfd);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);  // it ran, its output went to /dev/null
    EXPECT_NE(r2->warning.find("cannot open " + out.string() + " as uid " + std::to_string(as) +
                               " (output to /dev/null)"),
              std::string::npos)
        << r2->warning;
    EXPECT_EQ(slurp(secret), "root's\n") << "written through the link as uid " << as;
  }
  struct stat sb {};
  ASSERT_EQ(stat(secret.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_uid, 0u);
}

// The groups the process had (here one its user's group entry does not give
// it), and its own OOM priority, not the daemon's -900.
TEST(RespawnPrivilege, GroupsAndOomScoreAdjArePreserved) {
  ASSERT_EQ(geteuid(), 0u) << "needs root: it respawns as another user";
  TempDir dir;
  const int own_adj = oom_score_adj_of(getpid());
  // faultprobed runs at -900 (OOMScoreAdjust=). Lowering below 0 needs
  // CAP_SYS_RESOURCE, which this host's root may lack: stand in with 500,
  // just as much not the process's own value.
  const int daemons = 500;
  {
    std::ofstream("/proc/self/oom_score_adj") << daemons;
  }
  ASSERT_EQ(oom_score_adj_of(getpid()), daemons);

  UserProcess p;
  start_user_process(p, {kNobody, 4242, 4343}, 345, "/dev/null", {"/usr/bin/sleep", "30"});
  auto spec = capture_after_exec(p.pid, "/usr/bin/sleep");
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(groups_of(p.pid), (std::set<gid_t>{4242, 4343, kNobody}));
  p.stop();

  auto r = spawn_process(*spec);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const std::set<gid_t> groups = groups_of(r->pid);
  const int adj = oom_score_adj_of(r->pid);
  const std::string uid = status_field(r->pid, "Uid");
  kill(r->pid, SIGKILL);
  waitpid(r->pid, nullptr, 0);
  close(r->pidfd);
  std::ofstream("/proc/self/oom_score_adj") << own_adj;

  EXPECT_EQ(groups, (std::set<gid_t>{4242, 4343, kNobody}));
  EXPECT_EQ(adj, 345);
  EXPECT_EQ(uid.substr(0, 5), "65534");
}

// Our children that exited, not reaped: zombies.
size_t zombie_children() {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto st = read_proc_stat(std::stoi(name));
    if (st && st->ppid == getpid() && st->state == 'Z') ++n;
  }
  return n;
}

struct ActuatorRig {
  RespawnRegistry registry;
  std::unique_ptr<RealActuator> actuator;
  explicit ActuatorRig(std::chrono::milliseconds grace) {
    RealActuatorDeps d;
    d.respawn = &registry;
    d.grace = grace;
    actuator = std::make_unique<RealActuator>(d);
  }
  Target target(pid_t pid) {
    Target t;
    t.key.tgid = uint32_t(pid);
    auto st = process_start_ns(pid);
    t.key.start_ns = st ? *st : 0;
    t.comm = "sleep";
    return t;
  }
  static uint64_t now() {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count());
  }
  // Ticks until the respawn of `old` started; its key, or tgid 0 at the deadline.
  ProcKey await_replacement(const ProcKey& old) {
    const auto deadline = steady::now() + test::scaled(15s);
    while (steady::now() < deadline) {
      actuator->tick(now());
      if (auto k = actuator->replacement_of(old)) return *k;
      std::this_thread::sleep_for(10ms);
    }
    return {};
  }
};

TEST(RespawnPrivilege, NoZombiesAfterRepeatedRespawns) {
  ASSERT_EQ(zombie_children(), 0u);
  ActuatorRig rig(2000ms);
  SpawnSpec first;
  first.argv = {"/usr/bin/sleep", "60"};
  first.env = {{"PATH", "/usr/bin:/bin"}};
  auto p0 = spawn_process(first);
  ASSERT_TRUE(p0.ok()) << p0.error().message;
  Target t = rig.target(p0->pid);
  constexpr int kRespawns = 6;
  std::vector<pid_t> seen = {p0->pid};
  for (int i = 0; i < kRespawns; ++i) {
    rig.actuator->remember(t);
    ActionOutcome o = rig.actuator->restart(t, false);
    ASSERT_EQ(o.result, ActionResult::Ok) << o.detail;
    ProcKey next = rig.await_replacement(t.key);
    ASSERT_NE(next.tgid, 0u) << "respawn " << i << " did not happen";
    if (i == 0) {  // the first process is the test's child, not the actuator's
      waitpid(p0->pid, nullptr, 0);
      close(p0->pidfd);
    }
    t = rig.target(pid_t(next.tgid));
    seen.push_back(pid_t(next.tgid));
  }
  // The ones replaced are reaped within a tick or two.
  const auto deadline = steady::now() + test::scaled(5s);
  while (zombie_children() != 0 && steady::now() < deadline) {
    rig.actuator->tick(ActuatorRig::now());
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(zombie_children(), 0u);
  EXPECT_EQ(rig.actuator->children(), 1u);  // the last respawn runs
  kill(seen.back(), SIGKILL);
  const auto deadline2 = steady::now() + test::scaled(5s);
  while (rig.actuator->children() != 0 && steady::now() < deadline2) {
    rig.actuator->tick(ActuatorRig::now());
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(rig.actuator->children(), 0u);
  EXPECT_EQ(zombie_children(), 0u);
}

// A process that ignores SIGTERM costs the caller nothing: restart() returns
// at once, tick() sends SIGKILL after the grace and respawns it then.
TEST(RespawnPrivilege, SigtermIgnoredDoesNotBlockTheCaller) {
  ActuatorRig rig(500ms);
  SpawnSpec spec;
  spec.argv = {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"};
  spec.env = {{"PATH", "/usr/bin:/bin"}};
  auto p0 = spawn_process(spec);
  ASSERT_TRUE(p0.ok()) << p0.error().message;
  // Wait until the trap is set: the shell is then in its loop (it has a child).
  Target t = rig.target(p0->pid);
  const auto ready = steady::now() + test::scaled(5s);
  while (steady::now() < ready && or_else(read_small_file("/proc/" + std::to_string(p0->pid) + "/task/" +
                                                  std::to_string(p0->pid) + "/children"), std::string())
                                       .empty())
    std::this_thread::sleep_for(10ms);
  rig.actuator->remember(t);
  const auto t0 = steady::now();
  ActionOutcome o = rig.actuator->restart(t, false);
  const auto took = steady::now() - t0;
  ASSERT_EQ(o.result, ActionResult::Ok) << o.detail;
  EXPECT_LT(took, 200ms) << "restart() waited for the process";
  EXPECT_EQ(rig.actuator->pending_respawns(), 1u);
  ProcKey next = rig.await_replacement(t.key);
  const auto total = steady::now() - t0;
  ASSERT_NE(next.tgid, 0u);
  EXPECT_GE(total, 500ms);  // it outlived SIGTERM, SIGKILL came after the grace
  waitpid(p0->pid, nullptr, 0);
  close(p0->pidfd);
  kill(pid_t(next.tgid), SIGKILL);
  while (rig.actuator->children() != 0) {
    rig.actuator->tick(ActuatorRig::now());
    std::this_thread::sleep_for(10ms);
  }
}

// Under systemd the replacement is systemd's child, in a transient unit, and
// never ours (nothing of the daemon's sandbox or cgroup reaches it).
TEST(RespawnPrivilege, UnderSystemdARespawnIsATransientUnit) {
  TempDir dir;
  fs::create_directories(dir.path / "run-systemd");
  test::FakeRunner runner;
  SystemdControl systemd(runner, (dir.path / "run-systemd").string());
  RespawnRegistry registry;
  RealActuatorDeps d;
  d.respawn = &registry;
  d.systemd = &systemd;
  d.under_systemd = true;
  RealActuator actuator(d);

  SpawnSpec spec;
  spec.argv = {"/usr/bin/sleep", "30"};
  spec.env = {{"PATH", "/usr/bin:/bin"}};
  auto p = spawn_process(spec);
  ASSERT_TRUE(p.ok()) << p.error().message;
  Target t;
  t.key = ProcKey{uint32_t(p->pid), or_else(process_start_ns(p->pid), uint64_t(0))};
  t.comm = "sleep";
  actuator.remember(t);
  kill(p->pid, SIGKILL);  // it crashed
  waitpid(p->pid, nullptr, 0);
  close(p->pidfd);

  ActionOutcome o = actuator.restart(t, false);
  ASSERT_EQ(o.result, ActionResult::Ok) << o.detail;
  EXPECT_NE(o.detail.find("as faultprobe-respawn-" + std::to_string(p->pid) + "-1.service"), std::string::npos)
      << o.detail;
  ASSERT_EQ(runner.calls.size(), 1u);
  EXPECT_EQ(runner.calls[0][0], "systemd-run");
  EXPECT_EQ(runner.calls[0].back(), "30");
  EXPECT_EQ(actuator.children(), 0u);  // nothing forked by us
}

}  // namespace
}  // namespace fp
