// The cgroup v1 and v2 throttle backends on a fake cgroupfs that keeps the
// kernel's rules (fake_cgroupfs.h): a throttle stays in place (its own
// cgroup when alone there, a child of it when shared, v2's leaf when shared
// under the no-internal-process rule), per v1 hierarchy; raises no limit;
// refuses a delegated subtree; and its undo restores the old values, the
// memberships and the controllers, also from a restarted daemon.
#include "act/cgroup_throttle.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>

#include "act/spawn.h"
#include "act/throttle_state.h"
#include "fake_cgroupfs.h"
#include "fake_tree.h"

namespace fp {
namespace {

using test::FakeCgroupFs;
using test::FakeTree;
using Pids = std::set<pid_t>;

constexpr ProcKey kKey{123, 456};
constexpr const char* kOwn = "faultprobe-p123-456";

ThrottleLimits cpu(double s) {
  ThrottleLimits l;
  l.cpu_share = s;
  return l;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A fake cgroupfs with the given hierarchy roots (relative to the tree).
class Fixture : public ::testing::Test {
 protected:
  void init(std::vector<std::string> roots, std::set<std::string> v2) {
    std::vector<std::string> abs;
    std::set<std::string> abs2;
    for (const auto& r : roots) {
      t.put(r + "/cgroup.procs", "");
      abs.push_back(t.path(r));
      if (v2.count(r)) abs2.insert(t.path(r));
    }
    fs = std::make_unique<FakeCgroupFs>(abs, abs2);
  }
  // A group with these processes and control files, as the kernel has it.
  void group(const std::string& rel, const Pids& pids, const std::map<std::string, std::string>& files = {}) {
    std::string text;
    for (pid_t p : pids) text += std::to_string(p) + "\n";
    t.put(rel + "/cgroup.procs", text);
    for (const auto& [f, v] : files) t.put(rel + "/" + f, v);
  }
  Pids in(const std::string& rel) {
    auto v = fs->members(t.path(rel));
    return Pids(v.begin(), v.end());
  }
  CgroupThrottleEnv env(const std::string& state = "") { return CgroupThrottleEnv{t.path("proc"), state, fs.get()}; }

  FakeTree t;
  std::unique_ptr<FakeCgroupFs> fs;
};

// ---- cgroup v1 ----

class V1 : public Fixture {
 protected:
  void SetUp() override {
    init({"cpu", "memory", "blkio", "pids"}, {});
    for (const char* f : {"cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us"}) t.put(f, "");
    t.put("cpu/cpu.cfs_quota_us", "-1\n");
    t.put("cpu/cpu.cfs_period_us", "100000\n");
    // cpu and cpuacct co-mounted, as on many hosts.
    v1 = {{"cpu", t.path("cpu")},     {"cpuacct", t.path("cpu")}, {"memory", t.path("memory")},
          {"blkio", t.path("blkio")}, {"pids", t.path("pids")},   {"name=systemd", t.path("systemd")}};
  }
  std::unique_ptr<CgroupV1Throttle> make(const std::string& state = "") {
    auto b = std::make_unique<CgroupV1Throttle>(v1, env(state));
    b->set_io_devices({"254:0"});
    return b;
  }
  std::map<std::string, std::string> v1;
};

TEST_F(V1, AloneInItsCgroupTheLimitGoesThereAndTheOldValuesComeBack) {
  group("cpu/app", {123}, {{"cpu.cfs_quota_us", "-1\n"}, {"cpu.cfs_period_us", "100000\n"}});
  t.put("proc/123/cgroup", "2:cpu,cpuacct:/app\n");
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "cpu: cpu.cfs_period_us=100000, cpu.cfs_quota_us=20000 in /app (its own cgroup, where it is alone)");
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_quota_us"), "20000");
  EXPECT_EQ(in("cpu/app"), Pids{123});
  EXPECT_TRUE(fs->subdirs(t.path("cpu/app")).empty());
  EXPECT_EQ(fs->moves, 0);
  EXPECT_TRUE(b->throttled(kKey));
  EXPECT_STREQ(b->name(), "cgroup1");

  auto rel = b->release(kKey);
  ASSERT_TRUE(rel.ok()) << rel.error().message;
  EXPECT_EQ(*rel, "cpu: restored cpu.cfs_quota_us=-1, cpu.cfs_period_us=100000 in /app");
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(in("cpu/app"), Pids{123});
  EXPECT_FALSE(b->throttled(kKey));
  EXPECT_EQ(b->release(kKey).error().code, ENOENT);
}

TEST_F(V1, SharingItsCgroupItGetsAChildOfItAndComesBackWithWhatItForked) {
  group("cpu/app", {123, 124});
  t.put("proc/123/cgroup", "2:cpu,cpuacct:/app\n");
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, std::string("cpu: cpu.cfs_period_us=100000, cpu.cfs_quota_us=20000 in /app/") + kOwn +
                    " (a new child of /app, which it shares with 1 other process)");
  EXPECT_EQ(in("cpu/app"), Pids{124});
  EXPECT_EQ(in(std::string("cpu/app/") + kOwn), Pids{123});
  EXPECT_EQ(t.get(std::string("cpu/app/") + kOwn + "/cpu.cfs_quota_us"), "20000");
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_quota_us"), "<missing>");  // its cgroup's own values untouched

  fs->add(125, t.path(std::string("cpu/app/") + kOwn));  // it forked
  auto rel = b->release(kKey);
  ASSERT_TRUE(rel.ok()) << rel.error().message;
  EXPECT_EQ(*rel, std::string("cpu: moved back to /app, removed /app/") + kOwn);
  EXPECT_EQ(in("cpu/app"), (Pids{123, 124, 125}));
  EXPECT_FALSE(t.exists(std::string("cpu/app/") + kOwn));
}

TEST_F(V1, EachHierarchyWithItsOwnPath) {
  group("cpu/user.slice", {123, 200});
  group("memory/mem", {123},
        {{"memory.limit_in_bytes", "9223372036854771712\n"}, {"memory.soft_limit_in_bytes", "9223372036854771712\n"}});
  group("blkio", {123, 1});
  group("pids/p", {123, 201}, {{"pids.max", "max\n"}});
  t.put("proc/123/cgroup",
        "5:pids:/p\n4:blkio:/\n3:memory:/mem\n2:cpu,cpuacct:/user.slice\n1:name=systemd:/sd\n0::/\n");
  auto b = make();
  ThrottleLimits l = cpu(2.5);
  l.memory_bytes = 256ull << 20;
  l.io_bps = 1 << 20;
  l.pids = 64;
  auto r = b->throttle(kKey, l);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const std::string own = kOwn;
  EXPECT_TRUE(has(*r, "cpu: cpu.cfs_period_us=100000, cpu.cfs_quota_us=250000 in /user.slice/" + own)) << *r;
  EXPECT_TRUE(has(*r,
                  "memory: memory.soft_limit_in_bytes=268435456, memory.limit_in_bytes=268435456 in /mem (its "
                  "own cgroup, where it is alone)"))
      << *r;
  EXPECT_TRUE(has(*r,
                  "blkio: blkio.throttle.read_bps_device=254:0 1048576, blkio.throttle.write_bps_device=254:0 "
                  "1048576 in /" +
                      own + " (a new group below the root, where it was)"))
      << *r;
  EXPECT_TRUE(has(*r, "pids: pids.max=64 in /p/" + own + " (a new child of /p")) << *r;
  EXPECT_EQ(in("cpu/user.slice/" + own), Pids{123});
  EXPECT_EQ(in("memory/mem"), Pids{123});
  EXPECT_EQ(t.get("memory/mem/memory.limit_in_bytes"), "268435456");
  EXPECT_EQ(in("blkio/" + own), Pids{123});
  EXPECT_EQ(t.get("blkio/" + own + "/blkio.throttle.read_bps_device"), "254:0 1048576\n");
  EXPECT_EQ(in("pids/p/" + own), Pids{123});
  EXPECT_EQ(t.get("pids/p/" + own + "/pids.max"), "64");

  ASSERT_TRUE(b->release(kKey).ok());
  EXPECT_EQ(in("cpu/user.slice"), (Pids{123, 200}));
  EXPECT_EQ(in("memory/mem"), Pids{123});
  EXPECT_EQ(t.get("memory/mem/memory.limit_in_bytes"), "9223372036854771712");
  EXPECT_EQ(t.get("memory/mem/memory.soft_limit_in_bytes"), "9223372036854771712");
  EXPECT_EQ(in("blkio"), (Pids{1, 123}));
  EXPECT_EQ(in("pids/p"), (Pids{123, 201}));
  for (const char* m : {"cpu/user.slice/", "blkio/", "pids/p/"}) EXPECT_FALSE(t.exists(m + own)) << m;
}

TEST_F(V1, NoLimitIsRaised) {
  // Its own cgroup already allows less than the throttle would.
  group("cpu/app", {123}, {{"cpu.cfs_quota_us", "10000\n"}, {"cpu.cfs_period_us", "100000\n"}});
  t.put("proc/123/cgroup", "2:cpu:/app\n");
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "cpu: cpu already at or below the limit in /app (its own cgroup, where it is alone)");
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_quota_us"), "10000\n");
  ASSERT_TRUE(b->release(kKey).ok());
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_quota_us"), "10000\n");

  // A parent allows less: v1 would refuse a child's larger quota (EINVAL).
  group("cpu/slice", {}, {{"cpu.cfs_quota_us", "10000\n"}, {"cpu.cfs_period_us", "100000\n"}});
  group("cpu/slice/app", {124, 125});
  t.put("proc/124/cgroup", "2:cpu:/slice/app\n");
  auto r2 = b->throttle(ProcKey{124, 1}, cpu(0.2));
  ASSERT_TRUE(r2.ok()) << r2.error().message;
  EXPECT_TRUE(has(*r2, "cpu already at or below the limit in /slice/app/faultprobe-p124-1")) << *r2;
  EXPECT_EQ(t.get("cpu/slice/app/faultprobe-p124-1/cpu.cfs_quota_us"), "<missing>");

  // pids and memory limits are hierarchical: one above that is lower binds already.
  group("pids/slice", {}, {{"pids.max", "20\n"}});
  group("pids/slice/app", {126, 127}, {{"pids.max", "max\n"}});
  group("memory/slice", {}, {{"memory.limit_in_bytes", "1048576\n"}});
  group("memory/slice/app", {126, 127});
  t.put("proc/126/cgroup", "4:pids:/slice/app\n3:memory:/slice/app\n");
  ThrottleLimits l;
  l.pids = 1000;
  l.memory_bytes = 256ull << 20;
  auto r3 = b->throttle(ProcKey{126, 1}, l);
  ASSERT_TRUE(r3.ok()) << r3.error().message;
  EXPECT_TRUE(has(*r3, "memory: memory already at or below the limit in /slice/app/faultprobe-p126-1")) << *r3;
  EXPECT_TRUE(has(*r3, "pids: pids already at or below the limit in /slice/app/faultprobe-p126-1")) << *r3;
  EXPECT_EQ(in("pids/slice/app/faultprobe-p126-1"), Pids{126});  // still below its own group
  ThrottleLimits tight;
  tight.pids = 10;
  ASSERT_TRUE(b->throttle(ProcKey{126, 1}, tight).ok());
  EXPECT_EQ(t.get("pids/slice/app/faultprobe-p126-1/pids.max"), "10");
}

TEST_F(V1, AnOriginalCgroupRemovedMeanwhile) {
  // Alone in its cgroup; it exits and its cgroup is removed: nothing to restore.
  group("memory/mem", {123}, {{"memory.limit_in_bytes", "-1\n"}, {"memory.soft_limit_in_bytes", "-1\n"}});
  t.put("proc/123/cgroup", "3:memory:/mem\n");
  auto b = make();
  ThrottleLimits l;
  l.memory_bytes = 1 << 20;
  ASSERT_TRUE(b->throttle(kKey, l).ok());
  fs->exit(123);
  std::filesystem::remove_all(t.path("memory/mem"));
  auto rel = b->release(kKey);
  ASSERT_TRUE(rel.ok()) << rel.error().message;
  EXPECT_EQ(*rel, "memory: /mem was removed meanwhile: nothing to restore");
  EXPECT_FALSE(t.exists("memory/mem"));  // not recreated by a write
  EXPECT_FALSE(b->throttled(kKey));
}

TEST_F(V1, APreviousDaemonsGroupAtTheRootGoesBackToTheNearestAncestorLeft) {
  // The previous design's state: moved to <root>/faultprobe/p123-456, from a
  // scope that has been removed since.
  std::string state = t.path("run/throttles.json");
  t.put("run/throttles.json", R"({"backend": "cgroup1", "throttles": [{"tgid": 123, "start_ns": 456,
      "limits": {"cpu_share": 0.2}, "group": "/faultprobe/p123-456",
      "original": {"cpu": "/user.slice/gone.scope"}, "io_devices": []}]})");
  group("cpu/faultprobe/p123-456", {123});
  group("cpu/faultprobe/p999-1", {});  // an empty leftover
  group("cpu/user.slice", {});
  auto b = make(state);
  ASSERT_TRUE(b->throttled(kKey));
  EXPECT_FALSE(t.exists("cpu/faultprobe/p999-1"));
  b->release_all();
  EXPECT_EQ(in("cpu/user.slice"), Pids{123});
  EXPECT_FALSE(t.exists("cpu/faultprobe"));
  EXPECT_TRUE(nlohmann::json::parse(t.get("run/throttles.json")).at("throttles").empty());
}

TEST_F(V1, ADelegatedSubtreeIsRefused) {
  const std::string svc = "cpu/user.slice/user-1000.slice/user@1000.service";
  group(svc + "/app.slice", {123, 124});
  t.put("proc/123/cgroup", "2:cpu:/user.slice/user-1000.slice/user@1000.service/app.slice\n");
  fs->owners[t.path(svc)] = ::geteuid() + 1000;
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EPERM);
  EXPECT_TRUE(has(r.error().message, "a cgroup subtree delegated to uid " + std::to_string(::geteuid() + 1000)))
      << r.error().message;
  EXPECT_TRUE(has(r.error().message, "(rolled back)")) << r.error().message;
  EXPECT_EQ(in(svc + "/app.slice"), (Pids{123, 124}));
  EXPECT_TRUE(fs->subdirs(t.path(svc + "/app.slice")).empty());
  EXPECT_FALSE(b->throttled(kKey));

  // Its cgroup.procs alone given away is enough.
  fs->owners.clear();
  fs->owners[t.path(svc + "/app.slice/cgroup.procs")] = ::geteuid() + 1000;
  EXPECT_EQ(b->throttle(kKey, cpu(0.2)).error().code, EPERM);
}

TEST_F(V1, ARestartedDaemonKeepsTheLiveThrottlesAndUndoesTheRest) {
  std::string state = t.path("run/faultprobe/throttles.json");
  group("cpu/a", {123}, {{"cpu.cfs_quota_us", "-1\n"}, {"cpu.cfs_period_us", "100000\n"}});
  group("cpu/b", {124, 125});
  t.put("proc/123/cgroup", "2:cpu:/a\n");
  t.put("proc/124/cgroup", "2:cpu:/b\n");
  const ProcKey other{124, 789};
  {
    auto a = make(state);
    ASSERT_TRUE(a->throttle(kKey, cpu(0.2)).ok());
    ASSERT_TRUE(a->throttle(other, cpu(0.1)).ok());
    auto saved = load_throttle_state(state);
    ASSERT_TRUE(saved.ok()) << saved.error().message;
    EXPECT_EQ(saved->backend, "cgroup1");
    ASSERT_EQ(saved->entries.size(), 2u);
    const ThrottlePlace& p = saved->entries[0].places.at(0);
    EXPECT_EQ(p.mode, ThrottlePlace::Mode::Limit);
    EXPECT_EQ(p.group, "/a");
    EXPECT_EQ(p.saved, (std::vector<SavedValue>{{"cpu", "cpu.cfs_period_us", "", "100000"},
                                                {"cpu", "cpu.cfs_quota_us", "", "-1"}}));
    EXPECT_EQ(saved->entries[1].places.at(0).mode, ThrottlePlace::Mode::Child);
    EXPECT_FALSE(t.exists("run/faultprobe/throttles.json.tmp"));
    // The daemon dies here without releasing anything.
  }
  fs->exit(124);
  auto b = make(state);
  EXPECT_TRUE(b->throttled(kKey));
  EXPECT_FALSE(b->throttled(other));
  EXPECT_FALSE(t.exists("cpu/b/faultprobe-p124-789"));
  EXPECT_EQ(in("cpu/b"), Pids{125});
  EXPECT_EQ(load_throttle_state(state)->entries.size(), 1u);

  ASSERT_TRUE(b->release(kKey).ok());
  EXPECT_EQ(t.get("cpu/a/cpu.cfs_quota_us"), "-1");
  EXPECT_TRUE(load_throttle_state(state)->entries.empty());
}

TEST_F(V1, ASecondThrottleChangesLimitsAndLiftsTheDroppedOnes) {
  group("cpu/app", {123}, {{"cpu.cfs_quota_us", "-1\n"}, {"cpu.cfs_period_us", "100000\n"}});
  group("pids/app", {123}, {{"pids.max", "max\n"}});
  t.put("proc/123/cgroup", "4:pids:/app\n2:cpu:/app\n");
  auto b = make();
  ASSERT_TRUE(b->throttle(kKey, cpu(0.2)).ok());
  ThrottleLimits l = cpu(0.5);  // looser than before, still below what its cgroup had
  l.pids = 64;
  auto r = b->throttle(kKey, l);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(t.get("pids/app/pids.max"), "64");
  ThrottleLimits pids_only;
  pids_only.pids = 32;
  r = b->throttle(kKey, pids_only);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_quota_us"), "-1");  // lifted: the old value
  EXPECT_EQ(t.get("pids/app/pids.max"), "32");
  ASSERT_TRUE(b->release(kKey).ok());
  EXPECT_EQ(t.get("pids/app/pids.max"), "max");
}

TEST_F(V1, AFailedWriteRollsAFreshThrottleBack) {
  group("cpu/app", {123, 124});
  t.put("proc/123/cgroup", "2:cpu:/app\n");
  // A directory where the quota file should be: the write fails (EISDIR).
  t.mkdir(std::string("cpu/app/") + kOwn + "/cpu.cfs_quota_us");
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EISDIR);
  EXPECT_TRUE(has(r.error().message, "(rolled back)")) << r.error().message;
  EXPECT_EQ(in("cpu/app"), (Pids{123, 124}));
  EXPECT_FALSE(b->throttled(kKey));
}

TEST_F(V1, AProcessGoneOrAHierarchyMissing) {
  auto b = make();
  auto r = b->throttle(ProcKey{999, 1}, cpu(0.2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ENOENT);
  EXPECT_TRUE(has(r.error().message, "proc/999/cgroup")) << r.error().message;
  EXPECT_FALSE(b->throttled(ProcKey{999, 1}));

  v1.erase("blkio");
  auto c = make();
  ThrottleLimits l;
  l.io_bps = 1000;
  std::string why;
  EXPECT_FALSE(c->supports(l, &why));
  EXPECT_EQ(why, "cgroup v1 has no blkio hierarchy mounted");
  EXPECT_EQ(c->throttle(kKey, l).error().code, EOPNOTSUPP);
}

// Defence in depth: what an owner of the cgroup undid is put back once; the
// second time it is an evasion (and put back again).
TEST_F(V1, AQuotaUndoneBehindItsBackIsPutBackOnceThenItIsAnEvasion) {
  const pid_t me = ::getpid();  // a live process: the check skips the gone ones
  const std::string pid = std::to_string(me);
  const ProcKey key{uint32_t(me), process_start_ns(me).value()};
  std::ifstream stat("/proc/self/stat");
  t.put("proc/" + pid + "/stat", std::string(std::istreambuf_iterator<char>(stat), {}));
  group("cpu/app", {me}, {{"cpu.cfs_quota_us", "-1\n"}, {"cpu.cfs_period_us", "100000\n"}});
  t.put("proc/" + pid + "/cgroup", "2:cpu,cpuacct:/app\n");
  auto b = make();
  ASSERT_TRUE(b->throttle(key, cpu(0.2)).ok());
  ASSERT_LE(b->next_deadline_ns(), 1000u);  // looked at from the first tick on
  b->tick(1000);
  EXPECT_TRUE(b->take_evasions().empty());
  EXPECT_EQ(b->reapplied(), 0u);
  EXPECT_EQ(b->next_deadline_ns(), 1000u + 1'000'000'000u);

  t.put("cpu/app/cpu.cfs_quota_us", "-1\n");
  b->tick(2'000'000'000);
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_quota_us"), "20000");
  EXPECT_EQ(b->reapplied(), 1u);
  EXPECT_TRUE(b->take_evasions().empty());

  t.put("cpu/app/cpu.cfs_quota_us", "-1\n");
  b->tick(3'000'000'000);
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_quota_us"), "20000");
  auto ev = b->take_evasions();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].key, key);
  EXPECT_TRUE(has(ev[0].detail, "cpu.cfs_quota_us in /app holds \"-1\", not \"20000\"")) << ev[0].detail;

  // Moved out of its group: moved back.
  group("cpu/elsewhere", {});
  ASSERT_TRUE(fs->move(me, t.path("cpu/elsewhere")).ok());
  t.put("proc/" + pid + "/cgroup", "2:cpu,cpuacct:/elsewhere\n");
  b->tick(4'000'000'000);
  EXPECT_EQ(in("cpu/app"), Pids{me});
  ev = b->take_evasions();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_TRUE(has(ev[0].detail, "it left /app for /elsewhere")) << ev[0].detail;
  ASSERT_TRUE(b->release(key).ok());
  EXPECT_EQ(t.get("cpu/app/cpu.cfs_quota_us"), "-1");
}

// ---- cgroup v2 ----

class V2 : public Fixture {
 protected:
  void SetUp() override {
    init({"cg2"}, {"cg2"});
    t.put("cg2/cgroup.controllers", "cpuset cpu io memory pids\n");
    t.put("cg2/cgroup.subtree_control", "cpu io memory pids\n");  // as systemd leaves it
    group("cg2/system.slice", {}, {{"cgroup.subtree_control", "cpu io memory pids\n"}});
  }
  std::unique_ptr<CgroupV2Throttle> make(const std::string& state = "") {
    auto b = std::make_unique<CgroupV2Throttle>(
        t.path("cg2"), std::vector<std::string>{"cpuset", "cpu", "io", "memory", "pids"}, env(state));
    b->set_io_devices({"254:0"});
    return b;
  }
  // A cgroup.subtree_control's controllers, without the newline.
  std::string sc(const std::string& rel) {
    std::string s = t.get(rel + "/cgroup.subtree_control");
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
};

TEST_F(V2, AloneInItsCgroupTheLimitGoesThere) {
  group("cg2/system.slice/app.service", {123}, {{"cpu.max", "max 100000\n"}, {"pids.max", "max\n"}});
  t.put("proc/123/cgroup", "0::/system.slice/app.service\n");
  auto b = make();
  ThrottleLimits l = cpu(0.2);
  l.pids = 50;
  auto r = b->throttle(kKey, l);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "cpu.max=20000 100000, pids.max=50 in /system.slice/app.service (its own cgroup, where it is alone)");
  EXPECT_EQ(in("cg2/system.slice/app.service"), Pids{123});
  EXPECT_STREQ(b->name(), "cgroup2");
  ASSERT_TRUE(b->release(kKey).ok());
  EXPECT_EQ(t.get("cg2/system.slice/app.service/cpu.max"), "max 100000");
  EXPECT_EQ(t.get("cg2/system.slice/app.service/pids.max"), "max");
}

TEST_F(V2, SharingItsCgroupEveryoneMovesToLeavesOfIt) {
  const std::string svc = "cg2/system.slice/app.service", own = svc + "/" + kOwn, leaf = svc + "/faultprobe-leaf";
  group(svc, {123, 124, 125});
  t.put("proc/123/cgroup", "0::/system.slice/app.service\n");
  // 124 forks while the cgroup is being emptied: 126 is born in it.
  bool forked = false;
  fs->after_move = [&](pid_t pid, const std::string& dir) {
    if (pid == 124 && !forked) {
      forked = true;
      fs->add(126, t.path(svc));
    }
    (void)dir;
  };
  auto b = make();
  ThrottleLimits l = cpu(0.2);
  l.pids = 50;
  auto r = b->throttle(kKey, l);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "cpu.max=20000 100000, pids.max=50 in /system.slice/app.service/" + std::string(kOwn) +
                    " (its cgroup /system.slice/app.service held 3 other processes, moved to "
                    "/system.slice/app.service/faultprobe-leaf: cgroup v2 hands controllers to the children only "
                    "of a group without processes)");
  EXPECT_TRUE(in(svc).empty());
  EXPECT_EQ(in(own), Pids{123});
  EXPECT_EQ(in(leaf), (Pids{124, 125, 126}));
  EXPECT_EQ(sc(svc), "cpu pids");
  EXPECT_EQ(t.get(own + "/cpu.max"), "20000 100000");

  auto rel = b->release(kKey);
  ASSERT_TRUE(rel.ok()) << rel.error().message;
  EXPECT_EQ(in(svc), (Pids{123, 124, 125, 126}));
  EXPECT_EQ(sc(svc), "");
  EXPECT_FALSE(t.exists(own));
  EXPECT_FALSE(t.exists(leaf));
  EXPECT_TRUE(has(*rel, "moved back to /system.slice/app.service with the processes of")) << *rel;
}

TEST_F(V2, ControllersAreEnabledOnTheWayDownAndDisabledWhenNoThrottleNeedsThem) {
  t.put("cg2/cgroup.subtree_control", "");
  t.put("cg2/system.slice/cgroup.subtree_control", "");
  group("cg2/a", {}, {{"cgroup.subtree_control", ""}});
  group("cg2/a/b", {123});
  group("cg2/a/c", {124});
  t.put("proc/123/cgroup", "0::/a/b\n");
  t.put("proc/124/cgroup", "0::/a/c\n");
  auto b = make();
  ASSERT_TRUE(b->throttle(kKey, cpu(0.2)).ok());
  EXPECT_EQ(sc("cg2"), "cpu");
  EXPECT_EQ(sc("cg2/a"), "cpu");
  EXPECT_EQ(t.get("cg2/a/b/cpu.max"), "20000 100000");
  ASSERT_TRUE(b->throttle(ProcKey{124, 1}, cpu(0.3)).ok());
  // The first one goes: the second still needs cpu in / and /a.
  auto rel = b->release(kKey);
  ASSERT_TRUE(rel.ok()) << rel.error().message;
  EXPECT_EQ(sc("cg2/a"), "cpu");
  EXPECT_EQ(t.get("cg2/a/c/cpu.max"), "30000 100000");
  rel = b->release(ProcKey{124, 1});
  ASSERT_TRUE(rel.ok()) << rel.error().message;
  EXPECT_TRUE(has(*rel, "disabled cpu in /a, disabled cpu in /")) << *rel;
  EXPECT_EQ(sc("cg2/a"), "");
  EXPECT_EQ(sc("cg2"), "");
}

TEST_F(V2, AProcessOfTheRootGetsAGroupBelowIt) {
  group("cg2", {1, 123});
  t.put("proc/123/cgroup", "0::/\n");
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, std::string("cpu.max=20000 100000 in /") + kOwn + " (a new group below the root, where it was)");
  EXPECT_EQ(in("cg2"), Pids{1});
  ASSERT_TRUE(b->release(kKey).ok());
  EXPECT_EQ(in("cg2"), (Pids{1, 123}));
  EXPECT_FALSE(t.exists(std::string("cg2/") + kOwn));
}

TEST_F(V2, TwoThrottlesInOneCgroupShareItsLeaf) {
  const std::string svc = "cg2/system.slice/app.service", leaf = svc + "/faultprobe-leaf";
  group(svc, {123, 124, 125});
  t.put("proc/123/cgroup", "0::/system.slice/app.service\n");
  t.put("proc/124/cgroup", "0::/system.slice/app.service/faultprobe-leaf\n");
  auto b = make();
  ASSERT_TRUE(b->throttle(kKey, cpu(0.2)).ok());
  auto r = b->throttle(ProcKey{124, 1}, cpu(0.3));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(has(*r, "beside /system.slice/app.service/faultprobe-leaf")) << *r;
  EXPECT_EQ(in(svc + "/faultprobe-p124-1"), Pids{124});
  EXPECT_EQ(in(leaf), Pids{125});
  // The first goes back among its companions; the cgroup stays split for the second.
  ASSERT_TRUE(b->release(kKey).ok());
  EXPECT_EQ(in(leaf), (Pids{123, 125}));
  EXPECT_EQ(sc(svc), "cpu");
  ASSERT_TRUE(b->release(ProcKey{124, 1}).ok());
  EXPECT_EQ(in(svc), (Pids{123, 124, 125}));
  EXPECT_EQ(sc(svc), "");
  EXPECT_TRUE(fs->subdirs(t.path(svc)).empty());
}

TEST_F(V2, TheUserManagersSubtreeIsRefused) {
  const std::string user = "cg2/user.slice/user-1000.slice/user@1000.service";
  for (const std::string& g :
       std::vector<std::string>{"cg2/user.slice", "cg2/user.slice/user-1000.slice", user, user + "/app.slice"})
    group(g, {});
  group(user + "/app.slice/foo.service", {123});
  t.put("proc/123/cgroup", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service\n");
  fs->owners[t.path(user)] = ::geteuid() + 1000;
  auto b = make();
  auto r = b->throttle(kKey, cpu(0.2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EPERM);
  EXPECT_EQ(t.get(user + "/app.slice/foo.service/cpu.max"), "<missing>");
}

TEST_F(V2, ARestartedDaemonUndoesTheLeafOfAProcessThatExited) {
  const std::string svc = "cg2/system.slice/app.service";
  std::string state = t.path("state.json");
  group(svc, {123, 124});
  t.put("proc/123/cgroup", "0::/system.slice/app.service\n");
  ASSERT_TRUE(make(state)->throttle(kKey, cpu(0.2)).ok());
  auto kept = make(state);  // a restart while it lives: kept, then released
  ASSERT_TRUE(kept->throttled(kKey));
  ASSERT_TRUE(kept->release(kKey).ok());
  EXPECT_EQ(in(svc), (Pids{123, 124}));

  ASSERT_TRUE(make(state)->throttle(kKey, cpu(0.2)).ok());
  fs->exit(123);
  auto b = make(state);
  EXPECT_FALSE(b->throttled(kKey));
  EXPECT_EQ(in(svc), Pids{124});
  EXPECT_EQ(sc(svc), "");
  EXPECT_TRUE(fs->subdirs(t.path(svc)).empty());
  EXPECT_TRUE(load_throttle_state(state)->entries.empty());
}

TEST_F(V2, MissingControllerOrPathIsRefusedWithTheReason) {
  auto b = std::make_unique<CgroupV2Throttle>(t.path("cg2"), std::vector<std::string>{"cpu"}, env());
  ThrottleLimits l;
  l.memory_bytes = 1 << 20;
  std::string why;
  EXPECT_FALSE(b->supports(l, &why));
  EXPECT_EQ(why, "cgroup2 at " + t.path("cg2") + " has no memory controller (it has: cpu)");
  EXPECT_FALSE(b->throttle(kKey, l).ok());

  t.put("proc/123/cgroup", "2:cpu:/x\n");
  auto r = make()->throttle(kKey, cpu(0.2));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "no cgroup for hierarchy v2")) << r.error().message;
}

TEST_F(V2, StateOfAnotherBackendIsNotTouched) {
  std::string state = t.path("state.json");
  ThrottleEntry e{kKey, cpu(0.2), {ThrottlePlace{"cpu", ThrottlePlace::Mode::Child, "/", "/x", "", {}, {}}}, {}};
  ASSERT_TRUE(save_throttle_state(state, ThrottleState{"cgroup1", {e}}).ok());
  auto b = make(state);
  EXPECT_FALSE(b->throttled(kKey));
  EXPECT_EQ(load_throttle_state(state)->entries.size(), 1u);
}

TEST(ThrottleStateFile, RoundTripOfPlaces) {
  FakeTree t;
  ThrottlePlace leaf{"v2",
                     ThrottlePlace::Mode::Leaf,
                     "/a",
                     "/a/faultprobe-p1-2",
                     "/a/faultprobe-leaf",
                     {{"io", "io.max", "8:0", "8:0 rbps=max wbps=max"}},
                     {{"/", "io"}, {"/a", "io"}}};
  ThrottleEntry e{ProcKey{1, 2}, cpu(0.5), {leaf}, {"8:0"}};
  ASSERT_TRUE(save_throttle_state(t.path("s.json"), ThrottleState{"cgroup2", {e}}).ok());
  auto back = load_throttle_state(t.path("s.json"));
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->entries.size(), 1u);
  EXPECT_EQ(back->entries[0], e);
  t.put("bad.json", R"({"throttles": [{"tgid": 1, "start_ns": 2, "places": [{"hierarchy": "v2", "mode": "moved",
      "original": "/", "group": "/x"}]}]})");
  auto bad = load_throttle_state(t.path("bad.json"));
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(has(bad.error().message, "unknown place mode \"moved\"")) << bad.error().message;
}

// A cgroup is named by whoever created it (a delegated subtree): its path is
// bytes, and the table of throttles keeps them exactly (issue 15 item 1).
TEST(ThrottleStateFile, CgroupPathsThatAreNotUtf8RoundTrip) {
  FakeTree t;
  const std::string odd = "/user.slice/x\xff\xfey\n\\x41";
  ThrottlePlace p{"cpu", ThrottlePlace::Mode::Child, odd, odd + "/faultprobe-p1-2", "", {}, {}};
  ThrottleEntry e{ProcKey{1, 2}, cpu(0.2), {p}, {}};
  ASSERT_TRUE(save_throttle_state(t.path("s.json"), ThrottleState{"cgroup1", {e}}).ok());
  auto back = load_throttle_state(t.path("s.json"));
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->entries.size(), 1u);
  EXPECT_EQ(back->entries[0], e);
  EXPECT_EQ(back->entries[0].places[0].original, odd);
}

}  // namespace
}  // namespace fp
