// OOM: a child over its memory cgroup's limit is marked as the OOM victim.
#include <sys/mman.h>

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
