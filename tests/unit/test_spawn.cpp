// spawn_process and RealSpawner against real children.
#include "act/spawn.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "act/spawner.h"

namespace fp {
namespace {

namespace fs = std::filesystem;

struct SpawnTempDir {
  fs::path path;
  SpawnTempDir() {
    char tmpl[] = "/tmp/fp-spawn-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~SpawnTempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int wait_exit(pid_t pid) {
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return status;
}

SpawnSpec sh(const std::string& script, const fs::path& log) {
  SpawnSpec s;
  s.argv = {"/bin/sh", "-c", script};
  s.log_path = log.string();
  return s;
}

TEST(SpawnProcess, RunsArgvWithItsEnvironmentCwdAndLog) {
  SpawnTempDir dir;
  const fs::path log = dir.path / "svc.log";
  {
    std::ofstream(log) << "earlier\n";  // appended to, not truncated
  }
  SpawnSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo \"$0 $1 $FOO ${HOME-nohome}\"; pwd; echo oops >&2", "zero", "one"};
  spec.env = {{"FOO", "bar baz"}};
  spec.cwd = dir.path.string();
  spec.log_path = log.string();
  auto r = spawn_process(spec);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->pid, 0);
  EXPECT_GE(r->pidfd, 0);
  EXPECT_EQ(r->key.tgid, static_cast<uint32_t>(r->pid));
  int status = wait_exit(r->pid);
  close(r->pidfd);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Only the given environment: HOME is not inherited from the test.
  EXPECT_EQ(slurp(log), "earlier\nzero one bar baz nohome\n" + dir.path.string() + "\noops\n");
}

TEST(SpawnProcess, ExecFailureIsAnErrorAndLeavesNoChild) {
  SpawnSpec spec;
  spec.argv = {"/nonexistent/x"};
  auto r = spawn_process(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ENOENT);
  EXPECT_EQ(r.error().message, "cannot exec /nonexistent/x: No such file or directory");
  int status;
  EXPECT_EQ(waitpid(-1, &status, WNOHANG), -1);  // reaped already
  EXPECT_EQ(errno, ECHILD);
}

TEST(SpawnProcess, BadCwdOrUserIsAnError) {
  SpawnSpec spec;
  spec.argv = {"/bin/true"};
  spec.cwd = "/nonexistent-dir";
  auto r = spawn_process(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "cannot chdir to /nonexistent-dir: No such file or directory");

  spec.cwd = "/";
  spec.user = "no-such-user-fp";
  r = spawn_process(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "no such user: no-such-user-fp");
  int status;
  EXPECT_EQ(waitpid(-1, &status, WNOHANG), -1);
}

TEST(SpawnProcess, SwitchesToTheUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  SpawnTempDir dir;
  const fs::path log = dir.path / "id.log";
  SpawnSpec spec = sh("id -u; id -g; id -G", log);
  spec.env = {{"PATH", "/usr/bin:/bin"}};
  spec.user = "nobody";
  auto r = spawn_process(spec);
  ASSERT_TRUE(r.ok()) << r.error().message;
  wait_exit(r->pid);
  close(r->pidfd);
  EXPECT_EQ(slurp(log), "65534\n65534\n65534\n");  // root's supplementary groups are gone too
}

TEST(SpawnProcess, ClosesFdsResetsSignalsAndStartsASession) {
  SpawnTempDir dir;
  // An inheritable fd, a blocked and an ignored signal in the parent.
  int leaked = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 0);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  auto old_pipe = signal(SIGPIPE, SIG_IGN);

  SpawnSpec spec;
  spec.argv = {"/bin/sleep", "30"};
  spec.log_path = (dir.path / "out.log").string();
  auto r = spawn_process(spec);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  signal(SIGPIPE, old_pipe);
  close(leaked);
  ASSERT_TRUE(r.ok()) << r.error().message;

  // spawn_process returns after the exec: /proc shows sleep itself.
  const fs::path proc = "/proc/" + std::to_string(r->pid);
  std::vector<int> fds;
  for (const auto& e : fs::directory_iterator(proc / "fd")) fds.push_back(std::stoi(e.path().filename().string()));
  std::sort(fds.begin(), fds.end());
  EXPECT_EQ(fds, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(fs::read_symlink(proc / "fd" / "0"), "/dev/null");
  EXPECT_EQ(fs::read_symlink(proc / "fd" / "1"), dir.path / "out.log");
  EXPECT_EQ(fs::read_symlink(proc / "fd" / "2"), dir.path / "out.log");

  std::string status = slurp(proc / "status");
  auto field = [&](const std::string& name) {
    auto at = status.find("\n" + name + ":\t");
    return at == std::string::npos ? std::string() : status.substr(at + name.size() + 3, 16);
  };
  EXPECT_EQ(field("SigBlk"), "0000000000000000");
  EXPECT_EQ(std::stoull(field("SigIgn"), nullptr, 16) & (1ull << (SIGPIPE - 1)), 0u) << field("SigIgn");

  std::istringstream stat(slurp(proc / "stat"));
  std::string pid, comm, state, ppid, pgrp, session;
  stat >> pid >> comm >> state >> ppid >> pgrp >> session;
  EXPECT_EQ(session, std::to_string(r->pid));  // its own session and group
  EXPECT_EQ(pgrp, std::to_string(r->pid));

  kill(r->pid, SIGKILL);
  wait_exit(r->pid);
  close(r->pidfd);
}

TEST(RealSpawner, SignalsThroughThePidfdAndReapsWithoutBlocking) {
  RealSpawner sp;
  SpawnSpec spec;
  spec.argv = {"/bin/sleep", "30"};
  auto r = sp.spawn(spec);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(sp.reap(r->pid, r->pidfd).has_value());  // still running
  ASSERT_TRUE(sp.signal(r->pid, r->pidfd, SIGTERM).ok());
  std::optional<int> status;
  for (int i = 0; i < 200 && !status; ++i) {
    status = sp.reap(r->pid, r->pidfd);
    if (!status) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGTERM);
  EXPECT_EQ(describe_wait_status(*status), "killed by SIGTERM");
  sp.release(r->pidfd);
}

TEST(DescribeWaitStatus, Texts) {
  EXPECT_EQ(describe_wait_status(W_EXITCODE(3, 0)), "exited with code 3");
  EXPECT_EQ(describe_wait_status(W_EXITCODE(0, SIGSEGV) | WCOREFLAG), "killed by SIGSEGV (core dumped)");
  EXPECT_EQ(describe_wait_status(kUnknownWaitStatus), "ended (status unknown: not our child)");
}

}  // namespace
}  // namespace fp
