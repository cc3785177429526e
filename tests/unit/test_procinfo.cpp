#include "procinfo.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace fp {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;  // "a\0b"s keeps the NULs

// ---- parse_cgroup_file ----

TEST(ParseCgroupFile, PureV2) {
  EXPECT_EQ(parse_cgroup_file("0::/system.slice/nginx.service\n"), "/system.slice/nginx.service");
  EXPECT_EQ(parse_cgroup_file("0::/user.slice/user-1000.slice/session-2.scope"),  // no trailing newline
            "/user.slice/user-1000.slice/session-2.scope");
}

TEST(ParseCgroupFile, V2RootIsSlash) { EXPECT_EQ(parse_cgroup_file("0::/\n"), "/"); }

TEST(ParseCgroupFile, EmptyOrMalformedIsSlash) {
  EXPECT_EQ(parse_cgroup_file(""), "/");
  EXPECT_EQ(parse_cgroup_file("\n\n"), "/");
  EXPECT_EQ(parse_cgroup_file("garbage\nno colons here\n7:onlyone\n"), "/");
}

const char* kHybrid =
    "12:pids:/user.slice/user-1000.slice/session-2.scope\n"
    "11:cpuset:/cpuset-group\n"
    "10:memory:/user.slice/user-1000.slice/session-2.scope\n"
    "4:cpu,cpuacct:/user.slice/app\n"
    "1:name=systemd:/user.slice/user-1000.slice/session-2.scope\n"
    "0::/\n";

TEST(ParseCgroupFile, HybridPrefersV1CpuWhenV2IsRoot) {
  EXPECT_EQ(parse_cgroup_file(kHybrid), "/user.slice/app");
}

TEST(ParseCgroupFile, V2PathOtherThanRootWinsOverV1) {
  std::string content = kHybrid;
  content.replace(content.find("0::/\n"), 5, "0::/system.slice/db.service\n");
  EXPECT_EQ(parse_cgroup_file(content), "/system.slice/db.service");
}

TEST(ParseCgroupFile, CpuMustBeAWholeControllerName) {
  // cpuset and cpuacct are not cpu.
  EXPECT_EQ(parse_cgroup_file("5:cpuset:/wrong\n3:cpuacct:/also-wrong\n1:name=systemd:/sd\n"), "/sd");
  EXPECT_EQ(parse_cgroup_file("5:cpuset:/wrong\n3:cpuacct,cpu:/right\n"), "/right");
  EXPECT_EQ(parse_cgroup_file("3:cpu:/alone\n"), "/alone");
}

TEST(ParseCgroupFile, SystemdThenV2RootThenSlash) {
  EXPECT_EQ(parse_cgroup_file("10:memory:/m\n1:name=systemd:/sd.scope\n0::/\n"), "/sd.scope");
  EXPECT_EQ(parse_cgroup_file("10:memory:/m\n0::/\n"), "/");
  EXPECT_EQ(parse_cgroup_file("10:memory:/m\n"), "/");  // v1 without cpu or systemd
}

TEST(ParseCgroupFile, PathMayContainColons) {
  EXPECT_EQ(parse_cgroup_file("0::/system.slice/weird:name.service\n"), "/system.slice/weird:name.service");
}

// ---- join_cmdline ----

TEST(JoinCmdline, NulSeparatedToSpaces) {
  EXPECT_EQ(join_cmdline("/usr/bin/python3\0-m\0http.server\0"s), "/usr/bin/python3 -m http.server");
  EXPECT_EQ(join_cmdline("sleep\0"s "10"s), "sleep 10");  // no trailing NUL
  EXPECT_EQ(join_cmdline("single\0"s), "single");
}

TEST(JoinCmdline, EmptyForKernelThreads) {
  EXPECT_EQ(join_cmdline(""), "");
  EXPECT_EQ(join_cmdline("\0"s), "");
  EXPECT_EQ(join_cmdline("\0\0\0"s), "");
}

TEST(JoinCmdline, EmptyArgumentInTheMiddleKeepsItsPlace) {
  EXPECT_EQ(join_cmdline("printf\0\0x\0"s), "printf  x");
}

TEST(JoinCmdline, SetproctitlePaddingDropped) {
  EXPECT_EQ(join_cmdline("nginx: worker process\0\0\0\0\0\0"s), "nginx: worker process");
}

// ---- ProcInfoCache over a fake /proc ----

class FakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "fp_procinfo_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static void write(const fs::path& p, const std::string& content) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << content;
    ASSERT_TRUE(out.good()) << p;
  }

  // A user process with every file present.
  fs::path add_process(uint32_t pid, const std::string& comm, const std::string& exe, const std::string& cmdline,
                       const std::string& cgroup, uint32_t uid, uint32_t ppid) {
    fs::path dir = root_ / std::to_string(pid);
    fs::create_directories(dir);
    write(dir / "comm", comm + "\n");
    if (!exe.empty()) fs::create_symlink(exe, dir / "exe");  // dangling is fine: readlink only
    write(dir / "cmdline", cmdline);
    write(dir / "cgroup", cgroup);
    std::string p = std::to_string(pid);
    write(dir / "status", "Name:\t" + comm + "\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t" + p +
                              "\nNgid:\t0\nPid:\t" + p + "\nPPid:\t" + std::to_string(ppid) +
                              "\nTracerPid:\t0\nUid:\t" + std::to_string(uid) +
                              "\t2000\t2001\t2002\nGid:\t5\t5\t5\t5\n");
    return dir;
  }

  fs::path root_;
};

TEST_F(FakeProc, ReadsEveryField) {
  add_process(1234, "nginx", "/usr/sbin/nginx", "nginx: master process /usr/sbin/nginx\0-g\0daemon off;\0"s,
              "0::/system.slice/nginx.service\n", 33, 1);
  ProcInfoCache cache(root_.string());
  const ProcInfo& info = cache.get({1234, 99});
  EXPECT_TRUE(info.found);
  EXPECT_EQ(info.comm, "nginx");
  EXPECT_EQ(info.exe, "/usr/sbin/nginx");
  EXPECT_EQ(info.cmdline, "nginx: master process /usr/sbin/nginx -g daemon off;");
  EXPECT_EQ(info.cgroup, "/system.slice/nginx.service");
  EXPECT_EQ(info.uid, 33u);  // the real uid, not effective (2000)
  EXPECT_EQ(info.ppid, 1u);
  EXPECT_EQ(cache.size(), 1u);
}

TEST_F(FakeProc, KernelThreadHasNoExeOrCmdline) {
  add_process(2, "kthreadd", "", "", "0::/\n", 0, 0);
  ProcInfoCache cache(root_.string());
  const ProcInfo& info = cache.get({2, 1});
  EXPECT_TRUE(info.found);
  EXPECT_EQ(info.comm, "kthreadd");
  EXPECT_EQ(info.exe, "");
  EXPECT_EQ(info.cmdline, "");
  EXPECT_EQ(info.cgroup, "/");
  EXPECT_EQ(info.uid, 0u);
}

TEST_F(FakeProc, MissingProcessIsNotFoundButCached) {
  ProcInfoCache cache(root_.string());
  const ProcInfo& info = cache.get({4321, 7});
  EXPECT_FALSE(info.found);
  EXPECT_EQ(info.comm, "");
  EXPECT_EQ(info.cgroup, "");
  EXPECT_EQ(cache.size(), 1u);
  // Appearing later does not change the cached answer for that key.
  add_process(4321, "late", "/bin/late", "late\0"s, "0::/x\n", 0, 1);
  EXPECT_FALSE(cache.get({4321, 7}).found);
  EXPECT_EQ(cache.size(), 1u);
}

TEST_F(FakeProc, MissingFilesGiveEmptyFields) {
  fs::create_directories(root_ / "77");
  ProcInfoCache cache(root_.string());
  const ProcInfo& info = cache.get({77, 1});
  EXPECT_TRUE(info.found);
  EXPECT_EQ(info.comm, "");
  EXPECT_EQ(info.exe, "");
  EXPECT_EQ(info.cmdline, "");
  EXPECT_EQ(info.cgroup, "/");
  EXPECT_EQ(info.uid, 0u);
  EXPECT_EQ(info.ppid, 0u);
}

TEST_F(FakeProc, MalformedStatusLeavesZeros) {
  fs::path dir = add_process(88, "odd", "/bin/odd", "odd\0"s, "0::/\n", 5, 6);
  write(dir / "status", "Name:\todd\nPPid:\tnot-a-number\nUid:\n");
  ProcInfoCache cache(root_.string());
  const ProcInfo& info = cache.get({88, 1});
  EXPECT_TRUE(info.found);
  EXPECT_EQ(info.uid, 0u);
  EXPECT_EQ(info.ppid, 0u);
}

// An exited process not yet reaped: the kernel moved it to the root cgroup
// and dropped its exe before it became a zombie, so none of that is its own.
TEST_F(FakeProc, AZombieIsNotFound) {
  fs::path dir = add_process(91, "bash", "", "", "4:cpu,cpuacct:/\n0::/\n", 0, 90);
  write(dir / "status", "Name:\tbash\nUmask:\t0022\nState:\tZ (zombie)\nTgid:\t91\nPPid:\t90\nUid:\t0\t0\t0\t0\n");
  fs::path dead = add_process(92, "bash", "", "", "0::/\n", 0, 90);
  write(dead / "status", "Name:\tbash\nState:\tX (dead)\nPPid:\t90\n");
  ProcInfoCache cache(root_.string());
  EXPECT_FALSE(cache.get({91, 1}).found);
  EXPECT_EQ(cache.get({91, 1}).cgroup, "");
  EXPECT_FALSE(cache.read(92).found);
}

TEST_F(FakeProc, SecondGetIsServedFromCache) {
  fs::path dir = add_process(500, "before", "/bin/before", "before\0"s, "0::/a\n", 1, 1);
  ProcInfoCache cache(root_.string());
  EXPECT_EQ(cache.get({500, 10}).comm, "before");
  write(dir / "comm", "after\n");
  EXPECT_EQ(cache.get({500, 10}).comm, "before");
  EXPECT_EQ(cache.size(), 1u);
}

TEST_F(FakeProc, ReusedPidIsADifferentKey) {
  fs::path dir = add_process(600, "first", "/bin/first", "first\0"s, "0::/a\n", 1, 1);
  ProcInfoCache cache(root_.string());
  EXPECT_EQ(cache.get({600, 10}).comm, "first");
  write(dir / "comm", "second\n");
  EXPECT_EQ(cache.get({600, 20}).comm, "second");  // same pid, new start time: read again
  EXPECT_EQ(cache.get({600, 10}).comm, "first");
  EXPECT_EQ(cache.size(), 2u);
}

TEST_F(FakeProc, PruneDropsEntriesNotAskedForSinceThePreviousPrune) {
  fs::path dir = add_process(700, "a", "/bin/a", "a\0"s, "0::/\n", 1, 1);
  add_process(701, "b", "/bin/b", "b\0"s, "0::/\n", 1, 1);
  ProcInfoCache cache(root_.string());
  cache.get({700, 1});
  cache.get({701, 1});
  cache.prune();  // both asked for since construction
  EXPECT_EQ(cache.size(), 2u);

  cache.get({700, 1});
  cache.prune();  // 701 not asked for this cycle
  EXPECT_EQ(cache.size(), 1u);

  cache.prune();  // nothing asked for
  EXPECT_EQ(cache.size(), 0u);

  // A pruned key is read again.
  write(dir / "comm", "a2\n");
  EXPECT_EQ(cache.get({700, 1}).comm, "a2");
  EXPECT_EQ(cache.size(), 1u);
}

// Issue 15 item 7: what a process chooses (a 1 MiB command line, thousands
// of processes with long paths) cannot grow the cache past its byte bound.
TEST_F(FakeProc, BoundedInBytesWithCountedDrops) {
  const std::string huge(1 << 20, 'a');
  for (uint32_t pid = 1; pid <= 20; ++pid)
    add_process(pid, "p" + std::to_string(pid), "/bin/p", huge + "\0x\0"s, "0::/u\n", 1, 1);
  ProcInfoCacheOptions opts;
  opts.max_cmdline_bytes = 100;
  ProcInfo probe_entry;
  probe_entry.comm = "p10";
  probe_entry.exe = "/bin/p";
  probe_entry.cmdline = std::string(100, 'a');
  probe_entry.cgroup = "/u";
  opts.max_bytes = 5 * ProcInfoCache::entry_bytes(probe_entry) + 10;
  ProcInfoCache cache(root_.string(), opts);
  for (uint32_t pid = 1; pid <= 20; ++pid) {
    const ProcInfo& info = cache.get({pid, 1});
    EXPECT_EQ(info.cmdline, std::string(100, 'a'));
    EXPECT_TRUE(info.cmdline_truncated);
  }
  auto st = cache.stats();
  EXPECT_LE(st.bytes, opts.max_bytes);
  EXPECT_EQ(st.entries, cache.size());
  EXPECT_LE(st.entries, 5u);
  EXPECT_GE(st.entries, 4u);
  EXPECT_EQ(st.evicted, 20u - st.entries);
  EXPECT_EQ(st.cmdline_truncated, 20u);
  // The newest stay; an evicted one is read again when asked for.
  EXPECT_EQ(cache.get({20, 1}).comm, "p20");
  EXPECT_EQ(cache.stats().evicted, st.evicted);
  EXPECT_EQ(cache.get({1, 1}).comm, "p1");
  EXPECT_EQ(cache.stats().evicted, st.evicted + 1);
  // A prune gives back the bytes of what was dropped.
  cache.prune();
  cache.prune();
  EXPECT_EQ(cache.stats().bytes, 0u);
  EXPECT_EQ(cache.size(), 0u);
  // No command line read at all when the reader wants none.
  ProcInfoCache none(root_.string(), ProcInfoCacheOptions{0, size_t(1) << 20});
  EXPECT_EQ(none.get({3, 1}).cmdline, "");
  EXPECT_FALSE(none.get({3, 1}).cmdline_truncated);
}

// Under the byte bound nothing is evicted: a reference outlives other insertions.
TEST_F(FakeProc, ReferencesSurviveOtherInsertions) {
  add_process(800, "keep", "/bin/keep", "keep\0"s, "0::/\n", 1, 1);
  ProcInfoCache cache(root_.string());
  const ProcInfo& first = cache.get({800, 1});
  for (uint32_t pid = 1; pid < 200; ++pid) cache.get({pid, 1});
  EXPECT_EQ(first.comm, "keep");
}

TEST(ProcInfoCacheRealProc, ReadsThisProcess) {
  ProcInfoCache cache;  // the real /proc
  const ProcInfo& info = cache.get({static_cast<uint32_t>(::getpid()), 1});
  ASSERT_TRUE(info.found);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(info.exe, exe.string());
  EXPECT_FALSE(info.comm.empty());
  EXPECT_NE(info.cmdline.find(exe.filename().string()), std::string::npos) << info.cmdline;
  EXPECT_EQ(info.uid, ::getuid());
  EXPECT_EQ(info.ppid, static_cast<uint32_t>(::getppid()));
  EXPECT_EQ(info.cgroup.front(), '/');
}

// A real child that exited and was not reaped yet.
TEST(ProcInfoCacheRealProc, AnUnreapedChildIsNotFound) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  // Its status says Z once it exited: wait for that state, not a time.
  bool zombie = false;
  for (int i = 0; i < 5000 && !zombie; ++i) {
    std::ifstream st("/proc/" + std::to_string(child) + "/stat");
    std::string line;
    std::getline(st, line);
    const size_t close = line.rfind(')');
    zombie = close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
    if (!zombie) ::usleep(1000);
  }
  ProcInfoCache cache;
  const ProcInfo info = cache.read(static_cast<uint32_t>(child));
  ::waitpid(child, nullptr, 0);
  ASSERT_TRUE(zombie) << "the child never showed as a zombie";
  EXPECT_FALSE(info.found) << info.cgroup;
}

}  // namespace
}  // namespace fp
