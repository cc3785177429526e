// cgroup layout parsing, the cgroupfs helpers on a fake tree and the throttle
// state file (the backends themselves: test_cgroup_throttle.cpp).
#include "act/cgroup.h"

#include <gtest/gtest.h>

#include <cerrno>

#include <nlohmann/json.hpp>

#include "act/cgroupfs.h"
#include "act/throttle_state.h"
#include "fake_tree.h"

namespace fp {
namespace {

using test::FakeTree;

// ---- mountinfo ----

// This machine (Debian 12 container-ish VM, no systemd): v1 controllers, each
// on its own, plus an empty cgroup2 at /sys/fs/cgroup/unified.
const char* kThisHost =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n"
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    "43 23 0:39 / /sys/fs/bpf rw,relatime - bpf bpf rw\n";

// A current systemd host: only cgroup2, with optional fields before the "-".
const char* kPureV2 =
    "24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "25 30 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
    "30 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro\n"
    "33 24 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

// An older systemd host (hybrid): joined hierarchies, plain options mixed in.
const char* kHybrid =
    "31 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
    "32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
    "33 31 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup "
    "rw,xattr,name=systemd\n"
    "37 31 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "38 31 0:33 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup "
    "rw,net_cls,net_prio\n"
    "39 31 0:34 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup "
    "rw,memory,release_agent=/sbin/agent\n"
    // A bind mount of a sub-tree (as a container runtime makes): the whole
    // hierarchy above wins.
    "50 31 0:34 /docker/abc /mnt/mem\\040limits rw,relatime - cgroup cgroup rw,memory\n";

TEST(ParseCgroupMounts, ThisHost) {
  FakeTree t;
  t.put("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
  auto l = parse_cgroup_mounts(kThisHost, t.root());
  EXPECT_EQ(l.v2_root, "/sys/fs/cgroup/unified");
  EXPECT_EQ(l.v2_controllers, std::vector<std::string>{"hugetlb"});
  std::map<std::string, std::string> want = {
      {"blkio", "/sys/fs/cgroup/blkio"},   {"cpu", "/sys/fs/cgroup/cpu"},
      {"cpuacct", "/sys/fs/cgroup/cpuacct"}, {"cpuset", "/sys/fs/cgroup/cpuset"},
      {"devices", "/sys/fs/cgroup/devices"}, {"freezer", "/sys/fs/cgroup/freezer"},
      {"memory", "/sys/fs/cgroup/memory"}, {"name=systemd", "/sys/fs/cgroup/systemd"},
      {"pids", "/sys/fs/cgroup/pids"}};
  EXPECT_EQ(l.v1, want);
}

TEST(ParseCgroupMounts, PureV2SystemdHost) {
  FakeTree t;
  t.put("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
  auto l = parse_cgroup_mounts(kPureV2, t.root());
  EXPECT_EQ(l.v2_root, "/sys/fs/cgroup");
  EXPECT_EQ(l.v2_controllers,
            (std::vector<std::string>{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}));
  EXPECT_TRUE(l.v1.empty());
}

TEST(ParseCgroupMounts, HybridJoinedControllersAndOptions) {
  auto l = parse_cgroup_mounts(kHybrid, "/nonexistent");
  EXPECT_EQ(l.v2_root, "/sys/fs/cgroup/unified");
  EXPECT_TRUE(l.v2_controllers.empty());  // unreadable cgroup.controllers: none
  EXPECT_EQ(l.v1.at("cpu"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(l.v1.at("cpuacct"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(l.v1.at("net_cls"), "/sys/fs/cgroup/net_cls,net_prio");
  EXPECT_EQ(l.v1.at("net_prio"), "/sys/fs/cgroup/net_cls,net_prio");
  EXPECT_EQ(l.v1.at("name=systemd"), "/sys/fs/cgroup/systemd");
  EXPECT_EQ(l.v1.at("memory"), "/sys/fs/cgroup/memory");
  EXPECT_EQ(l.v1.count("xattr"), 0u);
  EXPECT_EQ(l.v1.count("rw"), 0u);
  EXPECT_EQ(l.v1.count("release_agent=/sbin/agent"), 0u);
  EXPECT_EQ(l.v1.size(), 6u);
}

TEST(ParseCgroupMounts, SubTreeOnlyIsUsedAndUnescaped) {
  auto l = parse_cgroup_mounts("50 31 0:34 /docker/abc /mnt/mem\\040limits rw - cgroup cgroup rw,memory\n");
  EXPECT_EQ(l.v1.at("memory"), "/mnt/mem limits");
}

TEST(ParseCgroupMounts, GarbageIsIgnored) {
  auto l = parse_cgroup_mounts("\n\nnot a line\n1 2 3\n41 31 0:38 / /x rw - cgroup2\n");
  EXPECT_TRUE(l.v2_root.empty());
  EXPECT_TRUE(l.v1.empty());
}

TEST(DetectCgroups, RealHostHasACpuController) {
  // Whatever the host, a cpu controller is somewhere (v2 list or v1 map).
  auto l = detect_cgroups();
  bool v2cpu = std::find(l.v2_controllers.begin(), l.v2_controllers.end(), "cpu") != l.v2_controllers.end();
  EXPECT_TRUE(v2cpu || l.v1.count("cpu")) << "v2_root=" << l.v2_root;
}

// ---- /proc/PID/cgroup ----

TEST(ParseProcCgroups, HybridAndV2) {
  auto pc = parse_proc_cgroups(
      "12:pids:/user.slice/u.scope\n4:cpu,cpuacct:/app\n1:name=systemd:/sd:with:colons\n0::/\n");
  ASSERT_TRUE(pc.v2);
  EXPECT_EQ(*pc.v2, "/");
  EXPECT_EQ(pc.v1.at("cpu"), "/app");
  EXPECT_EQ(pc.v1.at("cpuacct"), "/app");
  EXPECT_EQ(pc.v1.at("pids"), "/user.slice/u.scope");
  EXPECT_EQ(pc.v1.at("name=systemd"), "/sd:with:colons");
  auto v2 = parse_proc_cgroups("0::/system.slice/db.service\n");
  EXPECT_EQ(v2.v2.value_or(""), "/system.slice/db.service");
  EXPECT_TRUE(v2.v1.empty());
  EXPECT_FALSE(parse_proc_cgroups("").v2);
}

TEST(DefaultIoDevices, WholeDisksOnly) {
  FakeTree t;
  t.put("sys/block/vda/dev", "254:0\n");
  t.put("sys/block/sda/dev", "8:0\n");
  t.put("sys/block/nvme0n1/dev", "259:0\n");
  t.put("sys/block/loop0/dev", "7:0\n");
  t.put("sys/block/ram0/dev", "1:0\n");
  t.put("sys/block/zram0/dev", "253:0\n");
  t.mkdir("sys/block/nodev");
  EXPECT_EQ(default_io_devices(t.path("sys")), (std::vector<std::string>{"254:0", "259:0", "8:0"}));
}

// ---- cgroupfs helpers on a fake tree ----

TEST(Cgroupfs, FakeTreeCreatesControlFilesAndRemovesGroups) {
  FakeTree t;
  ASSERT_TRUE(make_group(t.path("g")).ok());
  ASSERT_TRUE(make_group(t.path("g")).ok());  // EEXIST is fine
  ASSERT_TRUE(write_control(t.path("g/cpu.max"), "20000 100000").ok());
  EXPECT_EQ(t.get("g/cpu.max"), "20000 100000");
  ASSERT_TRUE(write_control(t.path("g/cpu.max"), "max 100000").ok());
  EXPECT_EQ(t.get("g/cpu.max"), "max 100000");  // a write replaces, like the kernel's
  auto missing_dir = write_control(t.path("nope/cpu.max"), "1");
  ASSERT_FALSE(missing_dir.ok());
  EXPECT_EQ(missing_dir.error().code, ENOENT);
  EXPECT_NE(missing_dir.error().message.find(t.path("nope/cpu.max")), std::string::npos);
  t.mkdir("g/child");
  auto busy = remove_group(t.path("g"));
  EXPECT_FALSE(busy.ok());  // a child group keeps it
  ASSERT_TRUE(remove_group(t.path("g/child")).ok());
  ASSERT_TRUE(remove_group(t.path("g")).ok());
  EXPECT_FALSE(t.exists("g"));
  EXPECT_TRUE(remove_group(t.path("g")).ok());  // already gone
  EXPECT_FALSE(on_cgroupfs(t.root()));
}

TEST(ThrottleState, MalformedFileIsAnErrorAndMissingIsEmpty) {
  FakeTree t;
  auto missing = load_throttle_state(t.path("none.json"));
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->entries.empty());
  t.put("bad.json", "{\"throttles\": [{\"tgid\": \"x\"}]}");
  auto bad = load_throttle_state(t.path("bad.json"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, EINVAL);
  EXPECT_NE(bad.error().message.find("bad.json"), std::string::npos);
}

}  // namespace
}  // namespace fp
