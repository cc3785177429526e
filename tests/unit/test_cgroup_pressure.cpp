// host_pressure rules on one cgroup v2 group's PSI: the `cgroup` key and its
// mistakes, group membership by path, the set of groups the rules name (a
// fake v2 tree in a temp dir), and the detector taking its culprit and
// victims among the group's members only.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "detect/cgroup_pressure.h"
#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

TEST(CgroupPressureConfig, TheKeyAndItsMistakes) {
  auto c = parse_config(R"(
[[rule]]
name = "db_memory"
class = "host_pressure"
resource = "memory"
kind = "full"
cgroup = "/system.slice/db.service"
threshold = 10
)",
                        "t.toml");
  ASSERT_TRUE(c) << c.error().message;
  bool found = false;
  for (const RuleConfig& r : c->rules)
    if (r.name == "db_memory") {
      found = true;
      EXPECT_EQ(r.pressure.cgroup, "/system.slice/db.service");
      EXPECT_EQ(r.pressure.kind, PressureRule::Kind::Full);
    }
  EXPECT_TRUE(found);
  for (const char* bad : {"\"system.slice\"", "\"/a/../b\"", "\"/a//b\"", "\"/a/./b\"", "\"\"", "3", "\"/a\\u0001\""}) {
    auto e = parse_config(std::string("[rules.host_pressure]\ncgroup = ") + bad + "\n", "t.toml");
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().message.find("t.toml:2:10: \"cgroup\" must be a cgroup v2 path"), std::string::npos)
        << e.error().message;
  }
  auto used = parse_config("[rules.host_pressure]\nkind = \"used\"\ncgroup = \"/x\"\n", "t.toml");
  ASSERT_FALSE(used);
  EXPECT_NE(used.error().message.find("utilisation (kind \"used\") is the host's only"), std::string::npos)
      << used.error().message;
  auto elsewhere = parse_config("[rules.cpu_runaway]\ncgroup = \"/x\"\n", "t.toml");
  ASSERT_FALSE(elsewhere);
  EXPECT_NE(elsewhere.error().message.find("\"cgroup\" is a host_pressure rule's"), std::string::npos)
      << elsewhere.error().message;
}

TEST(CgroupPressure, MembershipIsByWholeSteps) {
  EXPECT_TRUE(in_cgroup("/a/b", "/a/b"));
  EXPECT_TRUE(in_cgroup("/a/b/c", "/a/b"));
  EXPECT_FALSE(in_cgroup("/a/bc", "/a/b"));
  EXPECT_FALSE(in_cgroup("/a", "/a/b"));
  EXPECT_TRUE(in_cgroup("/anything", "/"));
}

struct V2Tree {
  V2Tree() {
    char tmpl[] = "/tmp/fp_cgpsi_XXXXXX";
    root = mkdtemp(tmpl);
  }
  ~V2Tree() { std::filesystem::remove_all(root); }
  void pressure(const std::string& group, const std::string& res, double some, uint64_t total) const {
    std::filesystem::create_directories(root + group);
    std::ofstream(root + group + "/" + res + ".pressure")
        << "some avg10=" << some << " avg60=0.00 avg300=0.00 total=" << total << "\n"
        << "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
  }
  std::string root;
};

RuleConfig group_rule(const std::string& name, const std::string& group, bool enabled = true) {
  RuleConfig r = rule(FaultClass::HostPressure, 20, 10, 10s);
  r.name = name;
  r.enabled = enabled;
  r.pressure = {PressureRule::Resource::Memory, PressureRule::Kind::Some, group};
  return r;
}

TEST(CgroupPressure, TheSetReadsTheGroupsTheEnabledRulesName) {
  V2Tree t;
  t.pressure("/db.slice", "memory", 0, 0);
  CgroupPressureSet set(t.root);
  set.set_rules({group_rule("db", "/db.slice"), group_rule("off", "/web.slice", false), group_rule("host", "")});
  // Arming wrote a trigger into the fake (regular) file: its reading comes after.
  t.pressure("/db.slice", "memory", 31.5, 1000);
  set.read(1);
  ASSERT_NE(set.of("/db.slice"), nullptr);
  EXPECT_DOUBLE_EQ(set.of("/db.slice")->of(PsiResource::Memory).psi.some.avg10, 31.5);
  EXPECT_FALSE(set.of("/db.slice")->of(PsiResource::Io).ok);  // absent file: that resource unknown
  EXPECT_EQ(set.of("/web.slice"), nullptr);  // its rule is off
  EXPECT_TRUE(set.status().contains("/db.slice"));
  // A reload that names another group drops the first.
  set.set_rules({group_rule("web", "/web.slice")});
  t.pressure("/web.slice", "memory", 2, 10);
  set.read(2);
  EXPECT_EQ(set.of("/db.slice"), nullptr);
  ASSERT_NE(set.of("/web.slice"), nullptr);
  EXPECT_DOUBLE_EQ(set.of("/web.slice")->of(PsiResource::Memory).psi.some.avg10, 2);
  // A fd that is not one of the set's triggers is not the set's to handle.
  EXPECT_FALSE(set.fired(-5, false));
  // No v2 mount: the rule sees nothing.
  CgroupPressureSet none("");
  none.set_rules({group_rule("db", "/db.slice")});
  none.read(1);
  EXPECT_EQ(none.of("/db.slice"), nullptr);
}

class FakeGroups : public CgroupPressureSource {
 public:
  const HostPressure* of(const std::string& path) const override {
    auto it = by_path.find(path);
    return it == by_path.end() ? nullptr : &it->second;
  }
  std::map<std::string, HostPressure> by_path;
};

HostPressure memory_some(double avg10) {
  HostPressure p;
  ResourcePressure& m = p.psi[static_cast<size_t>(PsiResource::Memory)];
  m.ok = true;
  m.psi.some.avg10 = avg10;
  return p;
}

// The host's largest faulter is outside the group: the group's own is named,
// and only members are its victims.
TEST(CgroupPressureDetector, CulpritAndVictimsAreTheGroupsMembers) {
  Sim s;
  FakeGroups groups;
  groups.by_path["/db.slice"] = memory_some(40);
  HostPressure host = memory_some(0);  // the host as a whole is fine
  s.world.pressure = &host;
  s.world.cgroup_pressure = &groups;
  s.add(make_host_pressure(group_rule("db_memory", "/db.slice")));
  s.spawn(100, "builder");   // host-wide top faulter, not a member
  s.spawn(200, "postgres");  // the group's faulter
  s.spawn(300, "pgworker");  // a member that stalls
  s.spawn(400, "nginx");     // stalls too, outside the group
  for (auto [pid, cg] : {std::pair{100u, "/build"}, {200u, "/db.slice"}, {300u, "/db.slice/workers"}, {400u, "/web"}}) {
    ProcInfo& i = s.infos.by_pid[pid];
    i.found = true;
    i.comm = s.proc(pid).comm;
    i.cgroup = cg;
  }
  s.set_load(100, Load{.cores = 1, .page_faults = 5000});
  s.set_load(200, Load{.cores = 0.5, .page_faults = 1000});
  s.set_load(300, Load{.cores = 0.1, .reclaim_ns = 20 * kMs});
  s.set_load(400, Load{.cores = 0.1, .reclaim_ns = 30 * kMs});
  s.run(11);
  ASSERT_EQ(s.findings.size(), 1u);
  const Finding& f = s.findings[0];
  EXPECT_EQ(f.culprit, s.key(200));
  EXPECT_EQ(f.victims, (std::vector<uint32_t>{300}));
  EXPECT_EQ(f.evidence["pressure_cgroup"], "/db.slice");
  EXPECT_DOUBLE_EQ(f.evidence["value"].get<double>(), 40);
  // The group's pressure gone (its files unreadable): nothing, whatever the host.
  groups.by_path.clear();
  host = memory_some(90);
  s.tick();
  EXPECT_TRUE(s.findings.empty());
}

// No member uses the resource: no culprit, no fault on a bystander.
TEST(CgroupPressureDetector, NoMemberNoFault) {
  Sim s;
  FakeGroups groups;
  groups.by_path["/empty.slice"] = memory_some(50);
  s.world.cgroup_pressure = &groups;
  s.add(make_host_pressure(group_rule("g", "/empty.slice")));
  s.spawn(100, "builder");
  s.infos.by_pid[100] = ProcInfo{.found = true, .comm = "builder", .cgroup = "/build"};
  s.set_load(100, Load{.cores = 1, .page_faults = 5000});
  s.run(11);
  EXPECT_TRUE(s.findings.empty());
}

}  // namespace
}  // namespace fp
