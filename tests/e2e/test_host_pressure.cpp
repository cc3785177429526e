// host_pressure on real programs. A python hog maps a 400 MB file (written
// straight to the disk, none of it cached) and reads every page in a loop
// inside a 200 MB memory cgroup: its pages are reclaimed and refault at every
// pass, which the kernel counts as memory stall (/proc/pressure/memory). A
// smaller reader in the same cgroup stalls on the same refaults. (A
// re-touched anonymous buffer would be OOM-killed on a host without swap:
// file pages can be reclaimed without one.) The daemon must name the hog as
// culprit (the pages it faulted and read back in) and the reader as a
// victim; a clean spell of ordinary work raises nothing.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cgroup_sandbox.h"
#include "e2e_fixture.h"
#include "services.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;

namespace {

const std::string kPressureRules = kBase + R"(
[rules.host_pressure]
resource = "memory"
kind = "some"
threshold = 5
resolve = 1
window = "5s"
for = "2s"
clear = "3s"
)";

// Reads one byte of every page of the file, again and again; prints "ready" after the first pass.
const char* kToucher = R"(
import mmap, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
pause = float(sys.argv[2])
n = len(m)
first = True
while True:
    s = 0
    for off in range(0, n, 4096):
        s += m[off]
    if first:
        print("ready", flush=True)
        first = False
    time.sleep(pause)
)";

std::string make_file(const std::string& path, int mb) {
  std::string out;
  if (run_capture({"/bin/dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=" + std::to_string(mb), "oflag=direct",
                   "status=none"},
                  &out, 120s) != 0)
    return "dd failed: " + out;
  return "";
}

}  // namespace

TEST(E2E, HostPressureNamesAMemoryHogAndAStalledReader) {
  ASSERT_TRUE(std::filesystem::exists("/proc/pressure/memory")) << "this test needs PSI (/proc/pressure)";
  const std::string dir = io_dir(), tag = std::to_string(getpid());
  const std::string big = dir + "/fp_e2e_psi_big_" + tag, small = dir + "/fp_e2e_psi_small_" + tag;
  ASSERT_EQ(make_file(big, 400), "");
  ASSERT_EQ(make_file(small, 100), "");
  const std::string logs = temp_dir();
  Daemon d(kPressureRules);
  ASSERT_TRUE(d.ready()) << d.log();
  {
    CgroupSandbox cg("fpe2e-psi-" + tag, {"memory"});
    ASSERT_TRUE(cg.ok()) << cg.error();
    ASSERT_TRUE(cg.limit_memory(200u << 20));
    ChildProcess reader(cg.wrap({"/usr/bin/python3", "-c", kToucher, small, "0.1"}), logs + "/reader.log");
    ChildProcess hog(cg.wrap({"/usr/bin/python3", "-c", kToucher, big, "0"}), logs + "/hog.log");
    const uint32_t hog_pid = uint32_t(hog.pid()), reader_pid = uint32_t(reader.pid());
    auto f = d.wait_fault("host_pressure", hog_pid, 60s);
    ASSERT_TRUE(f) << describe(d.records()) << "\nstatus: " << d.query({{"cmd", "status"}})["status"]["pressure"].dump();
    RecordProperty("fault", f->dump());
    const json& ev = (*f)["evidence"];
    EXPECT_EQ(ev["metric"], "psi_memory_some_avg10");
    EXPECT_GE(ev["value"].get<double>(), 5.0) << ev.dump();
    EXPECT_EQ(ev["resource"], "memory_churn_pages");
    EXPECT_GT(ev["psi"]["some"]["total_us"].get<uint64_t>(), 0u);
    // The reader stalls on its refaults too.
    EXPECT_TRUE(has_victim(*f, reader_pid)) << f->dump();
    EXPECT_FALSE(has_victim(*f, hog_pid)) << f->dump();
    // The PSI triggers woke the loop (the status is rebuilt every second).
    EXPECT_TRUE(wait_for(
        [&] { return d.query({{"cmd", "status"}})["status"]["pressure"].value("trigger_wakeups", 0) > 0; }, 10s))
        << d.query({{"cmd", "status"}})["status"]["pressure"].dump();
    hog.stop();
    reader.stop();
    EXPECT_TRUE(d.wait_resolved("host_pressure", hog_pid, 60s)) << describe(d.records());
  }
  std::filesystem::remove(big);
  std::filesystem::remove(small);
}

// The stall share of the last 10 s (avg10) as the kernel reports it now.
double memory_some_avg10() {
  std::ifstream in("/proc/pressure/memory");
  std::string some, avg;
  in >> some >> avg;  // "some avg10=1.23 ..."
  return avg.rfind("avg10=", 0) == 0 ? std::stod(avg.substr(6)) : 100.0;
}

TEST(E2E, HostPressureCleanSpellRaisesNothing) {
  // A spell after a pressured one (the test above) starts when its avg10 has decayed.
  ASSERT_TRUE(wait_for([] { return memory_some_avg10() < 1.0; }, 120s)) << memory_some_avg10();
  const std::string logs = temp_dir();
  Daemon d(kPressureRules);
  ASSERT_TRUE(d.ready()) << d.log();
  // Ordinary work: a shell loop, small files written and read, processes forked.
  ChildProcess work({"/bin/sh", "-c",
                     "i=0; while [ $i -lt 100 ]; do echo $i > " + logs + "/f; cat " + logs +
                         "/f > /dev/null; ls / > /dev/null; sleep 0.05; i=$((i+1)); done"},
                    logs + "/work.log");
  ASSERT_TRUE(wait_for([&] { return !work.alive(); }, 60s));
  // PSI was read (the status shows it); nothing opened.
  json st = d.query({{"cmd", "status"}});
  EXPECT_TRUE(st["status"]["pressure"]["memory"].contains("some")) << st.dump();
  EXPECT_EQ(st["status"]["pressure"]["triggers"], 3) << st["status"]["pressure"].dump();  // one per resource, armed
  EXPECT_FALSE(first_match(d.records(), [](const json& r) { return r.value("class", "") == "host_pressure"; }))
      << describe(d.records());
}
