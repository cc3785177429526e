// cgroup layout parsing and the cgroup v1/v2 throttle backends against a fake
// cgroupfs tree (plain directories) and a fake /proc.
#include "act/cgroup.h"

#include <gtest/gtest.h>

#include <cerrno>

#include <nlohmann/json.hpp>

#include "act/cgroup_throttle.h"
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

// ---- cgroup v1 backend ----

constexpr ProcKey kKey{123, 456};
constexpr const char* kGroup = "faultprobe/p123-456";

ThrottleLimits cpu(double s) {
  ThrottleLimits l;
  l.cpu_share = s;
  return l;
}

class V1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    // cpu and cpuacct joined, as on many hosts; memory, blkio, pids alone.
    for (const char* m : {"cg/cpu,cpuacct", "cg/memory", "cg/blkio", "cg/pids"}) t.put(std::string(m) + "/cgroup.procs", "");
    t.put("cg/cpu,cpuacct/user.slice/cgroup.procs", "");
    t.put("cg/memory/mem/cgroup.procs", "");
    t.put("cg/memory/memory.move_charge_at_immigrate", "0\n");
    t.put("cg/pids/p/cgroup.procs", "");
    t.put("proc/123/cgroup",
          "5:pids:/p\n4:blkio:/\n3:memory:/mem\n2:cpu,cpuacct:/user.slice\n1:name=systemd:/sd\n0::/\n");
    v1 = {{"cpu", t.path("cg/cpu,cpuacct")},
          {"cpuacct", t.path("cg/cpu,cpuacct")},
          {"memory", t.path("cg/memory")},
          {"blkio", t.path("cg/blkio")},
          {"pids", t.path("cg/pids")},
          {"name=systemd", t.path("cg/systemd")}};
  }
  std::unique_ptr<CgroupV1Throttle> make(const std::string& state = "") {
    auto b = std::make_unique<CgroupV1Throttle>(v1, t.path("proc"), state);
    b->set_io_devices({"254:0"});
    return b;
  }
  std::string cpu_group(const std::string& file) const { return t.get(std::string("cg/cpu,cpuacct/") + kGroup + "/" + file); }

  FakeTree t;
  std::map<std::string, std::string> v1;
};

TEST_F(V1Test, CpuThrottleAndRelease) {
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "cpu.cfs_period_us=100000, cpu.cfs_quota_us=20000 in /faultprobe/p123-456 (was /user.slice)");
  EXPECT_EQ(cpu_group("cgroup.procs"), "123");
  EXPECT_EQ(cpu_group("cpu.cfs_quota_us"), "20000");
  EXPECT_EQ(cpu_group("cpu.cfs_period_us"), "100000");
  // Only the hierarchies the limits need.
  EXPECT_FALSE(t.exists("cg/memory/faultprobe"));
  EXPECT_FALSE(t.exists("cg/pids/faultprobe"));
  EXPECT_TRUE(b->throttled(kKey));
  EXPECT_EQ(b->throttled_keys(), std::vector<ProcKey>{kKey});
  EXPECT_STREQ(b->name(), "cgroup1");

  auto rel = b->release(kKey);
  ASSERT_TRUE(rel.ok()) << rel.error().message;
  EXPECT_EQ(t.get("cg/cpu,cpuacct/user.slice/cgroup.procs"), "123");
  EXPECT_FALSE(t.exists(std::string("cg/cpu,cpuacct/") + kGroup));
  EXPECT_NE(rel->find("moved back to /user.slice"), std::string::npos) << *rel;
  EXPECT_NE(rel->find("removed /faultprobe/p123-456"), std::string::npos) << *rel;
  EXPECT_FALSE(b->throttled(kKey));
  EXPECT_EQ(b->release(kKey).error().code, ENOENT);
}

TEST_F(V1Test, EveryLimitInItsOwnHierarchy) {
  auto b = make();
  ThrottleLimits l = cpu(2.5);  // two and a half CPUs
  l.memory_bytes = 256ull << 20;
  l.io_bps = 1 << 20;
  l.pids = 64;
  auto r = b->throttle(kKey, l);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(cpu_group("cpu.cfs_quota_us"), "250000");
  std::string mem = std::string("cg/memory/") + kGroup + "/";
  EXPECT_EQ(t.get(mem + "memory.move_charge_at_immigrate"), "3");
  EXPECT_EQ(t.get(mem + "memory.limit_in_bytes"), "268435456");
  EXPECT_EQ(t.get(mem + "memory.soft_limit_in_bytes"), "268435456");
  EXPECT_EQ(t.get(mem + "cgroup.procs"), "123");
  std::string blk = std::string("cg/blkio/") + kGroup + "/";
  EXPECT_EQ(t.get(blk + "blkio.throttle.read_bps_device"), "254:0 1048576");
  EXPECT_EQ(t.get(blk + "blkio.throttle.write_bps_device"), "254:0 1048576");
  EXPECT_EQ(t.get(blk + "cgroup.procs"), "123");
  EXPECT_EQ(t.get(std::string("cg/pids/") + kGroup + "/pids.max"), "64");
  EXPECT_NE(r->find("(was blkio:/ cpu:/user.slice memory:/mem pids:/p)"), std::string::npos) << *r;

  ASSERT_TRUE(b->release(kKey).ok());
  // Each controller back to its own original group.
  EXPECT_EQ(t.get("cg/cpu,cpuacct/user.slice/cgroup.procs"), "123");
  EXPECT_EQ(t.get("cg/memory/mem/cgroup.procs"), "123");
  EXPECT_EQ(t.get("cg/blkio/cgroup.procs"), "123");  // the root group
  EXPECT_EQ(t.get("cg/pids/p/cgroup.procs"), "123");
  for (const char* m : {"cg/cpu,cpuacct/", "cg/memory/", "cg/blkio/", "cg/pids/"})
    EXPECT_FALSE(t.exists(std::string(m) + kGroup)) << m;
}

TEST_F(V1Test, SecondThrottleUpdatesLimits) {
  auto b = make();
  ASSERT_TRUE(b->throttle(kKey, cpu(0.2)).ok());
  ThrottleLimits l = cpu(0.5);
  l.pids = 64;
  ASSERT_TRUE(b->throttle(kKey, l).ok());
  EXPECT_EQ(cpu_group("cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(t.get(std::string("cg/pids/") + kGroup + "/pids.max"), "64");
  EXPECT_EQ(t.get(std::string("cg/pids/") + kGroup + "/cgroup.procs"), "123");

  // cpu no longer asked for: lifted, the process stays in the group until release.
  ThrottleLimits pids_only;
  pids_only.pids = 32;
  auto r = b->throttle(kKey, pids_only);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(cpu_group("cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(t.get(std::string("cg/pids/") + kGroup + "/pids.max"), "32");
  EXPECT_EQ(b->throttled_keys().size(), 1u);

  ASSERT_TRUE(b->release(kKey).ok());
  EXPECT_EQ(t.get("cg/cpu,cpuacct/user.slice/cgroup.procs"), "123");
  EXPECT_EQ(t.get("cg/pids/p/cgroup.procs"), "123");
  EXPECT_FALSE(t.exists(std::string("cg/pids/") + kGroup));
}

TEST_F(V1Test, IoLimitLiftedPerDevice) {
  auto b = make();
  ThrottleLimits l;
  l.io_bps = 1000;
  ASSERT_TRUE(b->throttle(kKey, l).ok());
  ASSERT_TRUE(b->throttle(kKey, cpu(0.3)).ok());
  std::string blk = std::string("cg/blkio/") + kGroup + "/";
  EXPECT_EQ(t.get(blk + "blkio.throttle.read_bps_device"), "254:0 0");
  EXPECT_EQ(t.get(blk + "blkio.throttle.write_bps_device"), "254:0 0");
}

TEST_F(V1Test, ProcessGoneBeforeThrottle) {
  auto b = make();
  auto r = b->throttle(ProcKey{999, 1}, cpu(0.2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ENOENT);
  EXPECT_NE(r.error().message.find("proc/999/cgroup"), std::string::npos) << r.error().message;
  EXPECT_FALSE(b->throttled(ProcKey{999, 1}));
}

TEST_F(V1Test, UnsupportedLimitSaysWhy) {
  v1.erase("blkio");
  auto b = make();
  ThrottleLimits l;
  l.io_bps = 1000;
  std::string why;
  EXPECT_FALSE(b->supports(l, &why));
  EXPECT_EQ(why, "cgroup v1 has no blkio hierarchy mounted");
  auto r = b->throttle(kKey, l);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EOPNOTSUPP);
  EXPECT_TRUE(b->supports(cpu(0.1), nullptr));
}

TEST_F(V1Test, FailedLimitRollsBackAFreshThrottle) {
  // A directory where the quota file should be: the write fails (EISDIR).
  t.mkdir(std::string("cg/cpu,cpuacct/") + kGroup + "/cpu.cfs_quota_us");
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EISDIR);
  EXPECT_NE(r.error().message.find("cpu.cfs_quota_us"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("rolled back"), std::string::npos) << r.error().message;
  EXPECT_EQ(t.get("cg/cpu,cpuacct/user.slice/cgroup.procs"), "123");
  EXPECT_FALSE(b->throttled(kKey));
}

TEST_F(V1Test, ExitedProcessJustLosesItsGroup) {
  auto b = make();
  ASSERT_TRUE(b->throttle(kKey, cpu(0.2)).ok());
  t.put(std::string("cg/cpu,cpuacct/") + kGroup + "/cgroup.procs", "");  // the kernel empties it at exit
  auto r = b->release(kKey);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(r->find("had exited"), std::string::npos) << *r;
  EXPECT_EQ(t.get("cg/cpu,cpuacct/user.slice/cgroup.procs"), "");  // nothing moved
  EXPECT_FALSE(t.exists(std::string("cg/cpu,cpuacct/") + kGroup));
}

TEST_F(V1Test, ChildrenGoBackTooAndAMissingOriginalFallsBackToItsParent) {
  t.put("proc/123/cgroup", "2:cpu,cpuacct:/user.slice/gone.scope\n");
  t.put("cg/cpu,cpuacct/user.slice/gone.scope/cgroup.procs", "");
  auto b = make();
  ASSERT_TRUE(b->throttle(kKey, cpu(0.2)).ok());
  std::filesystem::remove_all(t.path("cg/cpu,cpuacct/user.slice/gone.scope"));
  t.put(std::string("cg/cpu,cpuacct/") + kGroup + "/cgroup.procs", "123\n124\n");  // it forked
  auto r = b->release(kKey);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(r->find("moved back to /user.slice"), std::string::npos) << *r;
  EXPECT_EQ(t.get("cg/cpu,cpuacct/user.slice/cgroup.procs"), "124");  // the last of the two writes
  EXPECT_FALSE(t.exists(std::string("cg/cpu,cpuacct/") + kGroup));
}

TEST_F(V1Test, StateFileRoundTrip) {
  std::string state = t.path("run/faultprobe/throttles.json");
  ProcKey other{124, 789};
  t.put("proc/124/cgroup", "2:cpu,cpuacct:/user.slice\n");
  {
    auto a = make(state);
    ThrottleLimits l = cpu(0.2);
    l.pids = 10;
    ASSERT_TRUE(a->throttle(kKey, l).ok());
    ASSERT_TRUE(a->throttle(other, cpu(0.1)).ok());
    auto saved = load_throttle_state(state);
    ASSERT_TRUE(saved.ok()) << saved.error().message;
    EXPECT_EQ(saved->backend, "cgroup1");
    ASSERT_EQ(saved->entries.size(), 2u);
    const auto& e = saved->entries[0];
    EXPECT_EQ(e.key, kKey);
    EXPECT_EQ(e.limits, l);
    EXPECT_EQ(e.group, "/faultprobe/p123-456");
    EXPECT_EQ(e.original, (std::map<std::string, std::string>{{"cpu", "/user.slice"}, {"pids", "/p"}}));
    EXPECT_FALSE(t.exists("run/faultprobe/throttles.json.tmp"));
    // The daemon dies here without releasing anything.
  }
  // Meanwhile 124 exited, and a group nobody recorded was left behind.
  t.put("cg/cpu,cpuacct/faultprobe/p124-789/cgroup.procs", "");
  t.put("cg/cpu,cpuacct/faultprobe/p900-1/cgroup.procs", "");
  t.put("cg/cpu,cpuacct/faultprobe/p901-1/cgroup.procs", "901\n");

  auto b = make(state);
  EXPECT_TRUE(b->throttled(kKey));
  EXPECT_FALSE(b->throttled(other));
  EXPECT_FALSE(t.exists("cg/cpu,cpuacct/faultprobe/p124-789"));
  EXPECT_FALSE(t.exists("cg/cpu,cpuacct/faultprobe/p900-1"));
  EXPECT_TRUE(t.exists("cg/cpu,cpuacct/faultprobe/p901-1"));  // has a process: left alone
  auto reloaded = load_throttle_state(state);
  ASSERT_TRUE(reloaded.ok());
  EXPECT_EQ(reloaded->entries.size(), 1u);

  ASSERT_TRUE(b->release(kKey).ok());
  EXPECT_EQ(t.get("cg/cpu,cpuacct/user.slice/cgroup.procs"), "123");
  EXPECT_EQ(t.get("cg/pids/p/cgroup.procs"), "123");
  EXPECT_FALSE(t.exists(std::string("cg/cpu,cpuacct/") + kGroup));
  auto json = nlohmann::json::parse(t.get("run/faultprobe/throttles.json"));
  EXPECT_TRUE(json.at("throttles").empty());
}

TEST_F(V1Test, ReleaseAllEmptiesEverything) {
  t.put("proc/124/cgroup", "2:cpu,cpuacct:/user.slice\n");
  auto b = make();
  ASSERT_TRUE(b->throttle(kKey, cpu(0.2)).ok());
  ASSERT_TRUE(b->throttle(ProcKey{124, 1}, cpu(0.2)).ok());
  b->release_all();
  EXPECT_TRUE(b->throttled_keys().empty());
  EXPECT_FALSE(t.exists("cg/cpu,cpuacct/faultprobe"));
}

// ---- cgroup v2 backend ----

class V2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    t.put("cg2/cgroup.controllers", "cpuset cpu io memory pids\n");
    t.put("cg2/cgroup.subtree_control", "");
    t.put("cg2/cgroup.procs", "");
    t.put("cg2/user.slice/cgroup.procs", "");
    t.put("proc/123/cgroup", "0::/user.slice\n");
  }
  std::unique_ptr<CgroupV2Throttle> make(std::vector<std::string> ctrls = {"cpuset", "cpu", "io", "memory", "pids"},
                                         const std::string& state = "") {
    auto b = std::make_unique<CgroupV2Throttle>(t.path("cg2"), std::move(ctrls), t.path("proc"), state);
    b->set_io_devices({"254:0"});
    return b;
  }
  std::string group(const std::string& file) const { return t.get(std::string("cg2/") + kGroup + "/" + file); }
  FakeTree t;
};

TEST_F(V2Test, CpuThrottleEnablesTheControllerAndReleases) {
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "cpu.max=20000 100000 in /faultprobe/p123-456 (was /user.slice)");
  EXPECT_EQ(t.get("cg2/cgroup.subtree_control"), "+cpu");
  EXPECT_EQ(t.get("cg2/faultprobe/cgroup.subtree_control"), "+cpu");
  EXPECT_EQ(group("cpu.max"), "20000 100000");
  EXPECT_EQ(group("cgroup.procs"), "123");
  EXPECT_STREQ(b->name(), "cgroup2");

  auto rel = b->release(kKey);
  ASSERT_TRUE(rel.ok()) << rel.error().message;
  EXPECT_EQ(t.get("cg2/user.slice/cgroup.procs"), "123");
  EXPECT_FALSE(t.exists(std::string("cg2/") + kGroup));
  EXPECT_NE(rel->find("moved back to /user.slice"), std::string::npos) << *rel;
}

TEST_F(V2Test, UpdateAddsControllersAndLiftsDroppedLimits) {
  auto b = make();
  ASSERT_TRUE(b->throttle(kKey, cpu(0.2)).ok());
  ThrottleLimits l = cpu(0.001);  // below the kernel's minimum quota
  l.memory_bytes = 100 << 20;
  l.io_bps = 5 << 20;
  l.pids = 50;
  auto r = b->throttle(kKey, l);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r,
            "cpu.max=1000 100000, memory.high=104857600, io.max=254:0 rbps=5242880 wbps=5242880, pids.max=50 in "
            "/faultprobe/p123-456 (was /user.slice)");
  // "+cpu" was already there (the fake file holds our last write): only the rest is added.
  EXPECT_EQ(t.get("cg2/cgroup.subtree_control"), "+memory +io +pids");
  EXPECT_EQ(group("memory.high"), "104857600");
  EXPECT_EQ(group("io.max"), "254:0 rbps=5242880 wbps=5242880");
  EXPECT_EQ(group("pids.max"), "50");

  auto back = b->throttle(kKey, cpu(0.5));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(group("cpu.max"), "50000 100000");
  EXPECT_EQ(group("memory.high"), "max");
  EXPECT_EQ(group("io.max"), "254:0 rbps=max wbps=max");
  EXPECT_EQ(group("pids.max"), "max");
}

TEST_F(V2Test, ControllersAlreadyEnabledAreNotRewritten) {
  t.put("cg2/cgroup.subtree_control", "cpu io memory pids\n");  // as systemd leaves it
  t.put("cg2/faultprobe/cgroup.subtree_control", "cpu\n");
  auto b = make();
  ASSERT_TRUE(b->throttle(kKey, cpu(0.2)).ok());
  EXPECT_EQ(t.get("cg2/cgroup.subtree_control"), "cpu io memory pids\n");
  EXPECT_EQ(t.get("cg2/faultprobe/cgroup.subtree_control"), "cpu\n");
}

TEST_F(V2Test, MissingControllerIsRefusedWithTheReason) {
  auto b = make({"cpu"});
  ThrottleLimits l;
  l.memory_bytes = 1 << 20;
  std::string why;
  EXPECT_FALSE(b->supports(l, &why));
  EXPECT_EQ(why, "cgroup2 at " + t.path("cg2") + " has no memory controller (it has: cpu)");
  EXPECT_FALSE(b->throttle(kKey, l).ok());
  EXPECT_FALSE(t.exists("cg2/faultprobe"));
}

TEST_F(V2Test, ProcessWithoutV2PathIsAnError) {
  t.put("proc/123/cgroup", "2:cpu:/x\n");
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no cgroup for hierarchy v2"), std::string::npos) << r.error().message;
}

TEST_F(V2Test, StateSurvivesARestart) {
  std::string state = t.path("state.json");
  ASSERT_TRUE(make({"cpuset", "cpu", "io", "memory", "pids"}, state)->throttle(kKey, cpu(0.2)).ok());
  auto b = make({"cpuset", "cpu", "io", "memory", "pids"}, state);
  ASSERT_TRUE(b->throttled(kKey));
  ASSERT_TRUE(b->release(kKey).ok());
  EXPECT_EQ(t.get("cg2/user.slice/cgroup.procs"), "123");
  EXPECT_FALSE(t.exists(std::string("cg2/") + kGroup));
}

TEST_F(V2Test, StateOfAnotherBackendIsNotTouched) {
  std::string state = t.path("state.json");
  ThrottleState other{"cgroup1", {ThrottleEntry{kKey, cpu(0.2), "/faultprobe/p123-456", {{"cpu", "/"}}, {}}}};
  ASSERT_TRUE(save_throttle_state(state, other).ok());
  auto b = make({"cpu"}, state);
  EXPECT_FALSE(b->throttled(kKey));
  EXPECT_EQ(load_throttle_state(state)->entries.size(), 1u);
}

// A cgroup is named by whoever created it (a delegated subtree): its path is
// bytes, and the table of throttles keeps them exactly (issue 15 item 1).
TEST(ThrottleState, CgroupPathsThatAreNotUtf8RoundTrip) {
  FakeTree t;
  const std::string odd = "/user.slice/x\xff\xfey\n\\x41";
  ThrottleState st{"cgroup1", {ThrottleEntry{kKey, cpu(0.2), "/faultprobe/p1-2", {{"cpu", odd}}, {"8:0"}}}};
  ASSERT_TRUE(save_throttle_state(t.path("state.json"), st).ok());
  auto back = load_throttle_state(t.path("state.json"));
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->entries.size(), 1u);
  EXPECT_EQ(back->entries[0].original.at("cpu"), odd);
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
