// Pinning: a probe pinned in bpffs outlives its daemon (kill -9 included), a
// restart takes it over and the counters continue; a probe of another build
// or an interrupted pin is replaced; remove_pins detaches everything.
#include <bpf/bpf.h>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "probe/loader/pin.h"
#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

namespace {

class Pinning : public ::testing::Test {
 protected:
  void SetUp() override {
    init_logging(0);
    ASSERT_TRUE(Probe::remove_pins(dir_)) << "leftover " << dir_;
  }
  void TearDown() override { EXPECT_TRUE(Probe::remove_pins(dir_)); }

  ProbeOptions opts() const {
    ProbeOptions o;
    o.pin_dir = dir_;
    o.max_procs = 4096;  // small maps: several probes load in this file
    return o;
  }
  std::unique_ptr<Probe> start(const ProbeOptions& o) {
    auto r = Probe::start(o);
    EXPECT_TRUE(r) << r.error().message;
    return r ? std::move(r).value() : nullptr;
  }
  // The ids of the links pinned in the directory: they must vanish once unpinned.
  std::vector<uint32_t> pinned_link_ids() const {
    std::vector<uint32_t> ids;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      if (e.path().filename().string().rfind("link_", 0) != 0) continue;
      int fd = bpf_obj_get(e.path().c_str());
      if (fd < 0) continue;
      bpf_link_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) ids.push_back(info.id);
      close(fd);
    }
    return ids;
  }

  const std::string dir_ = "/sys/fs/bpf/fp-test-" + std::to_string(getpid());
};

int spin_forever() {
  for (;;) spin_for(10ms);
}

// What the "daemon" child saw before it was killed.
struct Seen {
  uint32_t ok, slot;
  uint64_t cpu_ns;
};

std::optional<uint32_t> slot_of(const SlotCopies& seen, uint32_t pid, const std::vector<uint32_t>& changed) {
  for (uint32_t s : changed)
    if (seen[s].tgid == pid) return s;
  return std::nullopt;
}

}  // namespace

// The required scenario: kill -9 of the daemon and a restart; the cumulative
// counters of a long-running child keep growing from where they were, and
// events keep arriving (including one produced while no daemon ran).
TEST_F(Pinning, KillNineAndRestartTakesTheProbeOverAndCountersContinue) {
  Child spinner(spin_forever);
  uint32_t pid = uint32_t(spinner.pid());
  spinner.release();

  // The "daemon": a process that loads the probe with pins, reads the
  // spinner's counters and is then killed with SIGKILL.
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  ProbeOptions o = opts();
  Child daemon([&]() -> int {
    Seen seen{0, 0, 0};
    auto p = Probe::start(o);
    if (p) {
      std::optional<uint32_t> slot;
      SlotCopies copies;
      wait_until(
          [&] {
            for (uint32_t s : copies.refresh(**p))
              if (copies[s].tgid == pid && copies[s].cpu_ns > 100'000'000u) slot = s;
            return slot.has_value();
          },
          5s);
      if (slot) seen = Seen{1, *slot, copies[*slot].cpu_ns};
    }
    if (write(report[1], &seen, sizeof(seen)) != ssize_t(sizeof(seen))) return 1;
    pause();
    return 0;
  });
  close(report[1]);
  daemon.release();
  Seen before{};
  ASSERT_EQ(read(report[0], &before, sizeof(before)), ssize_t(sizeof(before)));
  close(report[0]);
  ASSERT_EQ(before.ok, 1u) << "the first daemon did not see the spinner";
  daemon.kill(SIGKILL);
  daemon.wait();

  // No daemon now: the pinned programs keep counting, and a process that
  // exits meanwhile leaves its exit record in the pinned ring buffer.
  ASSERT_TRUE(std::filesystem::exists(dir_ + "/meta"));
  Child gap_child([] { return 7; });
  uint32_t gap_pid = uint32_t(gap_child.pid());
  gap_child.release();
  gap_child.wait();
  std::this_thread::sleep_for(300ms);

  auto p = start(opts());
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->took_over());
  EXPECT_TRUE(p->pinned());
  // The first refresh after a takeover returns every used slot.
  SlotCopies copies;
  const auto& changed = copies.refresh(*p);
  auto slot = slot_of(copies, pid, changed);
  ASSERT_TRUE(slot) << "the spinner is not in the resync";
  EXPECT_EQ(*slot, before.slot) << "the spinner moved to another slot";
  uint64_t first = copies[*slot].cpu_ns;
  EXPECT_GE(first, before.cpu_ns) << "the counter restarted";
  EXPECT_GT(first, before.cpu_ns + 50'000'000u) << "nothing was counted while no daemon ran";
  EXPECT_TRUE(wait_until(
      [&] {
        copies.refresh(*p);
        return copies[*slot].tgid == pid && copies[*slot].cpu_ns > first + 100'000'000u;
      },
      5s))
      << "the counter stopped growing after the takeover";
  EXPECT_TRUE(p->indexed(pid));
  EXPECT_TRUE(p->cpu_tick_attached());
  for (const auto& h : p->hooks()) {
    if (h.required) {
      EXPECT_NE(h.mode, AttachMode::Unavailable) << h.name;
    }
  }

  // The backlog: the exit that happened while no daemon ran.
  EventBatch batch;
  bool gap_exit = wait_until(
      [&] {
        p->drain(batch);
        for (const auto& e : batch.exits)
          if (e.final.tgid == gap_pid) return decode_exit_code(e.exit_code).status == 7;
        return false;
      },
      3s);
  EXPECT_TRUE(gap_exit) << "the exit while no daemon ran was lost";

  // New events after the takeover: a crash gives a signal and an exit event.
  Child crasher([] {
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    raise(SIGSEGV);
    return 0;
  });
  uint32_t crash_pid = uint32_t(crasher.pid());
  crasher.release();
  crasher.wait();
  bool crash_seen = wait_until(
      [&] {
        p->drain(batch);
        bool sig = false, exit = false;
        for (const auto& s : batch.signals) sig |= s.target.tgid == crash_pid && s.sig == SIGSEGV;
        for (const auto& e : batch.exits) exit |= e.final.tgid == crash_pid;
        return sig && exit;
      },
      3s);
  EXPECT_TRUE(crash_seen) << "no signal/exit event from a crash after the takeover";
  EXPECT_EQ(p->malformed_events(), 0u);
}

// A clean destruction keeps the pins too (what SIGTERM does): a second
// start in the same process takes over and sees the same attach time.
TEST_F(Pinning, CleanStopKeepsThePinsAndTheOrigin) {
  auto p = start(opts());
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->took_over());
  uint64_t attached = p->attached_at_ns();
  p.reset();
  p = start(opts());
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->took_over());
  EXPECT_EQ(p->attached_at_ns(), attached);
  EXPECT_FALSE(p->refresh().empty()) << "a takeover starts with a full resync";
}

TEST_F(Pinning, AnotherBuildIsReplacedByAFreshProbe) {
  auto p = start(opts());
  ASSERT_TRUE(p);
  p.reset();
  // Make the pins look like another build's.
  int fd = bpf_obj_get((dir_ + "/meta").c_str());
  ASSERT_GE(fd, 0);
  pin::PinMeta meta{};
  uint32_t key = 0;
  ASSERT_EQ(bpf_map_lookup_elem(fd, &key, &meta), 0);
  meta.identity ^= 1;
  ASSERT_EQ(bpf_map_update_elem(fd, &key, &meta, BPF_ANY), 0);
  close(fd);
  auto old_links = pinned_link_ids();

  p = start(opts());
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->took_over());
  EXPECT_TRUE(p->pinned()) << "the fresh probe is pinned again";
  for (uint32_t id : old_links) {
    int lfd = bpf_link_get_fd_by_id(id);
    EXPECT_LT(lfd, 0) << "link " << id << " of the replaced probe is still attached";
    if (lfd >= 0) close(lfd);
  }
  p.reset();
  p = start(opts());
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->took_over()) << "the replacement's pins are complete";
}

TEST_F(Pinning, OtherOptionsOrPartialPinsLoadFresh) {
  auto p = start(opts());
  ASSERT_TRUE(p);
  p.reset();
  ProbeOptions other = opts();
  other.max_procs = 2048;
  p = start(other);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->took_over()) << "map sizes differ: a takeover would misread the maps";
  EXPECT_EQ(p->max_procs(), 2048u);
  p.reset();

  // An interrupted start: pins without meta.
  ASSERT_EQ(unlink((dir_ + "/meta").c_str()), 0);
  p = start(other);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->took_over());
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/meta"));
}

TEST_F(Pinning, RemovePinsDetachesEverything) {
  auto p = start(opts());
  ASSERT_TRUE(p);
  p.reset();
  auto ids = pinned_link_ids();
  ASSERT_GE(ids.size(), 6u);  // the required hooks at least
  ASSERT_TRUE(Probe::remove_pins(dir_));
  EXPECT_FALSE(std::filesystem::exists(dir_));
  for (uint32_t id : ids) {
    int fd = bpf_link_get_fd_by_id(id);
    EXPECT_LT(fd, 0) << "link " << id << " still exists after remove_pins";
    if (fd >= 0) close(fd);
  }
  EXPECT_TRUE(Probe::remove_pins(dir_)) << "removing nothing is not an error";
}

TEST_F(Pinning, RemovePinsRefusesADirectoryOutsideBpffs) {
  std::string tmp = "/tmp/fp-not-bpffs-" + std::to_string(getpid());
  std::filesystem::create_directories(tmp);
  { std::ofstream(tmp + "/precious") << "x"; }
  auto r = Probe::remove_pins(tmp);
  EXPECT_FALSE(r);
  EXPECT_TRUE(std::filesystem::exists(tmp + "/precious"));
  std::filesystem::remove_all(tmp);
}

TEST_F(Pinning, WithoutBpffsTheProbeRunsUnpinned) {
  ProbeOptions o = opts();
  o.pin_dir = "/tmp/fp-not-bpffs-" + std::to_string(getpid());
  auto p = start(o);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->pinned());
  EXPECT_FALSE(std::filesystem::exists(o.pin_dir));
}
