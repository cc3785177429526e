// Block IO family: requests, bytes and latency charged to the submitting process.
#include <fcntl.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

TEST(BlockIo, DirectWriteIsChargedToTheWriter) {
  probe();
  reset_events();
  std::string dir = io_dir();
  ASSERT_TRUE(on_block_device(dir)) << dir << " is not on a block device; set FP_TEST_IO_DIR";
  std::string path = dir + "/fp_direct_io_test.bin";
  constexpr size_t kChunk = 1 << 20, kTotal = 32u << 20;
  Child c([&] {
    int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0600);
    if (fd < 0) return 10;
    void* buf = nullptr;
    if (posix_memalign(&buf, 4096, kChunk)) return 11;
    std::memset(buf, 0xab, kChunk);
    for (size_t done = 0; done < kTotal; done += kChunk)
      if (write(fd, buf, kChunk) != ssize_t(kChunk)) return 12;
    fsync(fd);
    close(fd);
    return 0;
  });
  c.release();
  int st = c.wait();
  std::filesystem::remove(path);
  ASSERT_TRUE(WIFEXITED(st)) << "writer died";
  ASSERT_EQ(WEXITSTATUS(st), 0) << "writer failed (10 open, 11 alloc, 12 write)";
  auto ex = wait_exit(uint32_t(c.pid()), 3s);
  ASSERT_TRUE(ex);
  // O_DIRECT: it caused the bytes (task IO accounting) and submitted them
  EXPECT_GE(ex->final.io_write_bytes, uint64_t(kTotal));
  // ... itself, nearly always. Once (2026-12-07, a quiet host, 1 run in ~15)
  // the writer was charged 29 of its 32 MiB as submitted; the rest is
  // accounted below if a kernel thread submitted it (suspected: ext4 falling
  // back to buffered IO for part of the range and a flusher writing it back;
  // not proven). What must hold: the writer submitted most of it, and
  // everything it wrote was submitted by it or by a kernel thread.
  EXPECT_GE(ex->final.io_submit_write_bytes, uint64_t(kTotal) / 2);
  uint64_t kthread_submitted = 0;
  for (const auto& p : probe().read().procs)
    if (p.flags & FP_PROC_KTHREAD) kthread_submitted += p.io_submit_write_bytes;
  EXPECT_GE(ex->final.io_submit_write_bytes + kthread_submitted, uint64_t(kTotal))
      << "writer " << ex->final.io_submit_write_bytes << ", kernel threads " << kthread_submitted;
  EXPECT_GE(ex->final.io_write_reqs, 32u / 2);  // 1 MiB writes may be split, never merged below 512K
  EXPECT_GT(ex->final.io_lat_ns, 0u);
  EXPECT_GT(ex->final.io_lat_max_ns, 0u);
  EXPECT_EQ(ex->final.io_errors, 0u);
  uint64_t hist = 0;
  for (auto v : ex->final.io_lat_hist) hist += v;
  EXPECT_EQ(hist, ex->final.io_write_reqs + ex->final.io_read_reqs);
  // and not on whoever completed it: no kernel thread got these bytes
  Sample s = probe().read();
  for (const auto& p : s.procs) {
    if (p.flags & FP_PROC_KTHREAD) {
      EXPECT_LT(p.io_write_bytes, uint64_t(kTotal)) << p.comm;
    }
  }
}

TEST(BlockIo, DirectReadIsChargedToTheReader) {
  probe();
  reset_events();
  std::string dir = io_dir();
  ASSERT_TRUE(on_block_device(dir));
  std::string path = dir + "/fp_direct_read_test.bin";
  constexpr size_t kSize = 8u << 20;
  {
    int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    std::string block(kSize, 'x');
    ASSERT_EQ(write(fd, block.data(), block.size()), ssize_t(block.size()));
    fsync(fd);
    close(fd);
  }
  Child c([&] {
    int fd = open(path.c_str(), O_RDONLY | O_DIRECT);
    if (fd < 0) return 10;
    void* buf = nullptr;
    if (posix_memalign(&buf, 4096, 1 << 20)) return 11;
    size_t total = 0;
    for (;;) {
      ssize_t n = read(fd, buf, 1 << 20);
      if (n <= 0) break;
      total += size_t(n);
    }
    close(fd);
    return total == kSize ? 0 : 12;
  });
  c.release();
  int st = c.wait();
  std::filesystem::remove(path);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  auto ex = wait_exit(uint32_t(c.pid()), 3s);
  ASSERT_TRUE(ex);
  EXPECT_GE(ex->final.io_read_bytes, uint64_t(kSize));
  EXPECT_GE(ex->final.io_submit_read_bytes, uint64_t(kSize));
  EXPECT_GT(ex->final.io_read_reqs, 0u);
}
