// The /proc fallback for an OOM victim named by a thread the probe could not map.
#include "probe/oom_victim.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "faultprobe/abi.h"
#include "probe/sample.h"

namespace fp {
namespace {

namespace fs = std::filesystem;

class FakeThreadStatus : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(root_); }
  void TearDown() override { fs::remove_all(root_); }
  void status(uint32_t tid, const std::string& text) {
    fs::create_directories(root_ + "/" + std::to_string(tid));
    std::ofstream(root_ + "/" + std::to_string(tid) + "/status") << text;
  }
  const std::string root_ = fs::temp_directory_path().string() + "/fp_oom_victim_" + std::to_string(getpid());
};

TEST_F(FakeThreadStatus, ThreadIdMapsToItsTgid) {
  status(4242, "Name:\tworker\nUmask:\t0022\nState:\tR (running)\nTgid:\t4200\nNgid:\t0\nPid:\t4242\n");
  EXPECT_EQ(thread_tgid(4242, root_), 4200u);
}

TEST_F(FakeThreadStatus, GoneOrMalformedIsNothing) {
  EXPECT_FALSE(thread_tgid(1, root_));
  status(7, "Name:\tx\nTgid:\t\n");
  EXPECT_FALSE(thread_tgid(7, root_));
  status(8, "Name:\tx\nTgid:\tzz\n");
  EXPECT_FALSE(thread_tgid(8, root_));
  status(9, "Name:\tx\nTgid:\t0\n");
  EXPECT_FALSE(thread_tgid(9, root_));
}

TEST(OomTgidFrom, Names) {
  EXPECT_STREQ(oom_tgid_from_name(FP_OOM_TGID_UNRESOLVED), "unresolved");
  EXPECT_STREQ(oom_tgid_from_name(FP_OOM_TGID_SAME), "leader");
  EXPECT_STREQ(oom_tgid_from_name(FP_OOM_TGID_CURRENT), "current");
  EXPECT_STREQ(oom_tgid_from_name(FP_OOM_TGID_SIGKILL), "sigkill");
  EXPECT_STREQ(oom_tgid_from_name(FP_OOM_TGID_PROC), "proc");
}

}  // namespace
}  // namespace fp
