// Kernel error reports (bpf/kerror.bpf.c, error_report:error_report_end)
// without a kernel bug: the hook's raw_tp twin is run with BPF_PROG_TEST_RUN
// (raw_tp test runs: v5.10+) with fabricated arguments (detector, id), from a
// child process the test controls, as if the kernel had reported in its
// context. A probe of its own binds that hook raw_tp (the shared one binds it
// tp_btf, which BPF_PROG_TEST_RUN does not run: see RawTpOnlyIsTestRun).
#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstring>

#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

namespace {

constexpr uint32_t kKfence = 0, kWarning = 2;  // enum error_detector on 5.14..6.18

Probe& raw_probe() {
  static std::unique_ptr<Probe> p = [] {
    probe();  // logging set up, the shared probe loaded first (as every test binary does)
    ProbeOptions opts;
    opts.max_procs = 4096;
    opts.raw_tp_hooks = {"error_report_end"};
    auto r = Probe::start(opts);
    if (!r) {
      std::fprintf(stderr, "cannot load the probe with error_report_end raw_tp: %s\n", r.error().message.c_str());
      std::abort();
    }
    return std::move(r).value();
  }();
  return *p;
}

const HookStatus* hook(const Probe& p, const std::string& name) {
  for (const auto& h : p.hooks())
    if (h.name == name) return &h;
  return nullptr;
}

// The program behind an attached hook's link (an fd the caller closes), or -errno.
int program_of_link(int link_fd) {
  bpf_link_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(link_fd, &info, &len) != 0) return -errno;
  int fd = bpf_prog_get_fd_by_id(info.prog_id);
  return fd >= 0 ? fd : -errno;
}

// Runs `prog_fd` with the tracepoint's arguments (u64 each, as the kernel
// passes them to a raw tracepoint): 0, or the errno of the refusal.
int test_run(int prog_fd, uint64_t detector, uint64_t id) {
  uint64_t args[2] = {detector, id};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof args);
  return bpf_prog_test_run_opts(prog_fd, &opts) == 0 ? 0 : errno;
}

// A child, renamed `name`, that test-runs the program once and then waits
// until the parent has looked at its slot. status(): what test_run returned.
class Reporter {
 public:
  Reporter(int prog_fd, uint64_t detector, uint64_t id) {
    int res[2], hold[2];
    if (pipe2(res, O_CLOEXEC) != 0 || pipe2(hold, O_CLOEXEC) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      close(res[0]);
      close(hold[1]);
      prctl(PR_SET_NAME, "kerr-reporter");
      int rc = test_run(prog_fd, detector, id);
      (void)!write(res[1], &rc, sizeof rc);
      char c;
      (void)!read(hold[0], &c, 1);  // until the parent closes it
      _exit(0);
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

// The raw_tp program of error_report_end in raw_probe(), or a failure.
int raw_program() {
  const HookStatus* h = hook(raw_probe(), "error_report_end");
  if (h == nullptr) return -ENOENT;
  if (h->mode != AttachMode::RawTp) return -ENOTSUP;
  return program_of_link(raw_probe().hook_link_fd("error_report_end"));
}

std::optional<KernelErrorRecord> wait_report(EventBatch& batch, uint32_t tgid, uint64_t id) {
  std::optional<KernelErrorRecord> found;
  wait_until(
      [&] {
        raw_probe().drain(batch);
        for (const auto& r : batch.kernel_errors)
          if (r.proc.tgid == tgid && r.id == id) {
            found = r;
            return true;
          }
        return false;
      },
      3s);
  return found;
}

std::optional<fp_proc> raw_slot(uint32_t pid) {
  Sample s = raw_probe().read();
  for (const auto& p : s.procs)
    if (p.tgid == pid) return p;
  return std::nullopt;
}

// One report from a child: the event names it and its thread, and its
// process's counter counts it.
void expect_report(uint32_t detector, uint64_t id) {
  int prog = raw_program();
  ASSERT_GE(prog, 0) << "no raw_tp program for error_report_end: " << std::strerror(-prog) << " ("
                     << (hook(raw_probe(), "error_report_end") ? hook(raw_probe(), "error_report_end")->reason : "")
                     << ")";
  EventBatch batch;
  raw_probe().drain(batch);
  batch.clear();
  Reporter child(prog, detector, id);
  close(prog);
  ASSERT_EQ(child.status(), 0) << "BPF_PROG_TEST_RUN refused the raw_tp program: " << std::strerror(child.status());
  auto r = wait_report(batch, child.pid(), id);
  ASSERT_TRUE(r) << "no kernel error event for pid " << child.pid();
  EXPECT_EQ(r->detector, detector);
  EXPECT_EQ(r->id, id);
  EXPECT_EQ(r->tid, child.pid());
  EXPECT_EQ(r->task_comm, "kerr-reporter");
  EXPECT_EQ(r->context, uint32_t(FP_KERR_CTX_TASK));
  EXPECT_FALSE(r->irq_known);  // not told yet: bpf/kerror.bpf.c
  auto slot = raw_slot(child.pid());
  ASSERT_TRUE(slot) << "no slot for the reporter";
  EXPECT_EQ(r->proc.start_ns, slot->start_ns);
  EXPECT_EQ(r->comm, std::string(slot->comm, strnlen(slot->comm, FP_COMM_LEN)));
  EXPECT_EQ(slot->kernel_errors, 1u);
}

}  // namespace

TEST(KernelError, HookIsOfferedOnThisKernelAsTpBtfAndRawTpWhenAsked) {
  const HookStatus* shared = hook(probe(), "error_report_end");
  ASSERT_NE(shared, nullptr);
  EXPECT_EQ(shared->mode, AttachMode::TpBtf) << shared->reason;
  const HookStatus* raw = hook(raw_probe(), "error_report_end");
  ASSERT_NE(raw, nullptr);
  EXPECT_EQ(raw->mode, AttachMode::RawTp) << raw->reason;
  EXPECT_GE(raw_probe().hook_link_fd("error_report_end"), 0);
  // only that hook: the others keep tp_btf
  EXPECT_EQ(hook(raw_probe(), "sched_switch")->mode, AttachMode::TpBtf);
}

TEST(KernelError, KfenceReportIsChargedToTheProcessThatMadeIt) { expect_report(kKfence, 0xdead000000001000ull); }

TEST(KernelError, WarningReport) { expect_report(kWarning, 0xffffffff81234567ull); }

// A detector this build does not know (a newer kernel's) is carried, not dropped.
TEST(KernelError, UnknownDetectorIsCarried) { expect_report(7, 0x7777ull); }

// The shared probe's tp_btf program is not something BPF_PROG_TEST_RUN runs
// (tracing programs: fentry/fexit/fmod_ret only): why the tests ask for raw_tp.
TEST(KernelError, RawTpOnlyIsTestRun) {
  int prog = program_of_link(probe().hook_link_fd("error_report_end"));
  ASSERT_GE(prog, 0) << std::strerror(-prog);
  int rc = test_run(prog, kKfence, 0x1);
  close(prog);
  EXPECT_NE(rc, 0) << "this kernel test-runs tp_btf programs: the tests could use the shared probe";
  std::printf("tp_btf test run refused: errno %d (%s)\n", rc, std::strerror(rc));
}
