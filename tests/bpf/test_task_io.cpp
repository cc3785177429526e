// Task IO accounting: the bytes a process caused, charged to it as
// /proc/PID/io charges them (a buffered writer's own, though the flusher
// submits them), and the time dirty-page throttling held a writer.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../time_scale.h"
#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;
namespace fs = std::filesystem;

namespace {

struct ProcIo {
  uint64_t read_bytes = 0, write_bytes = 0, cancelled_write_bytes = 0;
};

std::optional<ProcIo> proc_io(uint32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  uint64_t v = 0;
  ProcIo io;
  bool any = false;
  while (in >> key >> v) {
    if (key == "read_bytes:") io.read_bytes = v;
    if (key == "write_bytes:") io.write_bytes = v;
    if (key == "cancelled_write_bytes:") io.cancelled_write_bytes = v;
    any = true;
  }
  return any ? std::optional<ProcIo>(io) : std::nullopt;
}

// The probe's io_write_bytes and /proc/PID/io's write_bytes, read one right after the other.
struct WriteReading {
  std::chrono::steady_clock::time_point at;
  uint64_t probe = 0, proc = 0;
};

// Whether every thread of `pid` is stopped (or gone): each has switched out,
// so the probe holds the same counters /proc/PID/io shows.
bool all_threads_stopped(uint32_t pid) {
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(t.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;  // the thread is gone
    auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size()) continue;
    char st = line[close + 2];
    if (st != 'T' && st != 't' && st != 'Z' && st != 'X') return false;
  }
  return true;
}

// Both counters read while the writer is stopped (SIGSTOP, every thread
// switched out), so neither side runs ahead of the other between the reads.
std::optional<WriteReading> read_both(uint32_t pid) {
  if (kill(pid_t(pid), SIGSTOP) != 0) return std::nullopt;
  wait_until([&] { return all_threads_stopped(pid); }, 5s, 1ms);
  // /proc shows 'T' from set_special_state(), before the stopping thread's
  // schedule() (and the switch-out that charges its IO) has run: the full
  // run of 2026-12-07 read the slot 2 MiB (one dd block) behind in that
  // window. Stopped, /proc/PID/io no longer moves: wait for the charge to
  // reach it (bounded; a probe that never catches up still fails below).
  auto io = proc_io(pid);
  auto slot = live_slot(pid);
  wait_until(
      [&] {
        io = proc_io(pid);
        slot = live_slot(pid);
        return slot && io && slot->io_write_bytes >= io->write_bytes;
      },
      200ms, 1ms);
  kill(pid_t(pid), SIGCONT);
  if (!slot || !io) return std::nullopt;
  return WriteReading{std::chrono::steady_clock::now(), slot->io_write_bytes, io->write_bytes};
}

// Over consecutive intervals of at least 1 s while `pid` writes, the probe's
// io_write_bytes must grow as /proc/PID/io's write_bytes does, within 5 %.
// Intervals that moved less than `min_bytes` are not judged (5 % of nothing
// is noise). Returns the intervals judged; stops when the process exits or
// `enough` were judged.
int compare_while_writing(uint32_t pid, uint64_t min_bytes, int enough = INT_MAX) {
  std::optional<WriteReading> a;
  // from its first byte on: a baseline of nothing would judge its start-up too
  wait_until(
      [&] {
        a = read_both(pid);
        return a && a->proc > 0;
      },
      10s, 10ms);
  if (!a) return 0;
  int judged = 0;
  double worst = 0;  // the largest relative difference, for the test's record
  while (judged < enough) {
    std::this_thread::sleep_until(a->at + 1s);
    auto b = read_both(pid);
    if (!b || proc_state(pid) == 'Z') break;  // it finished: the exit record is compared instead
    const uint64_t proc = b->proc - a->proc, probe = b->probe - a->probe;
    if (proc >= min_bytes) {
      EXPECT_NEAR(double(probe), double(proc), 0.05 * double(proc))
          << "over " << std::chrono::duration<double>(b->at - a->at).count() << " s";
      worst = std::max(worst, std::abs(double(probe) - double(proc)) / double(proc));
      judged++;
    }
    a = b;
  }
  ::testing::Test::RecordProperty("intervals_judged", judged);
  ::testing::Test::RecordProperty("worst_interval_error_pct", std::to_string(100 * worst));
  return judged;
}

// Waits, without reaping, until `pid` has exited: its /proc/PID/io then holds
// its final counters (the dead threads' folded into signal->ioac).
bool wait_zombie(pid_t pid, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        siginfo_t si{};
        return waitid(P_PID, id_t(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
      },
      timeout, 10ms);
}

// The exit record's totals against the zombie's /proc/PID/io. The process
// was born under the probe, so both count from zero.
void compare_at_exit(pid_t pid) {
  ASSERT_TRUE(wait_zombie(pid, 60s)) << "the writer did not finish";
  auto io = proc_io(uint32_t(pid));
  ASSERT_TRUE(io) << "no /proc/" << pid << "/io";
  auto ex = wait_exit(uint32_t(pid), 3s);
  ASSERT_TRUE(ex) << "no exit record";
  EXPECT_NEAR(double(ex->final.io_write_bytes), double(io->write_bytes), 0.05 * double(io->write_bytes));
  EXPECT_NEAR(double(ex->final.io_read_bytes), double(io->read_bytes), 0.05 * double(io->read_bytes) + 65536);
  EXPECT_EQ(ex->final.io_cancelled_write_bytes, io->cancelled_write_bytes);
}

// Writes `chunks` of `chunk` bytes through the page cache, one every `gap`,
// then truncates what is still dirty (cancelled_write_bytes). Never fsyncs:
// the flusher writes it back, whenever it does.
int paced_writer(const std::string& path, size_t chunk, int chunks, std::chrono::milliseconds gap) {
  int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0) return 10;
  std::string buf(chunk, 'w');
  for (int i = 0; i < chunks; i++) {
    if (write(fd, buf.data(), buf.size()) != ssize_t(buf.size())) return 11;
    std::this_thread::sleep_for(gap);
  }
  if (ftruncate(fd, 0) != 0) return 12;
  close(fd);
  return 0;
}

// A file of the IO directory, removed at the end.
struct ScratchFile {
  explicit ScratchFile(const std::string& name) : path(io_dir() + "/" + name + "_" + std::to_string(getpid())) {}
  ~ScratchFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  std::string path;
};

}  // namespace

TEST(TaskIo, BufferedWriterIsChargedItsBytesNotTheFlusher) {
  probe();
  reset_events();
  ASSERT_TRUE(probe().io_bytes_from_task()) << "this kernel has no task IO accounting";
  ASSERT_TRUE(on_block_device(io_dir())) << io_dir() << " is not on a block device; set FP_TEST_IO_DIR";
  ScratchFile f("fp_buffered_write");
  // 512 KiB every 20 ms (~25 MB/s) for about 3 s, through the page cache
  Child c([&] { return paced_writer(f.path, 512u << 10, 150, 20ms); });
  c.release();
  EXPECT_GE(compare_while_writing(uint32_t(c.pid()), 8u << 20), 1) << "no interval of >= 1 s was judged";
  compare_at_exit(c.pid());
  auto ex = wait_exit(uint32_t(c.pid()), 3s);
  ASSERT_TRUE(ex);
  EXPECT_GE(ex->final.io_write_bytes, 150u * (512u << 10));
  // the flusher submits a buffered writer's pages, never the writer
  EXPECT_LT(ex->final.io_submit_write_bytes, ex->final.io_write_bytes / 10);
  EXPECT_EQ(WEXITSTATUS(c.wait()), 0) << "writer failed (10 open, 11 write, 12 truncate)";
  // and no kernel thread is charged what it wrote back for others
  for (const auto& p : probe().read().procs) {
    if (p.flags & FP_PROC_KTHREAD) {
      EXPECT_LT(p.io_write_bytes, ex->final.io_write_bytes) << p.comm;
    }
  }
}

TEST(TaskIo, MultiThreadedWriterMatchesProcIoAfterItsThreadsDie) {
  probe();
  reset_events();
  ASSERT_TRUE(on_block_device(io_dir())) << io_dir() << " is not on a block device; set FP_TEST_IO_DIR";
  ScratchFile main_file("fp_mt_write"), a("fp_mt_write_a"), b("fp_mt_write_b"), d("fp_mt_write_c");
  // Three threads write 16 MiB each and exit (their counts go to the
  // process's signal->ioac), then the main thread writes for ~3 s more.
  Child c([&] {
    std::vector<std::thread> ts;
    std::atomic<int> failed{0};
    for (const auto* f : {&a, &b, &d})
      ts.emplace_back([&failed, f] { failed |= paced_writer(f->path, 1u << 20, 16, 5ms); });
    for (auto& t : ts) t.join();
    return failed ? failed.load() : paced_writer(main_file.path, 512u << 10, 150, 20ms);
  });
  c.release();
  EXPECT_GE(compare_while_writing(uint32_t(c.pid()), 8u << 20), 1) << "no interval of >= 1 s was judged";
  compare_at_exit(c.pid());
  auto ex = wait_exit(uint32_t(c.pid()), 3s);
  ASSERT_TRUE(ex);
  EXPECT_EQ(ex->final.threads, 3u);
  EXPECT_GE(ex->final.io_write_bytes, 3u * (16u << 20) + 150u * (512u << 10));
  EXPECT_EQ(WEXITSTATUS(c.wait()), 0);
}

TEST(TaskIo, DdWithoutDirectIsChargedToDd) {
  probe();
  reset_events();
  ASSERT_TRUE(on_block_device(io_dir())) << io_dir() << " is not on a block device; set FP_TEST_IO_DIR";
  ScratchFile f("fp_dd_buffered");
  // A real dd through the page cache, held to a share of a CPU (5 %, more
  // where the machine is emulated) so that it writes for seconds and dirties
  // a few hundred MiB, not gigabytes; stopped once three intervals are judged.
  TestCgroup cg("cpu", "fp_test_dd_" + std::to_string(getpid()));
  const int quota_us = int(std::min(100000.0, 5000 * time_scale() * time_scale()));
  ASSERT_TRUE(cg.set("cpu.max", "cpu.cfs_quota_us",
                     cg.v2() ? std::to_string(quota_us) + " 100000" : std::to_string(quota_us)))
      << "cannot set up a cpu cgroup at " << cg.where();
  const std::string of = "of=" + f.path;
  Child c([&] {
    execlp("dd", "dd", "if=/dev/zero", of.c_str(), "bs=1M", "count=4096", "status=none", nullptr);
    return 127;
  });
  ASSERT_TRUE(cg.add(c.pid()));
  c.release();
  EXPECT_GE(compare_while_writing(uint32_t(c.pid()), 4u << 20, 3), 1) << "no interval of >= 1 s was judged";
  c.kill(SIGTERM);  // dd's exit by signal is an exit like any other
  compare_at_exit(c.pid());
  auto ex = wait_exit(uint32_t(c.pid()), 3s);
  ASSERT_TRUE(ex);
  EXPECT_STREQ(ex->final.comm, "dd");
  EXPECT_GE(ex->final.io_write_bytes, 12ull << 20);
  c.wait();
}

namespace {

// Output of a shell command ("" on failure), trailing newline dropped.
std::string run(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p)) out += buf;
    if (pclose(p) != 0) out.clear();
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Somewhere a writer is throttled in balance_dirty_pages however large the
// host's dirty limits are, affecting no other writer:
// - kernels >= 6.2: a loop device of our own over a sparse file, whose bdi
//   lets a few MiB be dirty (strict_limit, max_bytes);
// - older ones (6.1): a memory cgroup of ours on cgroup v2, whose dirty
//   limits (cgroup writeback) are a share of its 32 MiB, writing a file of
//   the IO directory.
class DirtyLimited {
 public:
  DirtyLimited() : backing_("fp_dirty_loop"), file_("fp_dirty_file") {
    { std::ofstream(backing_.path).flush(); }
    fs::resize_file(backing_.path, 256u << 20);
    dev_ = run("losetup -f --show " + backing_.path);
    struct stat st {};
    if (!dev_.empty() && stat(dev_.c_str(), &st) == 0) {
      std::string bdi = "/sys/class/bdi/" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
      if (fs::exists(bdi + "/strict_limit") && write(bdi + "/strict_limit", "1") &&
          (fs::exists(bdi + "/max_bytes") ? write(bdi + "/max_bytes", std::to_string(4u << 20))
                                          : write(bdi + "/max_ratio", "1"))) {
        target_ = dev_;
        return;
      }
      // Before 6.2 there is no per-device strict limit: lower the host's dirty
      // limit for the length of the test instead (restored by the destructor),
      // so the loop device's writer is paused however idle the rest is.
      if (limit_host_dirty_bytes()) {
        target_ = dev_;
        return;
      }
    }
    cg_ = std::make_unique<TestCgroup>("memory", "fp_test_dirty_" + std::to_string(getpid()));
    if (cg_->v2() && cg_->set("memory.max", "", std::to_string(32u << 20))) target_ = file_.path;
  }
  ~DirtyLimited() {
    if (!saved_vm_.empty())
      for (const auto& [path, value] : saved_vm_)
        if (value != "0") write(path, value);  // the non-zero one of bytes/ratio is the setting
    if (!dev_.empty()) run("losetup -d " + dev_);
  }
  // Where to write ("" when neither way works here).
  const std::string& target() const { return target_; }
  bool admit(pid_t pid) const { return !cg_ || cg_->add(pid); }
  std::string why() const {
    return "no loop device (losetup) and no cgroup v2 memory controller (" +
           (cg_ ? cg_->where() : std::string("-")) + ")";
  }

 private:
  bool limit_host_dirty_bytes() {
    const char* keys[] = {"/proc/sys/vm/dirty_bytes", "/proc/sys/vm/dirty_ratio", "/proc/sys/vm/dirty_background_bytes",
                          "/proc/sys/vm/dirty_background_ratio"};
    for (const char* k : keys) {
      std::ifstream in(k);
      std::string v;
      if (!(in >> v)) return false;
      saved_vm_.emplace_back(k, v);
    }
    return write("/proc/sys/vm/dirty_background_bytes", std::to_string(1u << 20)) &&
           write("/proc/sys/vm/dirty_bytes", std::to_string(4u << 20));
  }
  static bool write(const std::string& path, const std::string& v) {
    std::ofstream out(path);
    out << v;
    out.flush();
    return bool(out);
  }
  ScratchFile backing_, file_;
  std::string dev_, target_;
  std::vector<std::pair<std::string, std::string>> saved_vm_;  // host dirty limits to restore
  std::unique_ptr<TestCgroup> cg_;
};

}  // namespace

TEST(TaskIo, DirtyThrottledWriterCountsItsPauses) {
  probe();
  reset_events();
  DirtyLimited limited;
  ASSERT_FALSE(limited.target().empty()) << "cannot limit dirty pages: " << limited.why();
  const std::string target = limited.target();
  // 64 MiB as fast as it goes, through the page cache, where a few MiB may
  // be dirty: most of its time is pauses in balance_dirty_pages.
  auto t0 = std::chrono::steady_clock::now();
  Child c([&] {
    int fd = open(target.c_str(), O_WRONLY | O_CREAT, 0600);
    if (fd < 0) return 10;
    std::string buf(1u << 20, 'd');
    for (int i = 0; i < 64; i++)
      if (write(fd, buf.data(), buf.size()) != ssize_t(buf.size())) return 11;
    close(fd);
    return 0;
  });
  ASSERT_TRUE(limited.admit(c.pid()));
  c.release();
  auto ex = wait_exit(uint32_t(c.pid()), 60s);
  auto wall = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(ex) << "the writer did not finish";
  EXPECT_EQ(WEXITSTATUS(c.wait()), 0) << "writer failed (10 open, 11 write)";
  RecordProperty("dirty_throttles", std::to_string(ex->final.dirty_throttles));
  RecordProperty("dirty_throttle_ms", std::to_string(ex->final.dirty_throttle_ns / 1'000'000));
  RecordProperty("dstate_ms", std::to_string(ex->final.dstate_ns / 1'000'000));
  EXPECT_GT(ex->final.dirty_throttles, 0u) << "writing to " << target;
  EXPECT_GT(ex->final.dirty_throttle_ns, 0u);
  // pauses are sleeps of its own: no more than it lived, and D-state too (TASK_KILLABLE)
  EXPECT_LE(ex->final.dirty_throttle_ns, uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count()));
  EXPECT_GT(ex->final.dstate_ns, 0u);
}

namespace {

// The exit record of `pid` from a probe of the test's own.
std::optional<fp_proc> exit_from(Probe& p, uint32_t pid, EventBatch& batch) {
  std::optional<fp_proc> found;
  wait_until(
      [&] {
        p.drain(batch);
        for (const auto& e : batch.exits)
          if (e.final.tgid == pid) found = e.final;
        return found.has_value();
      },
      5s);
  return found;
}

}  // namespace

// raw_tp hooks read the task's IO counters with a probe read: the same bytes.
TEST(TaskIo, RawTracepointProbeChargesTheWriterToo) {
  ProbeOptions opts;
  opts.force_raw_tp = true;
  opts.max_procs = 4096;
  auto raw = Probe::start(opts);
  ASSERT_TRUE(raw) << raw.error().message;
  ASSERT_TRUE((*raw)->io_bytes_from_task());
  ScratchFile f("fp_raw_buffered_write");
  Child c([&] { return paced_writer(f.path, 512u << 10, 32, 5ms); });
  c.release();
  ASSERT_TRUE(wait_zombie(c.pid(), 30s));
  auto io = proc_io(uint32_t(c.pid()));
  ASSERT_TRUE(io);
  EventBatch batch;
  auto ex = exit_from(**raw, uint32_t(c.pid()), batch);
  ASSERT_TRUE(ex) << "no exit record from the raw_tp probe";
  EXPECT_EQ(ex->io_write_bytes, io->write_bytes);
  EXPECT_EQ(ex->io_cancelled_write_bytes, io->cancelled_write_bytes);
  EXPECT_GE(ex->io_write_bytes, 32u * (512u << 10));
  EXPECT_EQ(WEXITSTATUS(c.wait()), 0);
}

// Kernels without task IO accounting: the bytes are the submitter's, and the
// probe says so. A direct writer still gets its bytes; a buffered one does not.
TEST(TaskIo, WithoutTaskAccountingBytesAreTheSubmitters) {
  ProbeOptions opts;
  opts.io_from_submitter = true;
  opts.max_procs = 4096;
  auto sub = Probe::start(opts);
  ASSERT_TRUE(sub) << sub.error().message;
  EXPECT_FALSE((*sub)->io_bytes_from_task());
  EXPECT_STREQ((*sub)->io_bytes_from(), "submitter");
  bool listed = false;
  for (const auto& u : (*sub)->unavailable_counters()) listed |= u.find("io_write_bytes") != std::string::npos;
  EXPECT_TRUE(listed) << "unavailable_counters() does not say the IO bytes are the submitter's";
  ASSERT_TRUE(on_block_device(io_dir())) << io_dir() << " is not on a block device; set FP_TEST_IO_DIR";
  ScratchFile direct("fp_sub_direct"), buffered("fp_sub_buffered");
  constexpr size_t kTotal = 16u << 20;
  Child d([&] {
    int fd = open(direct.path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0600);
    void* buf = nullptr;
    if (fd < 0 || posix_memalign(&buf, 4096, 1u << 20)) return 10;
    std::memset(buf, 'x', 1u << 20);
    for (size_t done = 0; done < kTotal; done += 1u << 20)
      if (write(fd, buf, 1u << 20) != ssize_t(1u << 20)) return 11;
    close(fd);
    return 0;
  });
  Child b([&] { return paced_writer(buffered.path, 1u << 20, 16, 1ms); });
  // one after the other: a request another process's bio merged into is
  // charged to that request's submitter (the limit of counting by submitter)
  d.release();
  EXPECT_EQ(WEXITSTATUS(d.wait()), 0);
  b.release();
  EXPECT_EQ(WEXITSTATUS(b.wait()), 0);
  EventBatch batch;
  auto dx = exit_from(**sub, uint32_t(d.pid()), batch);
  auto bx = exit_from(**sub, uint32_t(b.pid()), batch);
  ASSERT_TRUE(dx && bx) << "no exit records";
  EXPECT_GE(dx->io_write_bytes, kTotal * 9 / 10);
  EXPECT_EQ(dx->io_write_bytes, dx->io_submit_write_bytes);
  EXPECT_LT(bx->io_write_bytes, kTotal / 10) << "the flusher submits a buffered writer's pages";
}
