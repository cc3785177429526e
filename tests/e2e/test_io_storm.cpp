// io_storm on real programs: a buffered dd floods the disk through the page
// cache (the flusher submits its pages) while a reader's requests slow down.
// The daemon, on its built-in rules with short holds, must name dd: the
// bytes it dirtied are its own, whoever writes them back.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "e2e_fixture.h"
#include "services.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;

namespace {

const std::string kStormRules = R"(
sample_interval = "100ms"
[rules.anomaly]
enabled = false
[rules.io_storm]
window = "3s"
for = "1s"
clear = "2s"
)";

// A memory cgroup of the test's own (v1 memory.limit_in_bytes, or v2
// memory.max), removed at the end.
struct MemoryCgroup {
  explicit MemoryCgroup(uint64_t limit) {
    bool v1 = std::filesystem::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    dir = (v1 ? "/sys/fs/cgroup/memory/" : "/sys/fs/cgroup/") + std::string("fp_e2e_storm_") +
          std::to_string(getpid());
    std::filesystem::create_directory(dir);
    std::ofstream(dir + (v1 ? "/memory.limit_in_bytes" : "/memory.max")) << limit;
  }
  ~MemoryCgroup() { rmdir(dir.c_str()); }
  std::string dir;
};

// One 1 MiB O_DIRECT read of a random place of the file every 20 ms, until
// killed: a reader whose every request goes to the disk.
const char* kReader = R"(
import mmap, os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
blocks = os.fstat(fd).st_size >> 20
buf = mmap.mmap(-1, 1 << 20)
while True:
    os.preadv(fd, [buf], random.randrange(blocks) << 20)
    time.sleep(0.02)
)";

}  // namespace

TEST(E2E, IoStormNamesABufferedDd) {
  const std::string dir = io_dir(), tag = std::to_string(getpid());
  const std::string readfile = dir + "/fp_e2e_storm_read_" + tag, stormfile = dir + "/fp_e2e_storm_write_" + tag;
  const std::string logs = temp_dir();
  // The reader's file, straight to the disk (nothing of it in the page cache).
  std::string out;
  ASSERT_EQ(run_capture({"/bin/dd", "if=/dev/zero", "of=" + readfile, "bs=1M", "count=256", "oflag=direct",
                         "status=none"},
                        &out, 60s),
            0);
  Daemon d(kStormRules);
  ASSERT_TRUE(d.ready());
  {
    ChildProcess reader({"/usr/bin/python3", "-c", kReader, readfile}, logs + "/reader.log");
    // dd writes through the page cache of a 256 MiB memory cgroup: it runs at
    // the speed its pages are written back and dirties no more than that.
    MemoryCgroup cg(256u << 20);
    ChildProcess dd({"/bin/sh", "-c",
                     "echo $$ > " + cg.dir + "/cgroup.procs && exec dd if=/dev/zero of=" + stormfile +
                         " bs=1M count=8000 status=none"},
                    logs + "/dd.log");
    // A checkpointer forcing what is dirty out (sync -f: data-integrity
    // writeback, which the kernel does not throttle as it does background
    // writeback), as databases and editors do: the reader's requests now
    // queue behind the flusher's.
    ChildProcess syncer({"/bin/sh", "-c", "while :; do sync -f " + dir + "; sleep 0.05; done"}, logs + "/sync.log");
    const uint32_t dd_pid = uint32_t(dd.pid()), reader_pid = uint32_t(reader.pid());
    auto f = d.wait_fault("io_storm", dd_pid, 30s);
    ASSERT_TRUE(f) << describe(d.records());
    RecordProperty("fault", f->dump());
    EXPECT_EQ((*f)["comm"], "dd");
    EXPECT_TRUE(has_victim(*f, reader_pid)) << f->dump();
    const json& ev = (*f)["evidence"];
    // buffered: it dirtied the bytes, the flusher submitted them
    EXPECT_GT(ev["culprit_write_bytes"].get<uint64_t>(), 0u) << ev.dump();
    EXPECT_LT(ev["culprit_submitted_bytes"].get<uint64_t>(), ev["culprit_write_bytes"].get<uint64_t>() / 10)
        << ev.dump();
    syncer.stop();
    dd.stop();
    reader.stop();
    EXPECT_TRUE(d.wait_resolved("io_storm", dd_pid, 15s)) << describe(d.records());
  }
  std::filesystem::remove(readfile);
  std::filesystem::remove(stormfile);
}
