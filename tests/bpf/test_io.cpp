// Block IO family: requests, bytes and latency charged to the submitting process.
#include <fcntl.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

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

namespace {

// 8 threads reading 4 KiB blocks with O_DIRECT, none adjacent to another (no
// merging): 2,048 requests, up to 8 in flight at once.
constexpr int kReaders = 8, kReadsEach = 256;
constexpr size_t kBlock = 4096;

int concurrent_direct_reads(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECT);
  if (fd < 0) return 10;
  std::atomic<int> failed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kReaders; t++)
    ts.emplace_back([&, t] {
      void* buf = nullptr;
      if (posix_memalign(&buf, kBlock, kBlock)) {
        failed++;
        return;
      }
      for (int i = 0; i < kReadsEach; i++) {
        off_t block = off_t(i) * 2 * kReaders + off_t(t) * 2;
        if (pread(fd, buf, kBlock, block * off_t(kBlock)) != ssize_t(kBlock)) failed++;
      }
      free(buf);
    });
  for (auto& t : ts) t.join();
  close(fd);
  return failed ? 11 : 0;
}

// Requests in flight go to a one-entry array, so all but one of those in
// flight at a time collide and go to the hash: every request is still
// counted once, and nothing stays behind in either.
void collisions_go_to_the_hash(bool raw_tp) {
  std::string dir = io_dir();
  ASSERT_TRUE(on_block_device(dir)) << dir << " is not on a block device; set FP_TEST_IO_DIR";
  std::string path = dir + "/fp_inflight_collide_" + std::to_string(getpid());
  const size_t size = size_t(kReadsEach) * 2 * kReaders * kBlock;
  {
    int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    std::string chunk(1 << 20, 'c');
    for (size_t done = 0; done < size; done += chunk.size())
      ASSERT_EQ(write(fd, chunk.data(), chunk.size()), ssize_t(chunk.size()));
    fsync(fd);
    close(fd);
  }
  ProbeOptions opts;
  opts.max_procs = 4096;
  opts.force_raw_tp = raw_tp;
  opts.inflight_array_entries = 1;
  auto own = Probe::start(opts);
  ASSERT_TRUE(own) << own.error().message;
  Probe& p = **own;
  const DropCounts drops_before = p.drops();
  Child c([&] { return concurrent_direct_reads(path); });
  c.release();
  int st = c.wait();
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) std::filesystem::remove(path);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "reader failed: " << st;
  EventBatch batch;
  std::optional<fp_proc> ex;
  ASSERT_TRUE(wait_until(
      [&] {
        p.drain(batch);
        for (const auto& e : batch.exits)
          if (e.final.tgid == uint32_t(c.pid())) ex = e.final;
        return ex.has_value();
      },
      5s))
      << "no exit record";
  // A lost end shows when its request's memory starts again: a second
  // reader's 2,048 requests cycle through every tag of the queue.
  Child again([&] { return concurrent_direct_reads(path); });
  again.release();
  ASSERT_EQ(again.wait(), 0);
  std::filesystem::remove(path);
  constexpr uint64_t kReqs = uint64_t(kReaders) * kReadsEach;
  const DropCounts drops_after = p.drops();
  auto moved = [&](fp_drop_reason r) { return drops_after[r] - drops_before[r]; };
  // Every request is counted, but for completions the probe's program did
  // not run for: the kernel skipped it (nested in itself on one CPU), or it
  // was never called (other tools attaching to the same tracepoints
  // meanwhile). Both are counted, host-wide: the first from the programs'
  // recursion_misses, the second when the request's memory starts again.
  const uint64_t lost = moved(FP_DROP_HOOK_NESTED) + moved(FP_DROP_IO_END_UNSEEN);
  EXPECT_LE(ex->io_read_reqs, kReqs);
  EXPECT_GE(ex->io_read_reqs + lost, kReqs)
      << "hook runs skipped: " << moved(FP_DROP_HOOK_NESTED) << ", ends unseen: " << moved(FP_DROP_IO_END_UNSEEN)
      << "; completions never seen starting (host-wide): " << moved(FP_DROP_IO_UNSEEN)
      << ", orphaned: " << moved(FP_DROP_IO_ORPHANED) << ", hash full: " << moved(FP_DROP_INFLIGHT_IO_FULL);
  EXPECT_EQ(ex->io_submit_read_bytes, ex->io_read_reqs * kBlock);
  uint64_t hist = 0;
  for (auto v : ex->io_lat_hist) hist += v;
  EXPECT_EQ(hist, ex->io_read_reqs);
  EXPECT_GT(ex->io_lat_ns, 0u);
  EXPECT_LT(ex->io_lat_max_ns, uint64_t(60e9)) << "a latency from a start that was not this request's";
  // Nothing left behind (other IO on the host may be in flight for a moment).
  Probe::InflightCounts left;
  EXPECT_TRUE(wait_until(
      [&] {
        left = p.inflight_io_entries();
        return left.array == 0 && left.hash == 0;
      },
      10s))
      << left.array << " in the array, " << left.hash << " in the hash";
}

}  // namespace

TEST(BlockIo, RequestsThatCollideInTheInflightArrayAreCountedThroughTheHash) {
  collisions_go_to_the_hash(false);
}

TEST(BlockIo, RawTracepointRequestsThatCollideAreCountedThroughTheHash) { collisions_go_to_the_hash(true); }
