// host_pressure on one cgroup v2 group's own PSI (a rule with `cgroup`). The
// kernel keeps PSI per group of the v2 hierarchy whichever controllers it
// has, so on a hybrid host (v1 controllers, cgroup2 mounted beside them) a
// group made in the v2 tree reports the memory stalls of its members while a
// v1 memory cgroup limits them. The memory hog of test_host_pressure.cpp
// (re-reading a 400 MB file in a 200 MB memory cgroup) and a stalled reader
// run in the group; a second file reader runs outside it. The group's rule
// must name the hog, count the reader as its victim, and never the outsider;
// the host's own rule is off, so only the group's PSI can open the fault.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "act/cgroup.h"
#include "cgroup_sandbox.h"
#include "e2e_fixture.h"
#include "services.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;

namespace {

// Reads one byte of every page of the file, again and again.
const char* kToucher = R"(
import mmap, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
pause = float(sys.argv[2])
n = len(m)
while True:
    s = 0
    for off in range(0, n, 4096):
        s += m[off]
    time.sleep(pause)
)";

// A group in the v2 tree, removed at the end (its processes are gone by then).
struct V2Group {
  explicit V2Group(const std::string& name) {
    root = fp::detect_cgroups().v2_root;
    if (root.empty()) return;
    path = "/" + name;
    std::filesystem::create_directory(root + path);
  }
  ~V2Group() {
    if (!root.empty()) rmdir((root + path).c_str());
  }
  // argv run from inside the group.
  std::vector<std::string> wrap(const std::vector<std::string>& argv) const {
    std::vector<std::string> out = {"/bin/sh", "-c", "echo $$ > " + root + path + "/cgroup.procs && exec \"$0\" \"$@\""};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }
  std::string root, path;
};

}  // namespace

TEST(E2E, ACgroupsPressureRuleNamesItsMemberHogAndOnlyItsMembers) {
  V2Group group("fpe2e-cgpsi-" + std::to_string(getpid()));
  ASSERT_FALSE(group.root.empty()) << "this test needs a cgroup2 mount";
  ASSERT_TRUE(std::filesystem::exists(group.root + group.path + "/memory.pressure"))
      << "this test needs PSI per cgroup (" << group.root + group.path << "/memory.pressure)";
  const std::string dir = io_dir(), tag = std::to_string(getpid());
  const std::string big = dir + "/fp_e2e_cgpsi_big_" + tag, small = dir + "/fp_e2e_cgpsi_small_" + tag;
  std::string out;
  for (auto [file, mb] : {std::pair{big, 400}, {small, 100}})
    ASSERT_EQ(run_capture({"/bin/dd", "if=/dev/zero", "of=" + file, "bs=1M", "count=" + std::to_string(mb),
                           "oflag=direct", "status=none"},
                          &out, 120s),
              0)
        << out;
  const std::string logs = temp_dir();
  Daemon d(kBase + R"(
[rules.host_pressure]
enabled = false
[[rule]]
name = "group_memory"
class = "host_pressure"
resource = "memory"
kind = "some"
cgroup = ")" + group.path + R"("
threshold = 5
resolve = 1
window = "5s"
for = "2s"
clear = "3s"
)");
  ASSERT_TRUE(d.ready()) << d.log();
  {
    CgroupSandbox cg("fpe2e-cgpsi-" + tag, {"memory"});
    ASSERT_TRUE(cg.ok()) << cg.error();
    ASSERT_TRUE(cg.limit_memory(200u << 20));
    // The outsider re-reads the small file in the same memory cgroup (so it
    // stalls as much), but from outside the v2 group.
    ChildProcess outsider(cg.wrap({"/usr/bin/python3", "-c", kToucher, small, "0.1"}), logs + "/outsider.log");
    ChildProcess reader(group.wrap(cg.wrap({"/usr/bin/python3", "-c", kToucher, small, "0.1"})), logs + "/reader.log");
    ChildProcess hog(group.wrap(cg.wrap({"/usr/bin/python3", "-c", kToucher, big, "0"})), logs + "/hog.log");
    const uint32_t hog_pid = uint32_t(hog.pid()), reader_pid = uint32_t(reader.pid());
    auto f = d.wait_fault("host_pressure", hog_pid, 60s);
    ASSERT_TRUE(f) << describe(d.records()) << "\nstatus: " << d.query({{"cmd", "status"}})["status"]["pressure"].dump();
    RecordProperty("fault", f->dump());
    const json& ev = (*f)["evidence"];
    EXPECT_EQ((*f)["rule"], "group_memory");
    EXPECT_EQ(ev["pressure_cgroup"], group.path);
    EXPECT_GE(ev["value"].get<double>(), 5.0) << ev.dump();
    EXPECT_TRUE(has_victim(*f, reader_pid)) << f->dump();
    EXPECT_FALSE(has_victim(*f, uint32_t(outsider.pid()))) << f->dump();
    // The group's triggers are armed and shown.
    const json st = d.query({{"cmd", "status"}})["status"]["pressure"];
    EXPECT_TRUE(st["cgroups"].contains(group.path)) << st.dump();
    hog.stop();
    reader.stop();
    outsider.stop();
    EXPECT_TRUE(d.wait_resolved("host_pressure", hog_pid, 60s)) << describe(d.records());
  }
  std::filesystem::remove(big);
  std::filesystem::remove(small);
}
