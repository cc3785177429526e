// The small system helpers in util/: the owned fd, whole-file reads, the
// /proc/PID/status parser and the clocks.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "fake_tree.h"
#include "util/clock.h"
#include "util/fd.h"
#include "util/file.h"
#include "util/proc_status.h"

namespace fp {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(Fd, ClosesWhenItGoesAndMovesOwnership) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    Fd a(raw);
    Fd b(std::move(a));
    EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(b.get(), raw);
    Fd c;
    c = std::move(b);
    EXPECT_EQ(c.get(), raw);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(Fd, ReleaseGivesItUpAndResetKeepsErrno) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    Fd a(raw);
    EXPECT_EQ(a.release(), raw);
  }
  EXPECT_TRUE(is_open(raw));
  Fd b(raw);
  errno = ENOSPC;
  b.reset();
  EXPECT_EQ(errno, ENOSPC);  // the error the caller is about to report
  EXPECT_FALSE(is_open(raw));
}

TEST(File, ReadsWholeFilesUpToACap) {
  test::FakeTree t;
  t.put("f", std::string(100000, 'x') + "end");
  auto all = read_file(t.path("f"));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 100003u);
  auto capped = read_file(t.path("f"), 10);
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(*capped, std::string(10, 'x'));
  EXPECT_EQ(read_file_partial(t.path("f"), 5000), std::string(5000, 'x'));
  // /proc files report size 0: read until EOF.
  auto self = read_file("/proc/self/status");
  ASSERT_TRUE(self.ok());
  EXPECT_NE(self->find("Uid:"), std::string::npos);
}

TEST(File, ErrorsCarryErrnoAndThePath) {
  auto missing = read_file("/nonexistent/faultprobe");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_EQ(missing.error().message, "cannot open /nonexistent/faultprobe: No such file or directory");
  EXPECT_EQ(read_file_partial("/nonexistent/faultprobe", 100), "");
  auto dir = read_file("/");  // opens, then read(2) fails
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().code, EISDIR);
  EXPECT_EQ(dir.error().message.rfind("cannot read /: ", 0), 0u) << dir.error().message;
  EXPECT_EQ(read_file_partial("/", 100), "");
}

TEST(ProcStatus, ReadsTheFirstNumberOfAField) {
  const std::string status = "Name:\tbash\nPid:\t42\nPPid:\t7\nUid:\t1000\t1001\t1002\t1003\nGid:  5 5 5 5\n";
  uint32_t v = 0;
  EXPECT_TRUE(proc_status_number(status, "Uid:", v));
  EXPECT_EQ(v, 1000u);  // the real uid
  EXPECT_TRUE(proc_status_number(status, "Gid:", v));
  EXPECT_EQ(v, 5u);
  EXPECT_TRUE(proc_status_number(status, "PPid:", v));
  EXPECT_EQ(v, 7u);
  EXPECT_TRUE(proc_status_number(status, "Pid:", v));
  EXPECT_EQ(v, 42u);  // a line's start, not "PPid:"'s tail
  v = 99;
  EXPECT_FALSE(proc_status_number(status, "Tgid:", v));
  EXPECT_FALSE(proc_status_number("Uid:\tx\n", "Uid:", v));
  EXPECT_FALSE(proc_status_number("Uid:", "Uid:", v));
  EXPECT_EQ(v, 99u);  // untouched when there is no number
  auto self = read_file("/proc/self/status");
  ASSERT_TRUE(self.ok());
  EXPECT_TRUE(proc_status_number(*self, "Uid:", v));
  EXPECT_EQ(v, uint32_t(::getuid()));
  EXPECT_TRUE(proc_status_number(*self, "PPid:", v));
  EXPECT_EQ(v, uint32_t(::getppid()));
}

TEST(Clock, ReadsTheClocks) {
  const uint64_t a = realtime_now_ns(), b = realtime_now_ns();
  EXPECT_LE(a, b);
  EXPECT_GT(a, 1'600'000'000ull * 1'000'000'000ull);  // after 2020: the wall clock, not the boot clock
  const uint64_t c0 = thread_cpu_ns();
  volatile uint64_t spin = 0;
  while (thread_cpu_ns() == c0) spin = spin + 1;
  EXPECT_GT(thread_cpu_ns(), c0);
}

}  // namespace
}  // namespace fp
