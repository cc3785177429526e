// Hardware family: every source is optional and the probe says which ones
// this kernel has; a real failed block request (a loop device whose backing
// file is on a full tmpfs: the write fails with ENOSPC in the loop driver and
// the kernel reports block_rq_error on loopN) arrives as a disk error naming
// the device and the process that wrote.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

namespace {

bool listed(const std::string& category, const std::string& name) {
  return std::filesystem::exists("/sys/kernel/tracing/events/" + category + "/" + name) ||
         std::filesystem::exists("/sys/kernel/debug/tracing/events/" + category + "/" + name);
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[256];
  while (fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

TEST(Hardware, SourcesAreReportedAsTheKernelHasThem) {
  Probe& p = probe();  // loaded: a missing hardware source never fails the load
  auto sources = p.hardware_sources();
  ASSERT_EQ(sources.size(), 6u);
  for (const auto& s : sources) {
    auto colon = s.tracepoint.find(':');
    ASSERT_NE(colon, std::string::npos) << s.tracepoint;
    std::string category = s.tracepoint.substr(0, colon), name = s.tracepoint.substr(colon + 1);
    SCOPED_TRACE(s.name + " " + s.tracepoint + " " + s.mode + " " + s.reason);
    if (s.name == "disk" && name == "block_rq_complete") {
      EXPECT_FALSE(listed("block", "block_rq_error"));  // the fallback only where rq_error is missing
      EXPECT_TRUE(s.available);
      continue;
    }
    EXPECT_EQ(s.available, listed(category, name));
    if (!s.available) {
      EXPECT_NE(s.reason.find("no " + category + ":" + name), std::string::npos);
    }
  }
  // This host's 6.18 (and Debian's 6.1) have block_rq_error; a VM without CONFIG_X86_MCE has no mce.
  for (const auto& s : sources) {
    if (s.name == "disk") {
      EXPECT_TRUE(s.available) << s.reason;
    }
    if (s.name == "mce") {
      EXPECT_EQ(s.available, listed("mce", "mce_record")) << s.reason;
    }
  }
  // Hardware sources are not "unavailable counters" of the process view.
  for (const auto& c : p.unavailable_counters()) EXPECT_EQ(c.rfind("hw_", 0), std::string::npos) << c;
}

TEST(Hardware, FailedLoopWriteIsADiskErrorOfTheWriter) {
  probe();
  ASSERT_TRUE(listed("block", "block_rq_error")) << "this test needs block:block_rq_error";
  ASSERT_EQ(system("command -v losetup >/dev/null"), 0) << "losetup (util-linux) is needed";
  char tmpl[] = "/tmp/fp_hw_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  ASSERT_EQ(mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  std::string back = dir + "/backing";
  int bfd = open(back.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(bfd, 0);
  ASSERT_EQ(ftruncate(bfd, 64 << 20), 0);  // sparse 64 MiB on a 1 MiB tmpfs
  close(bfd);
  std::string loop = run("losetup -f --show " + back);
  struct Cleanup {
    std::string loop, dir;
    ~Cleanup() {
      if (!loop.empty()) (void)!system(("losetup -d " + loop).c_str());
      umount2(dir.c_str(), MNT_DETACH);
      rmdir(dir.c_str());
    }
  } cleanup{loop, dir};
  ASSERT_EQ(loop.rfind("/dev/loop", 0), 0u) << "losetup failed: " << loop;
  const std::string name = loop.substr(5);  // "loop0"

  reset_events();
  Child c([&] {
    int fd = open(loop.c_str(), O_WRONLY | O_DIRECT);
    if (fd < 0) return 10;
    void* buf = nullptr;
    if (posix_memalign(&buf, 4096, 1 << 20)) return 11;
    std::memset(buf, 0x5a, 1 << 20);
    for (int i = 0; i < 4; i++) (void)!write(fd, buf, 1 << 20);  // the second MiB on fails
    close(fd);
    return 0;
  });
  const uint32_t pid = uint32_t(c.pid());
  c.release();
  const HwEvent* found = nullptr;
  bool ok = wait_until(
      [&] {
        for (const HwEvent& e : events().hw)
          if (e.source == HwEvent::Source::Disk && e.device == name && e.proc.tgid == pid) found = &e;
        return found != nullptr;
      },
      10s);
  c.wait();
  ASSERT_TRUE(ok) << "no disk error event for " << name << " written by " << pid << " (" << events().hw.size()
                  << " hardware events)";
  EXPECT_EQ(found->grade, HwEvent::Grade::Uncorrected);
  EXPECT_EQ(found->fields["disk"], name);
  EXPECT_EQ(found->fields["dev"].get<std::string>().rfind("7:", 0), 0u);  // loop's major
  EXPECT_EQ(found->fields["op"], "write");
  // the loop driver passes the lower file's ENOSPC up on 6.18; 6.1 maps every failure to EIO
  const std::string err = found->fields["error"].get<std::string>();
  EXPECT_TRUE(err == "nospc" || err == "ioerr") << err;
  EXPECT_EQ(found->fields["source"], "block_rq_error");
  EXPECT_EQ(found->fields["pid"], pid);
  EXPECT_NE(found->proc.start_ns, 0u);
}
