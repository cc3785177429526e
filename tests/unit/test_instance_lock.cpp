#include "util/instance_lock.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace fp {
namespace {

class InstanceLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fp-lock-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/run/faultprobed.lock";  // the parent does not exist yet
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, path_;
};

TEST_F(InstanceLockTest, FirstWinsAndWritesItsPid) {
  auto lock = InstanceLock::acquire(path_);
  ASSERT_TRUE(lock) << lock.error().message;
  EXPECT_EQ(std::filesystem::status(dir_ + "/run").permissions() & std::filesystem::perms::others_exec,
            std::filesystem::perms::others_exec);
  std::ifstream in(path_);
  long pid = 0;
  in >> pid;
  EXPECT_EQ(pid, long(getpid()));
}

// flock conflicts between open file descriptions, so a second acquire in the
// same process behaves as another daemon would.
TEST_F(InstanceLockTest, SecondFailsNamingTheHolder) {
  auto first = InstanceLock::acquire(path_);
  ASSERT_TRUE(first) << first.error().message;
  auto second = InstanceLock::acquire(path_);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, EBUSY);
  EXPECT_EQ(second.error().message,
            "faultprobed is already running (pid " + std::to_string(getpid()) + ", lock " + path_ + ")");
}

TEST_F(InstanceLockTest, ReleasedOnDestructionAndMove) {
  {
    auto first = InstanceLock::acquire(path_);
    ASSERT_TRUE(first);
    std::optional<InstanceLock> moved(std::move(first).value());
    EXPECT_FALSE(InstanceLock::acquire(path_)) << "a moved lock is still held";
  }
  EXPECT_TRUE(InstanceLock::acquire(path_)) << "the lock outlived its owner";
}

// A daemon killed with SIGKILL must not block its restart.
TEST_F(InstanceLockTest, AKilledHolderReleasesIt) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto lock = InstanceLock::acquire(path_);
    char c = lock ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  ASSERT_EQ(c, 'y');
  auto busy = InstanceLock::acquire(path_);
  ASSERT_FALSE(busy);
  EXPECT_NE(busy.error().message.find("pid " + std::to_string(child)), std::string::npos) << busy.error().message;
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_TRUE(InstanceLock::acquire(path_));
}

TEST_F(InstanceLockTest, UnwritableDirectoryIsAClearError) {
  auto r = InstanceLock::acquire("/proc/self/fp-no/faultprobed.lock");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cannot create the lock directory /proc/self/fp-no"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace fp
