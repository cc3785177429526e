// capture_spawn_spec against a fake /proc tree and a real exec'd child, and
// the RespawnRegistry's bound and bookkeeping.
#include "act/respawn.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "act/process.h"

namespace fp {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;  // "a\0b"s keeps the NULs
using Env = std::vector<std::pair<std::string, std::string>>;

std::string real(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? buf : "";
}

class RespawnFakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "fp_respawn_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    root_ = base_ / "proc";
    fs::create_directories(base_ / "work");
    cwd_ = real((base_ / "work").string());
    sleep_ = real("/bin/sleep");
    ASSERT_FALSE(sleep_.empty());
  }
  void TearDown() override { fs::remove_all(base_); }

  // A process with everything a capture reads; tests then break one piece.
  fs::path add(pid_t pid, const std::string& cmdline, uint32_t flags = 0x00400100) {
    fs::path d = root_ / std::to_string(pid);
    fs::create_directories(d);
    std::ofstream(d / "stat") << pid << " (sleep) S 1 " << pid << " " << pid << " 0 -1 " << flags
                              << " 0 0 0 0 0 0 0 0 20 0 1 0 " << ticks(pid) << " 0 0\n";
    std::ofstream(d / "cmdline", std::ios::binary) << cmdline;
    std::ofstream(d / "environ", std::ios::binary) << "PATH=/usr/bin:/bin\0HOME=/root\0A=b=c\0junk\0\0"s;
    std::ofstream(d / "status") << "Name:\tsleep\nUid:\t12345\t0\t0\t0\nGid:\t54321\t0\t0\t0\nFDSize:\t64\n"
                                   "Groups:\t4 27 54321 \n";
    fs::create_symlink(sleep_, d / "exe");
    fs::create_symlink(cwd_, d / "cwd");
    return d;
  }
  static uint64_t ticks(pid_t pid) { return 2'000'000 + uint64_t(pid); }
  // Converted once per pid: the conversion reads the clocks, and the registry looks keys up exactly.
  ProcKey key(pid_t pid) {
    auto it = keys_.find(pid);
    if (it == keys_.end()) it = keys_.emplace(pid, ProcKey{uint32_t(pid), start_ticks_to_mono_ns(ticks(pid))}).first;
    return it->second;
  }
  static void relink(const fs::path& link, const std::string& target) {
    fs::remove(link);
    fs::create_symlink(target, link);
  }

  fs::path base_, root_;
  std::string cwd_, sleep_;
  std::map<pid_t, ProcKey> keys_;
};

TEST_F(RespawnFakeProc, CapturesArgvCwdEnvAndIds) {
  add(4242,
      "sleep\0"
      "30\0"
      "\0"
      "x y\0"s);
  auto spec = capture_spawn_spec(4242, root_.string());
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  // "sleep" was found through PATH: it resolves the same way, to the running binary.
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"/usr/bin/sleep", "30", "", "x y"}));
  EXPECT_EQ(spec->cwd, cwd_);
  EXPECT_EQ(spec->env, (Env{{"PATH", "/usr/bin:/bin"}, {"HOME", "/root"}, {"A", "b=c"}}));
  EXPECT_EQ(spec->uid, 12345u);
  EXPECT_EQ(spec->gid, 54321u);
  EXPECT_EQ(spec->user, "");  // by ids, always
  EXPECT_EQ(spec->groups, (std::vector<gid_t>{4, 27, 54321}));
  EXPECT_EQ(spec->oom_score_adj, 0);  // none in the tree: the kernel's default
  EXPECT_EQ(spec->log_path, "");
}

// The groups /proc shows, never the group database's: root with no
// supplementary groups gets none (getgrouplist would give root's).
TEST_F(RespawnFakeProc, GroupsAndOomScoreComeFromProc) {
  fs::path d = add(4242,
                   "sleep\0"
                   "1\0"s);
  std::ofstream(d / "status") << "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n";
  std::ofstream(d / "oom_score_adj") << "-17\n";
  auto spec = capture_spawn_spec(4242, root_.string());
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->user, "");
  EXPECT_EQ(spec->uid, 0u);
  EXPECT_EQ(spec->groups, std::vector<gid_t>{});
  EXPECT_EQ(spec->oom_score_adj, -17);

  std::ofstream(d / "status") << "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
  auto r = capture_spawn_spec(4242, root_.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no Groups: line"), std::string::npos) << r.error().message;
}

// Above the bound nothing is kept: a truncated environment would start
// something else. The registry counts what it refused.
TEST_F(RespawnFakeProc, OversizeCommandLineOrEnvironmentIsRefusedAndCounted) {
  add(300, "sleep\0"s + std::string(2000, 'x') + "\0"s);
  fs::path d = add(301, "sleep\0"s);
  std::ofstream(d / "environ", std::ios::binary) << "A=" + std::string(2000, 'y') + "\0"s;
  add(302, "sleep\0"s);
  for (pid_t pid : {300, 301}) {
    auto r = capture_spawn_spec(pid, root_.string(), 1024);
    ASSERT_FALSE(r.ok()) << pid;
    EXPECT_EQ(r.error().code, E2BIG);
    EXPECT_NE(r.error().message.find("above 1024 bytes: not kept, it will not be respawned"), std::string::npos)
        << r.error().message;
  }
  EXPECT_TRUE(capture_spawn_spec(302, root_.string(), 1024).ok());

  RespawnRegistry reg(root_.string());
  for (pid_t pid : {300, 301, 302}) reg.remember(key(pid));
  EXPECT_EQ(reg.stats().oversize, 0u);  // 2 KB is under the default 1 MiB
  RespawnRegistry big(root_.string());
  fs::path e = add(303, "sleep\0"s);
  {
    std::ofstream out(e / "environ", std::ios::binary);
    for (int i = 0; i < 40; ++i) out << "V" << i << "=" << std::string(100 << 10, 'z') << '\0';  // 4 MiB
  }
  big.remember(key(303));
  EXPECT_EQ(big.find(key(303)), nullptr);
  EXPECT_EQ(big.stats().oversize, 1u);
  EXPECT_LT(big.stats().bytes, 4096u);  // the reason only
}

TEST_F(RespawnFakeProc, RegistryIsBoundedInBytes) {
  for (pid_t pid = 400; pid < 410; ++pid) {
    fs::path d = add(pid, "sleep\0"s);
    std::ofstream(d / "environ", std::ios::binary) << "A=" + std::string(10000, 'y') + "\0"s;
  }
  RespawnRegistry reg(root_.string(), 1024, 35000);  // room for three
  for (pid_t pid = 400; pid < 410; ++pid) reg.remember(key(pid));
  EXPECT_EQ(reg.size(), 3u);
  EXPECT_LE(reg.stats().bytes, 35000u);
  EXPECT_EQ(reg.stats().evicted, 7u);
  EXPECT_NE(reg.find(key(409)), nullptr);
  EXPECT_EQ(reg.find(key(406)), nullptr);
  reg.forget(key(409));
  EXPECT_EQ(reg.size(), 2u);
  EXPECT_LT(reg.stats().bytes, 25000u);
}

TEST_F(RespawnFakeProc, Argv0RelativeToCwdIsKept) {
  fs::create_symlink(sleep_, fs::path(cwd_) / "prog");
  add(4242,
      "./prog\0"
      "5\0"s);
  auto spec = capture_spawn_spec(4242, root_.string());
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->argv[0], "./prog");
}

TEST_F(RespawnFakeProc, Argv0ThatIsNotTheBinaryBecomesExe) {
  add(1, "./missing\0"s);
  add(2, "/usr/bin/true\0"s);             // another binary
  add(3, "sshd: user [priv]\0"s);         // a rewritten title
  add(4, "no-such-command-anywhere\0"s);  // not in PATH
  for (pid_t pid : {1, 2, 3, 4}) {
    auto spec = capture_spawn_spec(pid, root_.string());
    ASSERT_TRUE(spec.ok()) << spec.error().message;
    EXPECT_EQ(spec->argv[0], sleep_) << "pid " << pid;
  }
}

TEST_F(RespawnFakeProc, AbsoluteArgv0OfTheBinaryIsKept) {
  add(4242,
      "/bin/sleep\0"
      "1\0"s);  // /bin is a symlink on merged-/usr systems: still the same binary
  auto spec = capture_spawn_spec(4242, root_.string());
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->argv[0], "/bin/sleep");
}

TEST_F(RespawnFakeProc, RefusesWhatCannotBeRespawned) {
  relink(add(10, "sleep\0"s) / "exe", sleep_ + " (deleted)");
  relink(add(11, "sleep\0"s) / "cwd", cwd_ + " (deleted)");
  add(12, "");                                  // zombie or kernel thread
  add(13, "sleep\0"s, 0x00208040);              // PF_KTHREAD
  fs::remove(add(14, "sleep\0"s) / "environ");  // unreadable
  fs::remove(add(15, "sleep\0"s) / "exe");
  std::ofstream(add(16, "sleep\0"s) / "status") << "Name:\tx\n";

  auto msg = [&](pid_t pid) {
    auto r = capture_spawn_spec(pid, root_.string());
    return r.ok() ? std::string("ok") : r.error().message;
  };
  EXPECT_EQ(msg(10), "the executable of pid 10 was deleted (" + sleep_ + " (deleted)): cannot respawn it");
  EXPECT_NE(msg(11).find("the working directory of pid 11 was deleted"), std::string::npos) << msg(11);
  EXPECT_EQ(msg(12), "pid 12 has no command line (kernel thread or zombie): nothing to respawn");
  EXPECT_EQ(msg(13), "pid 13 is a kernel thread: nothing to respawn");
  EXPECT_EQ(msg(14).rfind("cannot read the environment of pid 14: cannot open ", 0), 0u) << msg(14);
  EXPECT_EQ(msg(15).rfind("cannot read the executable of pid 15: ", 0), 0u) << msg(15);
  EXPECT_NE(msg(16).find("no Uid:/Gid: line"), std::string::npos) << msg(16);
  // stdout a user chose is opened again as that user (spawn.h): recorded as such.
  fs::path d18 = add(18, "sleep\0"s);
  std::ofstream(base_ / "out.log") << "";
  fs::create_directories(d18 / "fd");
  fs::create_symlink(base_ / "out.log", d18 / "fd" / "1");
  auto s18 = capture_spawn_spec(18, root_.string());
  ASSERT_TRUE(s18.ok()) << s18.error().message;
  EXPECT_EQ(s18->log_path, (base_ / "out.log").string());
  EXPECT_TRUE(s18->log_as_user);
  EXPECT_EQ(msg(17), "pid 17 has exited");
}

TEST_F(RespawnFakeProc, RegistryIsBoundedOldestFirst) {
  for (pid_t pid = 100; pid < 105; ++pid)
    add(pid,
        "sleep\0"
        "1\0"s);
  RespawnRegistry reg(root_.string(), 3);
  for (pid_t pid = 100; pid < 105; ++pid) reg.remember(key(pid));
  EXPECT_EQ(reg.size(), 3u);
  EXPECT_EQ(reg.find(key(100)), nullptr);
  EXPECT_EQ(reg.find(key(101)), nullptr);
  ASSERT_NE(reg.find(key(104)), nullptr);
  EXPECT_EQ(reg.find(key(104))->argv[1], "1");

  reg.remember(key(104));  // known: no second entry
  EXPECT_EQ(reg.size(), 3u);
  reg.forget(key(103));
  EXPECT_EQ(reg.size(), 2u);
  EXPECT_EQ(reg.find(key(103)), nullptr);
  reg.remember(key(100));
  reg.remember(key(101));  // 102 is now the oldest and goes
  EXPECT_EQ(reg.size(), 3u);
  EXPECT_EQ(reg.find(key(102)), nullptr);
  EXPECT_NE(reg.find(key(100)), nullptr);
  EXPECT_NE(reg.find(key(104)), nullptr);
}

TEST_F(RespawnFakeProc, RegistryRemembersFailuresAndSkipsOtherProcesses) {
  add(200, "");
  add(201, "sleep\0"s);
  RespawnRegistry reg(root_.string());
  reg.remember(key(200));
  EXPECT_EQ(reg.find(key(200)), nullptr);
  EXPECT_EQ(reg.failure(key(200)), "pid 200 has no command line (kernel thread or zombie): nothing to respawn");
  // Caught mid-exec: offered again (under its new name), it is captured.
  std::ofstream(root_ / "200" / "cmdline", std::ios::binary) << "sleep\0"s;
  reg.remember(key(200));
  EXPECT_NE(reg.find(key(200)), nullptr);
  EXPECT_EQ(reg.size(), 1u);

  ProcKey other = key(201);
  other.start_ns += 1'000'000'000ull;  // the pid belongs to another process now
  reg.remember(other);
  EXPECT_EQ(reg.size(), 1u);
  EXPECT_EQ(reg.failure(other), std::nullopt);
  reg.remember(key(999));  // gone
  EXPECT_EQ(reg.size(), 1u);
}

// The memory a thousand hostile processes can make the registry hold. Each
// fake process's environ is the real one of a process that carries a 4 MiB
// environment (the kernel allows it with a large stack limit).
long rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

pid_t start_with_environment(size_t bytes) {
  pid_t pid = fork();
  if (pid == 0) {
    rlimit rl{size_t(256) << 20, size_t(256) << 20};  // environ may use a quarter of the stack limit
    if (setrlimit(RLIMIT_STACK, &rl) != 0) _exit(120);
    std::vector<std::string> env;
    for (size_t done = 0, i = 0; done < bytes; ++i) {
      size_t n = std::min<size_t>(100 << 10, bytes - done);  // one string may be 128 KiB
      env.push_back("V" + std::to_string(i) + "=" + std::string(n, 'e'));
      done += env.back().size() + 1;
    }
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    char* argv[] = {const_cast<char*>("/usr/bin/sleep"), const_cast<char*>("60"), nullptr};
    execve(argv[0], argv, envp.data());
    _exit(127);
  }
  return pid;
}

size_t environ_size(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    // Before the exec it is still our environment.
    auto exe = read_link_path("/proc/" + std::to_string(pid) + "/exe");
    auto e = read_small_file("/proc/" + std::to_string(pid) + "/environ", 64u << 20);
    if (exe && *exe == "/usr/bin/sleep" && e && e->size() > 4096) return e->size();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

TEST_F(RespawnFakeProc, ThousandProcessesWithHugeEnvironmentsStayUnderTheBound) {
  constexpr pid_t kFirst = 5000, kCount = 1024;
  pid_t huge = start_with_environment(size_t(4) << 20);
  pid_t large = start_with_environment(900u << 10);
  ASSERT_GT(huge, 0);
  ASSERT_GT(large, 0);
  const size_t huge_bytes = environ_size(huge), large_bytes = environ_size(large);
  EXPECT_GE(huge_bytes, size_t(4) << 20);
  EXPECT_GE(large_bytes, 900u << 10);
  for (pid_t pid = kFirst; pid < kFirst + 2 * kCount; ++pid) {
    fs::path d = add(pid, "sleep\0"s);
    fs::remove(d / "environ");
    fs::create_symlink("/proc/" + std::to_string(pid < kFirst + kCount ? huge : large) + "/environ", d / "environ");
  }

  const long rss0 = rss_kib();
  RespawnRegistry reg(root_.string());
  // 1,024 with 4 MiB each: none kept, each refused and counted.
  for (pid_t pid = kFirst; pid < kFirst + kCount; ++pid) reg.remember(key(pid));
  EXPECT_EQ(reg.stats().oversize, size_t(kCount));
  EXPECT_EQ(reg.stats().entries, size_t(kCount));  // the reasons, so they are not read again
  EXPECT_LT(reg.stats().bytes, size_t(1) << 20);
  // 1,024 with 900 KiB each (under the per-process bound): the byte bound holds.
  for (pid_t pid = kFirst + kCount; pid < kFirst + 2 * kCount; ++pid) reg.remember(key(pid));
  const long rss1 = rss_kib();
  kill(huge, SIGKILL);
  kill(large, SIGKILL);
  waitpid(huge, nullptr, 0);
  waitpid(large, nullptr, 0);

  const auto st = reg.stats();
  EXPECT_LE(st.bytes, RespawnRegistry::kDefaultMaxBytes);
  EXPECT_GE(st.bytes, RespawnRegistry::kDefaultMaxBytes - (1u << 20));  // full, not emptied
  EXPECT_GT(st.evicted, 1000u);
  ASSERT_NE(reg.find(key(kFirst + 2 * kCount - 1)), nullptr);  // the newest is kept whole
  EXPECT_GE(reg.find(key(kFirst + 2 * kCount - 1))->env.size(), 9u);
  // What the process holds grew by the bound, not by the 4 GiB + 900 MiB it was offered.
  // (Not under AddressSanitizer: its allocator keeps up to 256 MiB of freed
  // memory in quarantine, so RSS says nothing about what the registry holds;
  // the byte bound above is checked in every build.)
#if defined(__SANITIZE_ADDRESS__)
  constexpr bool kRssMeansHeld = false;
#else
  constexpr bool kRssMeansHeld = true;
#endif
  if (kRssMeansHeld) {
    EXPECT_LT(rss1 - rss0, long(RespawnRegistry::kDefaultMaxBytes / 1024) + 24 * 1024)
        << "RSS grew " << (rss1 - rss0) << " KiB";
  }
  std::printf("respawn registry: %zu entries, %zu bytes (bound %zu), %llu evicted, %llu refused; RSS +%ld KiB\n",
              st.entries, st.bytes, st.max_bytes, (unsigned long long)st.evicted, (unsigned long long)st.oversize,
              rss1 - rss0);
}

// ---- a real process ----

TEST(CaptureSpawnSpecReal, RoundTripsAnExecdChild) {
  std::string tmpl = (fs::path(::testing::TempDir()) / "fp_respawn_real_XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string dir = real(tmpl);

  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // so the test can kill the shell and its sleep together
    if (chdir(dir.c_str()) != 0) _exit(120);
    // "sh" is a second name of dash: PATH resolution must keep it (like a busybox applet).
    const char* argv[] = {"sh", "-c", "sleep 30; :", "two words", nullptr};
    const char* envp[] = {"FOO=bar baz", "PATH=/usr/bin:/bin", "EMPTY=", nullptr};
    execve("/bin/sh", const_cast<char**>(argv), const_cast<char**>(envp));
    _exit(127);
  }
  // Wait for the exec to show in /proc.
  const std::string self_exe = real("/proc/self/exe");
  std::string exe;
  for (int i = 0; i < 400; ++i) {
    auto link = read_link_path("/proc/" + std::to_string(pid) + "/exe");
    if (link && *link != self_exe) {
      exe = *link;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (exe.empty()) {
    int status = 0;
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "the child did not exec /bin/sh (wait status " << status << ")";
  }

  // exec switches /proc/PID/exe before the new image's argument pages are
  // set up: until then the command line reads empty.
  auto spec = capture_spawn_spec(pid);
  for (int i = 0; i < 200 && !spec.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    spec = capture_spawn_spec(pid);
  }
  kill(-pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  fs::remove_all(dir);
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  ASSERT_EQ(real("/usr/bin/sh"), exe) << "expected /bin/sh to be a link to the shell binary";
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"/usr/bin/sh", "-c", "sleep 30; :", "two words"}));
  EXPECT_EQ(spec->cwd, dir);
  EXPECT_EQ(spec->env, (Env{{"FOO", "bar baz"}, {"PATH", "/usr/bin:/bin"}, {"EMPTY", ""}}));
  EXPECT_EQ(spec->uid, getuid());
  EXPECT_EQ(spec->gid, getgid());
}

}  // namespace
}  // namespace fp
