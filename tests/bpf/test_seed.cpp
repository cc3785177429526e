// Seeding: every process alive when a probe starts has a slot in its first
// sample, idle ones and kernel threads included, and an uninterruptible sleep
// that began before the probe counts from when it began. Each test starts a
// probe of its own (small maps), after its processes exist.
#include <dirent.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "../time_scale.h"
#include "probe/loader/pin.h"
#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

namespace {

ProbeOptions small(SeedMode mode = SeedMode::Auto) {
  ProbeOptions o;
  o.max_procs = 8192;
  o.seed = mode;
  return o;
}

std::unique_ptr<Probe> start(const ProbeOptions& o) {
  auto r = Probe::start(o);
  EXPECT_TRUE(r) << r.error().message;
  return r ? std::move(r).value() : nullptr;
}

std::vector<uint32_t> proc_pids() {
  std::vector<uint32_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) out.push_back(std::stoul(name));
  }
  return out;
}

// Alive: some thread of it is not a zombie (a zombie leader may lead live threads).
bool alive(uint32_t pid) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    char st = proc_state(uint32_t(std::stoul(e.path().filename().string())));
    if (st != 0 && st != 'Z' && st != 'X') return true;
  }
  return false;
}

// Shared with a child across fork (and with its vfork child, which shares its memory).
template <typename T>
T* shared() {
  void* m = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return m == MAP_FAILED ? nullptr : new (m) T();
}

uint64_t mono_ns() { return monotonic_now_ns(); }

struct VforkHang {
  std::atomic<uint64_t> before_ns{0};  // just before vfork: the D-state starts after this
  std::atomic<bool> release{false};    // the vfork child exits when set
};

// A child that hangs in D (a vfork parent, TASK_KILLABLE) until `h->release`.
int vfork_hang(VforkHang* h) {
  h->before_ns = mono_ns();
  pid_t k = vfork();
  if (k == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // syscalls and loads only: we share the parent's memory
    while (!h->release.load()) usleep(2000);
    _exit(0);
  }
  waitpid(k, nullptr, 0);
  return 0;
}

// IRQ and steal time so far, all CPUs (/proc/stat, USER_HZ ticks -> ns).
uint64_t irq_and_steal_ns() {
  FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return 0;
  unsigned long long v[8] = {};
  const int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                            &v[5], &v[6], &v[7]);
  std::fclose(f);
  if (n < 8) return 0;
  return (v[5] + v[6] + v[7]) * (1'000'000'000ull / uint64_t(sysconf(_SC_CLK_TCK)));
}

bool under_hypervisor() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) return line.find(" hypervisor") != std::string::npos;
  return false;
}

}  // namespace

// The whole host, from the first sample: every process /proc lists after
// the start and that is still alive after the read has a slot, once.
TEST(Seed, EveryProcessOfTheHostHasASlotAfterLoad) {
  auto p = start(small());
  ASSERT_TRUE(p);
  const SeedStatus& st = p->seed_status();
  EXPECT_EQ(st.method, SeedMethod::TaskIter) << st.reason;  // 6.18 has iter/task and runqueues in BTF
  EXPECT_TRUE(st.ok) << st.error;
  const std::vector<uint32_t> listed = proc_pids();
  Sample s;
  p->read_full(s);
  std::map<uint32_t, int> slots;
  for (const auto& pr : s.procs) slots[pr.tgid]++;
  size_t checked = 0, kthreads = 0;
  for (uint32_t pid : listed) {
    if (!alive(pid)) continue;  // exited (or a zombie) since the listing
    ++checked;
    EXPECT_TRUE(p->indexed(pid)) << "pid " << pid << " (state " << proc_state(pid) << ") has no slot";
  }
  for (const auto& [tgid, n] : slots) EXPECT_EQ(n, 1) << "pid " << tgid << " has " << n << " slots";
  for (const auto& pr : s.procs) kthreads += (pr.flags & FP_PROC_KTHREAD) != 0;
  EXPECT_GT(checked, 10u);
  EXPECT_GT(kthreads, 0u) << "kernel threads are processes too";
  EXPECT_GT(st.found.procs, 0u) << "the pass itself made the slots";
  EXPECT_GE(st.found.tasks, checked);
  EXPECT_GE(st.found.threads, st.found.procs);
  EXPECT_NEAR(double(p->proc_index_entries()), double(s.procs.size()), 4) << "one index entry per live slot";
  auto drops = p->drops();
  EXPECT_EQ(drops[FP_DROP_PROC_SLOTS_FULL] + drops[FP_DROP_PROC_INDEX_FULL], 0u);
}

// The required scenario: a process in D before the probe loads shows its
// ongoing D time from the real start in the first sample, and when it wakes
// the finished sleep counts from there too.
TEST(Seed, DstateThatBeganBeforeTheProbeCountsFromItsRealStart) {
  VforkHang* h = shared<VforkHang>();
  ASSERT_NE(h, nullptr);
  const uint64_t irq_steal_before = irq_and_steal_ns();
  Child c([h] { return vfork_hang(h); });
  const uint32_t pid = uint32_t(c.pid());
  c.release();
  ASSERT_TRUE(wait_until([&] { return proc_state(pid) == 'D'; }, 3s)) << "no D state: " << proc_state(pid);
  const uint64_t seen_d_ns = mono_ns();
  const uint64_t start_ns = h->before_ns.load();
  // The start comes out early by the IRQ and steal time of the sleeper's last
  // run (the task clock leaves them out): bounded here by all of it on the
  // host while the child went to sleep, plus one USER_HZ tick of rounding
  // where it can be nonzero (a guest: CI's 6.1 VM saw 7 ms of it).
  const uint64_t irq_steal = irq_and_steal_ns() - irq_steal_before;
  const uint64_t early_ok =
      2'000'000ull + irq_steal +
      ((irq_steal || under_hypervisor()) ? 1'000'000'000ull / uint64_t(sysconf(_SC_CLK_TCK)) : 0);
  // make the sleep clearly older than the probe
  ASSERT_TRUE(wait_until([&] { return mono_ns() - start_ns > 1'000'000'000ull; }, 3s));

  auto p = start(small());
  ASSERT_TRUE(p);
  EXPECT_GE(p->seed_status().found.dstate, 1u);
  Sample first = p->read();
  const fp_proc* slot = nullptr;
  for (const auto& pr : first.procs)
    if (pr.tgid == pid) slot = &pr;
  ASSERT_NE(slot, nullptr) << "no slot for the sleeper";
  EXPECT_EQ(slot->dstate_active, 1);
  // From its last switch-out: after `before_ns`, no later than when /proc
  // showed it in D, give or take the conversion's bound (one 4 ms tick; 10 ms
  // allowed) and the IRQ and steal time of its last run (early_ok).
  EXPECT_GE(slot->dstate_since_ns + early_ok, start_ns)
      << "since " << slot->dstate_since_ns << ", IRQ+steal meanwhile " << irq_steal << " ns";
  EXPECT_LE(slot->dstate_since_ns, seen_d_ns + 10'000'000ull) << "since " << slot->dstate_since_ns;
  std::printf(
      "[ measured ] the sleep began %+.3f ms after the vfork call, %.3f ms before /proc showed D (IRQ+steal %.3f ms)\n",
      (double(slot->dstate_since_ns) - double(start_ns)) / 1e6,
      (double(seen_d_ns) - double(slot->dstate_since_ns)) / 1e6, double(irq_steal) / 1e6);
  Sample none;
  none.ts_ns = first.ts_ns;
  uint64_t ongoing = 0;
  for (const auto& d : compute_deltas(none, first, {}, 4096))
    if (d.key.tgid == pid) ongoing = d.dstate_ongoing_ns;
  // (the start may come out late by the conversion's bound, as above)
  EXPECT_GE(ongoing + 10'000'000ull, first.ts_ns - seen_d_ns) << "the first sample shows the sleep from its start";
  EXPECT_GE(ongoing, 1'000'000'000ull);

  // The sleep ends (and the child exits): it is accounted from the real start.
  const uint64_t release_ns = mono_ns();
  h->release = true;
  c.wait();
  EventBatch ev;
  std::optional<fp_proc> last;
  ASSERT_TRUE(wait_until(
      [&] {
        p->drain(ev);
        for (const auto& e : ev.exits)
          if (e.final.tgid == pid) last = e.final;
        return last.has_value();
      },
      3s))
      << "no exit event";
  EXPECT_EQ(last->dstate_active, 0);
  EXPECT_EQ(last->dstate_since_ns, 0u);
  EXPECT_GE(last->dstate_ns + early_ok, release_ns - start_ns) << "finished D " << last->dstate_ns;
  EXPECT_EQ(last->dstate_max_ns, last->dstate_ns) << "one sleep";
  munmap(h, sizeof(*h));
}

// Idle TASK_IDLE kernel threads are not stalls (as in the hooks).
TEST(Seed, IdleKernelThreadsAreNotInDstate) {
  auto p = start(small());
  ASSERT_TRUE(p);
  Sample s = p->read();
  for (const auto& pr : s.procs) {
    if (!(pr.flags & FP_PROC_KTHREAD) || pr.dstate_active == 0) continue;
    // a kthread the seed put in D must be in real D ('D' in /proc, not 'I')
    EXPECT_EQ(proc_state(pr.tgid), 'D') << "kthread " << pr.tgid << " " << pr.comm << " marked in D";
  }
}

// The /proc walk (what a kernel without a task iterator gets): every process
// has a slot too, and a slot it made is a real one (its exit is reported).
TEST(Seed, ProcWalkSeedsEveryProcessToo) {
  Child sleeper([] {
    pause();
    return 0;
  });
  const uint32_t pid = uint32_t(sleeper.pid());  // blocked in read() on its start pipe: never runs
  auto p = start(small(SeedMode::Proc));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->seed_status().method, SeedMethod::Proc);
  EXPECT_TRUE(p->seed_status().ok) << p->seed_status().error;
  const std::vector<uint32_t> listed = proc_pids();
  Sample s = p->read();
  std::map<uint32_t, const fp_proc*> slots;
  for (const auto& pr : s.procs) slots[pr.tgid] = &pr;
  for (uint32_t pid2 : listed) {
    if (!alive(pid2)) continue;
    EXPECT_TRUE(slots.count(pid2)) << "pid " << pid2 << " has no slot";
  }
  ASSERT_TRUE(slots.count(pid));
  const fp_proc& sp = *slots[pid];
  EXPECT_EQ(sp.ppid, uint32_t(getpid()));
  EXPECT_EQ(std::string(sp.comm), std::string(slots[uint32_t(getpid())]->comm));
  EXPECT_GT(sp.rss_pages[0] + sp.rss_pages[1], 0) << "resident set from /proc/PID/status";
  // one index entry per live slot (give or take the processes that came and went meanwhile)
  EXPECT_NEAR(double(p->proc_index_entries()), double(s.procs.size()), 4);

  sleeper.kill(SIGKILL);
  sleeper.wait();
  EventBatch ev;
  bool exited = wait_until(
      [&] {
        p->drain(ev);
        for (const auto& e : ev.exits)
          if (e.final.tgid == pid) return true;
        return false;
      },
      3s);
  EXPECT_TRUE(exited) << "the slot the walk made was not the probe's";
  EXPECT_FALSE(p->indexed(pid));
}

// A takeover seeds too: a probe pinned without a pass (an older build's
// behaviour) misses the sleepers, the taker-over's pass finds them, with the
// pinned iterator.
TEST(Seed, TakeoverSeedsWhatThePinnedProbeMissed) {
  const std::string dir = "/sys/fs/bpf/fp-test-seed-" + std::to_string(getpid());
  ASSERT_TRUE(Probe::remove_pins(dir));
  VforkHang* h = shared<VforkHang>();
  ASSERT_NE(h, nullptr);
  Child c([h] { return vfork_hang(h); });
  const uint32_t pid = uint32_t(c.pid());
  c.release();
  ASSERT_TRUE(wait_until([&] { return proc_state(pid) == 'D'; }, 3s));

  ProbeOptions o = small(SeedMode::None);
  o.pin_dir = dir;
  auto p = start(o);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->seed_status().method, SeedMethod::None);
  EXPECT_FALSE(p->indexed(pid)) << "asleep since before the load: no hook met it";
  p.reset();

  o.seed = SeedMode::Auto;
  p = start(o);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->took_over());
  EXPECT_EQ(p->seed_status().method, SeedMethod::TaskIter) << p->seed_status().reason;
  EXPECT_TRUE(p->indexed(pid));
  bool in_d = false;
  for (const auto& pr : p->read().procs)
    if (pr.tgid == pid) in_d = pr.dstate_active == 1 && pr.dstate_since_ns != 0 && pr.dstate_since_ns <= mono_ns();
  EXPECT_TRUE(in_d) << "the sleeper is not in D after the takeover's pass";
  h->release = true;
  c.wait();
  p.reset();
  EXPECT_TRUE(Probe::remove_pins(dir));
  munmap(h, sizeof(*h));
}
