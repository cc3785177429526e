// StopRecord: what kill_tree stops is written down first, so a daemon that
// dies mid-freeze leaves nothing stopped for good. Real processes.
#include "act/stop_record.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "act/process.h"
#include "act/spawn.h"
#include "../time_scale.h"
#include "result_or.h"

namespace fp {
namespace {

namespace fs = std::filesystem;

using test::or_else;

using namespace std::chrono_literals;

struct Child {
  pid_t pid = -1;
  ProcKey key;
  Child() {
    pid = fork();
    if (pid == 0) {
      execl("/usr/bin/sleep", "sleep", "30", nullptr);
      _exit(127);
    }
    key = ProcKey{uint32_t(pid), or_else(process_start_ns(pid), uint64_t(0))};
  }
  ~Child() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  char state() const {
    auto st = read_proc_stat(pid);
    return st ? st->state : '?';
  }
};

// "/proc/PID/task/PID/children": "123 456 ".
std::string children(pid_t pid) {
  return or_else(read_small_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children"),
                 std::string());
}

bool wait_state(const Child& c, bool stopped) {
  const auto deadline = std::chrono::steady_clock::now() + test::scaled(5s);
  while (std::chrono::steady_clock::now() < deadline) {
    if ((c.state() == 'T') == stopped) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/fp-stops-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

// The daemon that stopped them dies (here: the record is simply left); the
// next one continues the recorded processes that are still the same ones.
TEST(StopRecord, TheNextDaemonContinuesWhatWasLeftStopped) {
  TempDir dir;
  const std::string path = (dir.path / "stopped.json").string();
  Child a, b, reused;
  {
    StopRecord rec(path);
    ProcKey stale = reused.key;
    stale.start_ns += 5'000'000'000ull;  // the pid now belongs to another process
    ASSERT_TRUE(rec.add({a.key, b.key, stale}).ok());
    for (const Child* c : {&a, &b, &reused}) kill(c->pid, SIGSTOP);
    ASSERT_TRUE(wait_state(a, true) && wait_state(b, true) && wait_state(reused, true));
  }  // killed -9: no clear()
  ASSERT_TRUE(fs::exists(path));
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);

  PidfdSignaller signaller;
  StopRecord next(path);
  EXPECT_EQ(next.continue_recorded([&](const ProcKey& k, int sig) { return signaller.send(k, sig); }), 2u);
  EXPECT_TRUE(wait_state(a, false));
  EXPECT_TRUE(wait_state(b, false));
  EXPECT_EQ(reused.state(), 'T');  // not the process that was recorded: left alone
  EXPECT_FALSE(fs::exists(path));
  kill(reused.pid, SIGCONT);
}

// kill_tree clears its record once the members it stopped are killed.
TEST(StopRecord, KillTreeRecordsBeforeStoppingAndClearsAfterTheKill) {
  TempDir dir;
  const std::string path = (dir.path / "stopped.json").string();
  pid_t sh = fork();
  if (sh == 0) {
    execl("/bin/sh", "sh", "-c", "sleep 30 & sleep 30 & wait", nullptr);
    _exit(127);
  }
  // Its two children are there.
  const auto deadline = std::chrono::steady_clock::now() + test::scaled(5s);
  while (std::chrono::steady_clock::now() < deadline &&
         [&] {
           const std::string c = children(sh);
           return std::count(c.begin(), c.end(), ' ');
         }() < 2)
    std::this_thread::sleep_for(5ms);
  StopRecord rec(path);
  ProcKey root{uint32_t(sh), or_else(process_start_ns(sh), uint64_t(0))};
  auto r = kill_tree(root, "/proc", nullptr, &rec);
  int status = 0;
  waitpid(sh, &status, 0);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(r->find("and 2 descendant(s)"), std::string::npos) << *r;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(rec.keys().empty());
  EXPECT_FALSE(fs::exists(path));
}

}  // namespace
}  // namespace fp
