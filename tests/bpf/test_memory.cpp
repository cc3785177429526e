// Memory family: page faults and RSS.
#include <sys/mman.h>

#include <cstring>

#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

TEST(Memory, Touching64MiBFaultsAndShowsInRss) {
  probe();
  reset_events();
  constexpr size_t kSize = 64u << 20;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  Child c([&] {
    close(ready[0]);
    void* m = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 10;
    madvise(m, kSize, MADV_NOHUGEPAGE);  // one fault per 4 KiB page, whatever THP says
    for (size_t off = 0; off < kSize; off += 4096) static_cast<char*>(m)[off] = 1;
    char c = 'r';
    if (write(ready[1], &c, 1) != 1) return 11;
    pause();  // stay alive until killed
    return 0;
  });
  close(ready[1]);
  uint32_t pid = uint32_t(c.pid());
  c.release();
  char r;
  ASSERT_EQ(read(ready[0], &r, 1), 1) << "child did not finish touching its memory";
  close(ready[0]);
  long page = sysconf(_SC_PAGESIZE);
  std::optional<fp_proc> slot;
  bool ok = wait_until(
      [&] {
        slot = live_slot(pid);
        return slot && rss_bytes_of(*slot, uint64_t(page)) >= kSize;
      },
      2s);
  ASSERT_TRUE(slot) << "no live slot for the child";
  EXPECT_TRUE(ok) << "rss_bytes " << rss_bytes_of(*slot, uint64_t(page)) << "; " << probe_health();
  EXPECT_GE(slot->page_faults, 16000u) << probe_health();
  c.kill(SIGKILL);
  c.wait();
}
