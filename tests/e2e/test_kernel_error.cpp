// kernel_error against the real daemon, without a kernel bug: the daemon
// binds error_report_end raw_tp (--raw-tp-hook, for tests), the test finds
// that program through the daemon's pinned link and runs it with
// BPF_PROG_TEST_RUN from a process of its own (this binary exec'd under
// another name), with the arguments the kernel would pass (detector, id). The daemon must open kernel_error naming the
// child (pid, comm) as the place, not the cause, and -- with a policy that
// would kill the child for a hang -- take no action: a kernel bug is only
// alerted unless a policy names kernel_error.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "../time_scale.h"
#include "e2e_fixture.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;

namespace {

// The daemon's program for `hook`, from its pinned link (-errno on failure).
int pinned_program(const std::string& pin_dir, const std::string& hook) {
  int link = bpf_obj_get((pin_dir + "/link_" + hook).c_str());
  if (link < 0) return -errno;
  bpf_link_info info{};
  uint32_t len = sizeof info;
  int rc = bpf_obj_get_info_by_fd(link, &info, &len);
  int err = errno;
  close(link);
  if (rc != 0) return -err;
  int fd = bpf_prog_get_fd_by_id(info.prog_id);
  return fd >= 0 ? fd : -errno;
}

// A reporter is this binary run again under the name `comm` (a symlink:
// exec names the process after the file, so the probe, /proc and the fault
// all know it by that name): with FP_KERR_REPORT="DETECTOR ID(hex)" it runs
// the program on fd 3 once, writes the result (0 or errno) to fd 4, and
// waits for fd 5 to close -- before gtest's main ever runs.
const bool kReporter = [] {
  const char* spec = std::getenv("FP_KERR_REPORT");
  if (spec == nullptr) return false;
  unsigned long long detector = 0, id = 0;
  if (std::sscanf(spec, "%llu %llx", &detector, &id) != 2) _exit(2);
  uint64_t args[2] = {detector, id};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof args);
  int rc = bpf_prog_test_run_opts(3, &opts) == 0 ? 0 : errno;
  (void)!write(4, &rc, sizeof rc);
  char c;
  (void)!read(5, &c, 1);
  _exit(0);
}();

class Reporter {
 public:
  Reporter(int prog_fd, const std::string& dir, const char* comm, uint64_t detector, uint64_t id) {
    const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
    const std::string link = dir + "/" + comm;
    std::error_code ec;
    std::filesystem::remove(link, ec);
    std::filesystem::create_symlink(exe, link);
    char spec[64];
    std::snprintf(spec, sizeof spec, "%llu %llx", (unsigned long long)detector, (unsigned long long)id);
    int res[2], hold[2];
    if (pipe2(res, O_CLOEXEC) != 0 || pipe2(hold, O_CLOEXEC) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      // Out of the way first, then onto 3, 4, 5 (dup2 leaves them open across exec).
      int p = fcntl(prog_fd, F_DUPFD_CLOEXEC, 100), r = fcntl(res[1], F_DUPFD_CLOEXEC, 100),
          h = fcntl(hold[0], F_DUPFD_CLOEXEC, 100);
      if (p < 0 || r < 0 || h < 0 || dup2(p, 3) < 0 || dup2(r, 4) < 0 || dup2(h, 5) < 0) _exit(126);
      setenv("FP_KERR_REPORT", spec, 1);
      execl(link.c_str(), link.c_str(), nullptr);
      _exit(127);
    }
    close(res[1]);
    close(hold[0]);
    hold_ = hold[1];
    if (read(res[0], &rc_, sizeof rc_) != sizeof rc_) rc_ = -1;
    close(res[0]);
  }
  ~Reporter() {
    close(hold_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  uint32_t pid() const { return uint32_t(pid_); }
  int status() const { return rc_; }

 private:
  pid_t pid_ = -1;
  int hold_ = -1;
  int rc_ = -1;
};

bool names_report(const json& r, const std::string& report) {
  return r.value("kind", "") == "fault" && r.value("class", "") == "kernel_error" &&
         r.contains("evidence") && r["evidence"].value("report", "") == report;
}

}  // namespace

TEST(KernelErrorE2E, ReportInAProcessContextOpensKernelErrorNamingItAndNothingIsDone) {
  // A policy covers the child (it would kill it for a hang): kernel_error has no ladder in it.
  Daemon d(kBase + R"(
[[policy]]
name = "reporters"
match = { comm = "kerr-*" }
on.hang = ["kill"]
)",
           {"--raw-tp-hook", "error_report_end"});
  ASSERT_TRUE(d.ready()) << d.log();
  int prog = pinned_program(d.pin_dir(), "error_report_end");
  ASSERT_GE(prog, 0) << "no pinned error_report_end program in " << d.pin_dir() << ": " << std::strerror(-prog)
                     << "\n" << d.log();

  Reporter child(prog, d.dir(), "kerr-kfence", 0, 0xdead000000001000ull);
  ASSERT_EQ(child.status(), 0) << "BPF_PROG_TEST_RUN refused the daemon's raw_tp program: "
                               << std::strerror(child.status());
  auto f = d.wait_fault("kernel_error", child.pid(), fp::test::scaled(10s));
  ASSERT_TRUE(f) << describe(d.records()) << d.log();
  EXPECT_EQ((*f)["comm"], "kerr-kfence");
  EXPECT_EQ((*f)["severity"], "critical");
  EXPECT_EQ((*f)["evidence"]["report"], "kfence 0xdead000000001000");
  const json& ev = (*f)["evidence"];
  EXPECT_EQ(ev["source"], "kernel");
  EXPECT_EQ(ev["detector"], "kfence");  // named from this kernel's BTF
  EXPECT_EQ(ev["id"], "0xdead000000001000");
  EXPECT_EQ(ev["context"], "task");
  EXPECT_EQ(ev["interrupt_context_known"], false);  // not told yet (bpf/kerror.bpf.c)
  EXPECT_EQ(ev["tid"], child.pid());
  EXPECT_EQ(ev["thread"], "kerr-kfence");
  EXPECT_EQ(ev["summary"], "kernel kfence report, id 0xdead000000001000, in the kernel on behalf of pid " +
                               std::to_string(child.pid()) + " kerr-kfence (thread " + std::to_string(child.pid()) +
                               " kerr-kfence)");
  EXPECT_NE(ev.value("kernel_bug", "").find("not its cause"), std::string::npos) << ev.dump();

  // A second report (a WARN, and a detector this build has no name for)
  // decided at a later tick: by the time its fault is out, any action on the
  // first would have been recorded.
  Reporter later(prog, d.dir(), "kerr-warn", 7, 0x7777);
  close(prog);
  ASSERT_EQ(later.status(), 0) << std::strerror(later.status());
  auto g = d.wait_record([](const json& r) { return names_report(r, "detector#7 0x7777"); },
                         fp::test::scaled(10s));
  ASSERT_TRUE(g) << describe(d.records());
  EXPECT_EQ((*g)["pid"], later.pid());
  EXPECT_EQ((*g)["severity"], "warning");
  EXPECT_EQ((*g)["evidence"]["detector_value"], 7);
  for (const json& r : d.records())
    EXPECT_NE(r.value("kind", ""), "action") << "a kernel error was acted on: " << r.dump();

  // The socket's status counts the reports the probe sent.
  json status = d.query({{"cmd", "status"}});
  EXPECT_GE(status["status"]["events_received"].value("kernel_errors", 0u), 2u) << status.dump();
}
