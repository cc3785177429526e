// SafetyGuard against a fake /proc tree (every kind of protected process) and
// against the real /proc for pid 1, kthreadd, itself and its parent.
#include "act/safety.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include "act/process.h"
#include "act/spawn.h"

namespace fp {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kKworkerFlags = 0x04208060;  // PF_KTHREAD | PF_WQ_WORKER | ...
constexpr uint32_t kUserFlags = 0x00400100;

class SafetyFakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "fp_safety_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    add(1, "init", 0, kUserFlags);
    add(2, "kthreadd", 0, 0x00208040);
    add(35, "kworker/0:1", 2, kKworkerFlags);
    add(60, "odd_kthread", 1, 0x00200000);  // the flag alone is enough
    add(700, "sshd", 1, kUserFlags);
    add(812, "sshd", 700, kUserFlags);
    add(900, "bash", 812, kUserFlags);
    add(1000, "faultprobed", 900, kUserFlags);
    add(2000, "worker", 1, kUserFlags);
    add(2001, "postgres", 1, kUserFlags);
    add(2002, "nginx", 1, kUserFlags);
    // Their programs: files only this user (root, as faultprobed) can write.
    fs::create_directories(root_ / "bin");
    fs::permissions(root_ / "bin", fs::perms(0755));
    for (const char* name : {"worker", "postgres", "nginx", "python3"}) {
      std::ofstream(root_ / "bin" / name) << "#!\n";
      fs::permissions(root_ / "bin" / name, fs::perms(0755));
    }
    exe(2000, root_ / "bin/worker");
    exe(2001, root_ / "bin/postgres");
    exe(2002, root_ / "bin/nginx");
  }
  // PID's /proc exe link (a symlink here; the kernel's magic link in /proc).
  void exe(pid_t pid, const fs::path& target) {
    fs::remove(root_ / std::to_string(pid) / "exe");
    fs::create_symlink(target, root_ / std::to_string(pid) / "exe");
  }
  void TearDown() override { fs::remove_all(root_); }

  static uint64_t ticks_of(pid_t pid) { return 1'000'000 + uint64_t(pid) * 7; }

  void add(pid_t pid, const std::string& comm, pid_t ppid, uint32_t flags, uint64_t ticks = 0) {
    fs::create_directories(root_ / std::to_string(pid));
    std::ofstream(root_ / std::to_string(pid) / "stat")
        << pid << " (" << comm << ") S " << ppid << " " << pid << " " << pid << " 0 -1 " << flags
        << " 0 0 0 0 0 0 0 0 20 0 1 0 " << (ticks ? ticks : ticks_of(pid)) << " 0 0\n";
  }
  ProcKey key(pid_t pid) const { return ProcKey{uint32_t(pid), start_ticks_to_mono_ns(ticks_of(pid))}; }
  SafetyGuard guard(std::vector<std::string> comms = {}) const { return SafetyGuard(1000, root_.string(), comms); }

  fs::path root_;
};

TEST_F(SafetyFakeProc, Pid1AndKernelThreads) {
  auto g = guard();
  EXPECT_EQ(g.refuse(key(1), "init"), "protected: pid 1");
  EXPECT_EQ(g.refuse(key(2), "kthreadd"), "protected: kernel thread (kthreadd, pid 2)");
  EXPECT_EQ(g.refuse(key(35), "kworker/0:1"), "protected: kernel thread (kworker/0:1, pid 35)");
  EXPECT_EQ(g.refuse(key(60), "odd_kthread"), "protected: kernel thread (odd_kthread, pid 60)");
}

TEST_F(SafetyFakeProc, ItselfAndItsAncestors) {
  auto g = guard();
  EXPECT_EQ(g.refuse(key(1000), "faultprobed"), "protected: faultprobed itself (pid 1000)");
  EXPECT_EQ(g.refuse(key(900), "bash"), "protected: ancestor of faultprobed (bash, pid 900)");
  EXPECT_EQ(g.refuse(key(812), "sshd"), "protected: ancestor of faultprobed (sshd, pid 812)");
  EXPECT_EQ(g.refuse(key(700), "sshd"), "protected: ancestor of faultprobed (sshd, pid 700)");
  ASSERT_EQ(g.ancestors().size(), 3u);  // 900, 812, 700; pid 1 ends the walk
  EXPECT_EQ(g.ancestors()[0].pid, 900);
  EXPECT_EQ(g.ancestors()[2].pid, 700);
  EXPECT_EQ(g.refuse(key(2000), "worker"), std::nullopt);
}

TEST_F(SafetyFakeProc, ADeadAncestorsReusedPidIsFairGame) {
  auto g = guard();
  add(812, "worker2", 1, kUserFlags, 9'000'000);  // 812 died; the pid went to someone else
  ProcKey reused{812, start_ticks_to_mono_ns(9'000'000)};
  EXPECT_EQ(g.refuse(reused, "worker2"), std::nullopt);
  // faultprobed was reparented meanwhile: refreshing drops the chain above it.
  add(900, "bash", 1, kUserFlags);
  g.refresh_ancestors();
  ASSERT_EQ(g.ancestors().size(), 1u);
  EXPECT_EQ(g.ancestors()[0].pid, 900);
}

TEST_F(SafetyFakeProc, ProtectedCommsExactAndGlob) {
  auto g = guard({"postgres*", "nginx"});
  EXPECT_EQ(g.refuse(key(2001), "postgres"), "protected: comm \"postgres\" matches \"postgres*\" (protected_comms)");
  EXPECT_EQ(g.refuse(key(2002), "nginx"), "protected: comm \"nginx\" (protected_comms)");
  EXPECT_EQ(g.refuse(key(2000), "worker"), std::nullopt);
  // The name the detector saw is stale (exec since): /proc's is checked too.
  EXPECT_EQ(g.refuse(key(2002), "oldname"), "protected: comm \"nginx\" (protected_comms)");
  // The detector saw a protected name, but /proc says it runs bin/worker:
  // a name is not enough.
  EXPECT_EQ(g.refuse(key(2000), "postgres: writer"), std::nullopt);

  g.set_protected({"work?r"});
  EXPECT_EQ(g.refuse(key(2001), "postgres"), std::nullopt);
  EXPECT_TRUE(g.refuse(key(2000), "worker").has_value());
}

// Issue 15 item 8: a process that names itself like a protected one (prctl
// PR_SET_NAME, a copy of its program under that name) is not protected.
TEST_F(SafetyFakeProc, ProtectedNameOnAnotherExecutableIsNotProtected) {
  auto g = guard({"nginx", "postgres*"});
  add(2003, "nginx", 1, kUserFlags);
  exe(2003, root_ / "bin/python3");  // renamed itself
  EXPECT_EQ(g.refuse(key(2003), "nginx"), std::nullopt);
  // A copy of the program under that name, where anyone may write.
  fs::create_directories(root_ / "tmp");
  fs::permissions(root_ / "tmp", fs::perms(01777));
  fs::copy_file(root_ / "bin/nginx", root_ / "tmp/nginx");
  add(2004, "nginx", 1, kUserFlags);
  exe(2004, root_ / "tmp/nginx");
  EXPECT_EQ(g.refuse(key(2004), "nginx"), std::nullopt);
  // A writable program file, even in a safe directory.
  std::ofstream(root_ / "bin/postgres-w") << "#!\n";
  fs::permissions(root_ / "bin/postgres-w", fs::perms(0777));
  add(2005, "postgres-w", 1, kUserFlags);
  exe(2005, root_ / "bin/postgres-w");
  EXPECT_EQ(g.refuse(key(2005), "postgres-w"), std::nullopt);
  // No exe link (unreadable): not protected either.
  add(2006, "nginx", 1, kUserFlags);
  EXPECT_EQ(g.refuse(key(2006), "nginx"), std::nullopt);
  // The real one still is, and a gone process is refused by its name alone.
  EXPECT_TRUE(g.refuse(key(2002), "nginx").has_value());
  EXPECT_EQ(g.refuse_gone(key(2003), "nginx"),
            "protected: comm \"nginx\" (protected_comms; gone, so its executable cannot be checked)");
  // An executable path entry protects whatever name it runs under.
  g.set_protected({(root_ / "bin/py*").string()});
  EXPECT_EQ(g.refuse(key(2003), "nginx"), "protected: executable " + (root_ / "bin/python3").string() + " (protected_comms)");
}

TEST_F(SafetyFakeProc, ReusedAndVanishedPids) {
  auto g = guard();
  ProcKey stale = key(2000);
  stale.start_ns -= 3'000'000'000ull;
  auto why = g.refuse(stale, "worker");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->rfind("pid 2000 is now another process (started at ", 0), 0u) << *why;
  EXPECT_EQ(g.refuse(key(3000), "gone"), "pid 3000 has exited");
  EXPECT_EQ(g.refuse(ProcKey{2000, 0}, "worker"), "no start time for pid 2000 (cannot rule out a reused pid)");
}

TEST_F(SafetyFakeProc, UnreadableSelfProtectsNoAncestorsButStillItself) {
  SafetyGuard g(4444, root_.string());
  EXPECT_TRUE(g.ancestors().empty());
  EXPECT_EQ(g.refuse(ProcKey{4444, 1}, "x"), "protected: faultprobed itself (pid 4444)");
}

// ---- the real /proc ----

ProcKey real_key(pid_t pid) {
  auto s = process_start_ns(pid);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  return ProcKey{uint32_t(pid), s.ok() ? *s : 0};
}

TEST(SafetyGuardRealProc, Pid1KthreaddSelfAndParent) {
  SafetyGuard g(getpid());
  EXPECT_EQ(g.refuse(real_key(1), "init"), "protected: pid 1");
  EXPECT_EQ(g.refuse(real_key(getpid()), "unit_tests"),
            "protected: faultprobed itself (pid " + std::to_string(getpid()) + ")");
  if (getppid() > 1) {
    auto why = g.refuse(real_key(getppid()), "parent");
    ASSERT_TRUE(why.has_value());
    EXPECT_EQ(why->rfind("protected: ancestor of faultprobed (", 0), 0u) << *why;
  }
  if (access("/proc/2/stat", R_OK) == 0) {  // no kthreadd inside a pid namespace
    auto st = read_proc_stat(2);
    ASSERT_TRUE(st.ok());
    if (st->flags & kPfKthread) {
      EXPECT_TRUE(g.refuse(real_key(2), "kthreadd").has_value());
    }
  }
}

TEST(SafetyGuardRealProc, AnOrdinaryChildMayBeActedOn) {
  pid_t pid = fork();
  if (pid == 0) {
    for (;;) pause();
  }
  SafetyGuard g(getpid(), "/proc", {"sshd"});
  ProcKey key = real_key(pid);
  EXPECT_EQ(g.refuse(key, "unit_tests"), std::nullopt);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_EQ(g.refuse(key, "unit_tests"), "pid " + std::to_string(pid) + " has exited");
}

}  // namespace
}  // namespace fp
