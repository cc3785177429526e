// OOM: a child over its memory cgroup's limit is marked as the OOM victim;
// a victim the kernel names by a thread that is not its leader is reported
// as its process.
#include <sys/mman.h>
#include <sys/syscall.h>

#include <pthread.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

TEST(Oom, ChildOverItsCgroupLimitIsTheVictim) {
  probe();
  reset_events();
  TestCgroup cg("memory", "fp_test_oom_" + std::to_string(getpid()));
  ASSERT_TRUE(cg.set("memory.max", "memory.limit_in_bytes", std::to_string(32u << 20)))
      << "cannot set up a memory cgroup at " << cg.where();
  Child c([] {
    constexpr size_t kSize = 256u << 20;
    char* m = static_cast<char*>(
        mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (m == MAP_FAILED) return 10;
    for (size_t off = 0; off < kSize; off += 4096) m[off] = 1;
    return 0;  // not reached: the OOM killer takes it first
  });
  ASSERT_TRUE(cg.add(c.pid()));
  uint32_t pid = uint32_t(c.pid());
  c.release();
  int status = c.wait();
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child was not killed (exit " << WEXITSTATUS(status) << ")";
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  bool marked = wait_until(
      [&] {
        for (const auto& o : events().ooms)
          if (o.victim.tgid == pid) return true;
        return false;
      },
      3s);
  EXPECT_TRUE(marked) << "no oom_victim event for the child";
  auto ex = wait_exit(pid, 3s);
  ASSERT_TRUE(ex);
  EXPECT_GE(ex->final.oom_victim, 1u);
  EXPECT_EQ(decode_exit_code(ex->exit_code).signal, SIGKILL);
  for (const auto& o : events().ooms) {
    if (o.victim.tgid == pid) {
      EXPECT_EQ(o.victim.start_ns, ex->final.start_ns);
      EXPECT_GT(o.anon_rss_kb + o.total_vm_kb, 0u);
    }
  }
}

namespace {

// Touches `mib` MiB of fresh anonymous memory, page by page; `hold`: then waits forever.
void* touch(size_t mib, bool hold) {
  const size_t size = mib << 20;
  char* m = static_cast<char*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (m != MAP_FAILED)
    for (size_t off = 0; off < size; off += 4096) m[off] = 1;
  while (hold) pause();
  return nullptr;
}

// The child's body: a second thread does the work while the main thread
// exits by itself (SYS_exit ends one thread). The leader then has no mm, so
// the OOM killer marks the worker thread, whose id is not the process's.
int thread_only(void* (*work)(void*)) {
  pthread_t t;
  if (pthread_create(&t, nullptr, work, nullptr) != 0) return 10;
  syscall(SYS_exit, 0);
  return 0;
}

void* alloc_256(void*) { return touch(256, false); }

// Set (in memory shared across fork) once the holder's 24 MiB are in.
std::atomic<bool>* g_held = nullptr;
void* hold_24(void*) {
  touch(24, false);
  g_held->store(true);
  return touch(0, true);
}

// The first mark of the process (a victim that allocates while it dies is
// marked again, by itself: then it is `current`).
std::optional<OomRecord> oom_of(uint32_t tgid) {
  std::optional<OomRecord> found;
  wait_until(
      [&] {
        for (const auto& o : events().ooms)
          if (o.victim.tgid == tgid && !found) found = o;
        return found.has_value();
      },
      3s);
  return found;
}

}  // namespace

// The allocating thread itself is the victim: the kernel marks that thread.
TEST(Oom, NonMainThreadThatAllocatesIsReportedAsItsProcess) {
  probe();
  reset_events();
  TestCgroup cg("memory", "fp_test_oom_thread_" + std::to_string(getpid()));
  ASSERT_TRUE(cg.set("memory.max", "memory.limit_in_bytes", std::to_string(32u << 20)))
      << "cannot set up a memory cgroup at " << cg.where();
  Child c([] { return thread_only(alloc_256); });
  ASSERT_TRUE(cg.add(c.pid()));
  const uint32_t pid = uint32_t(c.pid());
  c.release();
  int status = c.wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  auto o = oom_of(pid);
  ASSERT_TRUE(o) << "no oom event naming the process " << pid;
  EXPECT_NE(o->tid, pid) << "the kernel marked the leader: the test did not exercise a thread";
  EXPECT_NE(o->tid, 0u);
  EXPECT_NE(o->tgid_from, uint32_t(FP_OOM_TGID_UNRESOLVED));
  auto ex = wait_exit(pid, 3s);
  ASSERT_TRUE(ex);
  EXPECT_EQ(o->victim.start_ns, ex->final.start_ns);
  EXPECT_GE(ex->final.oom_victim, 1u) << "the process's slot carries the mark";
}

// The victim is not the allocator: a bigger process of the same cgroup whose
// only thread is not its leader. Neither current nor its id name it; the
// SIGKILL the killer sent it does.
TEST(Oom, VictimThreadOfAnotherProcessIsReportedAsItsProcess) {
  probe();
  reset_events();
  TestCgroup cg("memory", "fp_test_oom_other_" + std::to_string(getpid()));
  ASSERT_TRUE(cg.set("memory.max", "memory.limit_in_bytes", std::to_string(32u << 20)))
      << "cannot set up a memory cgroup at " << cg.where();
  void* shm = mmap(nullptr, sizeof(std::atomic<bool>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shm, MAP_FAILED);
  g_held = new (shm) std::atomic<bool>(false);
  Child big([] { return thread_only(hold_24); });
  ASSERT_TRUE(cg.add(big.pid()));
  big.release();
  const uint32_t big_pid = uint32_t(big.pid());
  // its 24 MiB are in (and it allocates no more) before the allocator starts
  ASSERT_TRUE(wait_until([&] { return g_held->load(); }, 5s)) << "the holder did not fill its memory";
  Child small([] {
    touch(12, false);
    touch(12, false);
    return 0;
  });
  ASSERT_TRUE(cg.add(small.pid()));
  small.release();
  int status = big.wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the holder was not killed: " << status;
  auto o = oom_of(big_pid);
  ASSERT_TRUE(o) << "no oom event naming the holder " << big_pid;
  EXPECT_NE(o->tid, big_pid);
  EXPECT_EQ(o->tgid_from, uint32_t(FP_OOM_TGID_SIGKILL)) << oom_tgid_from_name(o->tgid_from);
  small.kill(SIGKILL);
  small.wait();
  munmap(shm, sizeof(std::atomic<bool>));
}
