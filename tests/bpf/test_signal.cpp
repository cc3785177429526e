// Signals and exit: a crash arrives as a fatal-signal event and an exit event.
#include <sys/resource.h>

#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

namespace {

int crash_with_segv() {
  volatile int* p = nullptr;
  *p = 42;
  return 0;
}

}  // namespace

TEST(Signal, SegfaultGivesExitEventWithSignalAndFatalSignalEvent) {
  probe();
  reset_events();
  Child c([] {
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    return crash_with_segv();
  });
  uint32_t pid = uint32_t(c.pid());
  c.release();
  int status = c.wait();
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(WTERMSIG(status), SIGSEGV);
  auto ex = wait_exit(pid, 3s);
  ASSERT_TRUE(ex);
  ExitStatus es = decode_exit_code(ex->exit_code);
  EXPECT_EQ(es.signal, SIGSEGV);
  EXPECT_EQ(es.core, bool(WCOREDUMP(status))) << "core flag differs from what wait() says";
  EXPECT_GE(ex->final.fatal_signals, 1u);
  EXPECT_EQ(ex->final.last_fatal_sig, uint32_t(SIGSEGV));
  bool sig_event = false;
  for (const auto& s : events().signals)
    if (s.target.tgid == pid && s.sig == SIGSEGV) {
      sig_event = true;
      EXPECT_EQ(s.target.start_ns, ex->final.start_ns);
      EXPECT_EQ(s.sender_tgid, pid) << "a fault is raised by the faulting process itself";
    }
  EXPECT_TRUE(sig_event) << "no fatal-signal event for the crash";
}

TEST(Signal, KillFromOutsideNamesTheSender) {
  probe();
  reset_events();
  Child c([] {
    pause();
    return 0;
  });
  uint32_t pid = uint32_t(c.pid());
  c.release();
  ASSERT_TRUE(wait_until([&] { return live_slot(pid).has_value(); }, 2s));
  c.kill(SIGKILL);
  int status = c.wait();
  ASSERT_TRUE(WIFSIGNALED(status));
  auto ex = wait_exit(pid, 3s);
  ASSERT_TRUE(ex);
  EXPECT_EQ(decode_exit_code(ex->exit_code).signal, SIGKILL);
  bool found = false;
  for (const auto& s : events().signals)
    if (s.target.tgid == pid && s.sig == SIGKILL) {
      found = true;
      EXPECT_EQ(s.sender_tgid, uint32_t(getpid()));
    }
  EXPECT_TRUE(found);
}

TEST(Signal, NormalExitCodeIsReported) {
  probe();
  reset_events();
  Child c([] { return 3; });
  c.release();
  c.wait();
  auto ex = wait_exit(uint32_t(c.pid()), 3s);
  ASSERT_TRUE(ex);
  ExitStatus es = decode_exit_code(ex->exit_code);
  EXPECT_EQ(es.status, 3);
  EXPECT_EQ(es.signal, 0);
  EXPECT_EQ(ex->final.fatal_signals, 0u);
}
