// The Supervisor against a fake Spawner and a FakeClock, plus two runs with
// real processes (a shell that crashes, and `faultgen counter` when built).
#include "act/supervisor.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fp {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using K = SupervisorEvent::Kind;

constexpr uint64_t kMs = 1'000'000;

struct SupTempDir {
  fs::path path;
  SupTempDir() {
    char tmpl[] = "/tmp/fp-sup-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~SupTempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

class FakeSpawner : public Spawner {
 public:
  struct Proc {
    pid_t pid;
    SpawnSpec spec;
    bool adopted = false;
    std::vector<int> signals;
    std::optional<int> exit;  // wait status, once it ended
    bool reaped = false;
    std::string unit;  // with `units`: the transient unit it runs in
  };

  // As SystemdSpawner: slow (the supervisor calls it from its worker), and
  // with `units` the exit of a process is "ended" only, its status read from
  // its unit by exit_status().
  bool slow() const override { return slow_mode; }
  Result<int> exit_status(const std::string& unit) override {
    status_reads.push_back(unit);
    for (const auto& p : procs)
      if (p.unit == unit && p.exit) return *p.exit;
    return Error{ESRCH, "no unit " + unit};
  }

  Result<Spawned> spawn(const SpawnSpec& spec) override {
    if (on_spawn) on_spawn();
    if (fail_next) {
      Error e = *fail_next;
      fail_next.reset();
      return e;
    }
    return add(spec, false);
  }
  Result<Spawned> adopt(pid_t pid) override {
    next_pid = pid;
    return add({}, true);
  }
  Result<void> signal(pid_t pid, int, int sig) override {
    Proc& p = proc(pid);
    p.signals.push_back(sig);
    if (p.exit) return {};
    if (sig == SIGKILL || (sig == SIGTERM && exit_on_term)) p.exit = W_EXITCODE(0, sig);
    return {};
  }
  std::optional<int> reap(pid_t pid, int) override {
    Proc& p = proc(pid);
    if (!p.exit || p.reaped) return std::nullopt;
    p.reaped = true;
    return units ? kUnknownWaitStatus : *p.exit;
  }
  void release(int pidfd) override {
    if (pidfd >= 0) ++released;
  }

  Proc& proc(pid_t pid) {
    for (auto& p : procs)
      if (p.pid == pid) return p;
    throw std::runtime_error("no fake process " + std::to_string(pid));
  }
  Proc& last() { return procs.back(); }
  void crash(pid_t pid, int sig = SIGSEGV) { proc(pid).exit = W_EXITCODE(0, sig); }
  void exit_with(pid_t pid, int code) { proc(pid).exit = W_EXITCODE(code, 0); }
  size_t spawned() const {
    return static_cast<size_t>(std::count_if(procs.begin(), procs.end(), [](const Proc& p) { return !p.adopted; }));
  }

  std::vector<Proc> procs;
  pid_t next_pid = 1000;
  bool exit_on_term = true;
  std::optional<Error> fail_next;
  int released = 0;
  bool slow_mode = false, units = false;
  std::function<void()> on_spawn;  // in spawn(): on the worker when slow
  std::vector<std::string> status_reads;

 private:
  Result<Spawned> add(const SpawnSpec& spec, bool adopted) {
    Proc p{next_pid++, spec, adopted};
    if (units) p.unit = "fake-svc-" + std::to_string(p.pid) + ".service";
    procs.push_back(p);
    Spawned s;
    s.unit = p.unit;
    s.pid = p.pid;
    s.pidfd = 100 + static_cast<int>(procs.size());
    s.key.tgid = static_cast<uint32_t>(p.pid);
    return s;
  }
};

std::string env_of(const SpawnSpec& s, const std::string& key) {
  for (const auto& [k, v] : s.env)
    if (k == key) return v;
  return "<unset>";
}

ServiceConfig service(const std::string& name) {
  ServiceConfig c;
  c.name = name;
  c.command = {"/usr/bin/" + name, "--flag"};
  c.env = {{"LANG", "C"}};
  return c;
}

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest() { make(nullptr); }
  // (Re)builds the supervisor; with a worker, CRIU dumps run on it.
  void make(ActionWorker* worker) {
    SupervisorOptions o;
    o.worker = worker;
    o.log_dir = (dir.path / "logs").string();
    o.on_event = [this](const SupervisorEvent& e) { events.push_back(e); };
    o.start_of = [](pid_t pid) { return static_cast<uint64_t>(pid) * 10; };
    o.criu = &criu;
    o.verify_restored = [this](pid_t pid, uint64_t began, const std::string& cmd) {
      return verify_restored(pid, began, cmd);
    };
    sup = std::make_unique<Supervisor>(clock, spawner, std::move(o));
  }

  void advance_ms(uint64_t ms) {
    clock.advance(ms * kMs);
    sup->tick(clock.now_ns());
  }
  std::vector<K> kinds() const {
    std::vector<K> out;
    for (const auto& e : events) out.push_back(e.kind);
    return out;
  }
  const SupervisorEvent* last_event(K k) const {
    for (auto it = events.rbegin(); it != events.rend(); ++it)
      if (it->kind == k) return &*it;
    return nullptr;
  }
  ServiceStatus status_of(const std::string& name) const {
    for (const auto& s : sup->status())
      if (s.name == name) return s;
    return {};
  }
  // Crash the current process, then let the backoff pass; returns the delay announced.
  uint64_t crash_and_restart(const std::string& name) {
    spawner.crash(status_of(name).pid);
    sup->tick(clock.now_ns());
    const SupervisorEvent* r = last_event(K::Restarting);
    uint64_t delay = r != nullptr ? r->delay_ms : 0;
    advance_ms(delay);
    return delay;
  }

  SupTempDir dir;
  FakeClock clock;
  FakeSpawner spawner;
  std::function<Result<int>(const std::vector<std::string>&, std::string*)> criu_respond =
      [](const std::vector<std::string>&, std::string*) -> Result<int> { return Error{ENOENT, "missing"}; };
  std::vector<std::vector<std::string>> criu_calls;
  CriuBackend criu{[this](const std::vector<std::string>& argv, milliseconds, std::string* out) {
    criu_calls.push_back(argv);
    return criu_respond(argv, out);
  }};
  // Service "web" started as SystemdSpawner would: slow, in a unit of its own, off the loop.
  void web_under_systemd(ActionWorker& worker) {
    make(&worker);
    spawner.slow_mode = true;
    spawner.units = true;
    sup->configure({service("web")});
    settle(worker, "web");
  }
  // Applies what the worker finished until `name` has nothing under way.
  void settle(ActionWorker& worker, const std::string& name) {
    for (int i = 0; i < 10000 && worker.busy("service " + name); ++i) {
      worker.drain();
      std::this_thread::sleep_for(milliseconds(1));
    }
    ASSERT_FALSE(worker.busy("service " + name));
  }

  std::vector<SupervisorEvent> events;
  // The fake CRIU restores fake pids: accepted, unless a test puts the real check back.
  std::function<Result<void>(pid_t, uint64_t, const std::string&)> verify_restored =
      [](pid_t, uint64_t, const std::string&) -> Result<void> { return {}; };
  std::unique_ptr<Supervisor> sup;
};

TEST_F(SupervisorTest, ConfigureStartsServices) {
  sup->configure({service("web")});
  ASSERT_EQ(spawner.spawned(), 1u);
  const SpawnSpec& spec = spawner.last().spec;
  EXPECT_EQ(spec.argv, (std::vector<std::string>{"/usr/bin/web", "--flag"}));
  EXPECT_EQ(spec.cwd, "/");
  EXPECT_EQ(spec.log_path, (dir.path / "logs" / "web.log").string());
  EXPECT_EQ(env_of(spec, "LANG"), "C");
  EXPECT_EQ(env_of(spec, "FAULTPROBE_SERVICE"), "web");
  EXPECT_NE(env_of(spec, "PATH"), "<unset>");
  EXPECT_EQ(env_of(spec, "FAULTPROBE_CHECKPOINT_DIR"), "<unset>");  // no app backend
  EXPECT_TRUE(fs::is_directory(dir.path / "logs"));

  ServiceStatus st = status_of("web");
  EXPECT_EQ(st.state, "running");
  EXPECT_EQ(st.pid, 1000);
  EXPECT_EQ(st.key.tgid, 1000u);
  EXPECT_EQ(st.key.start_ns, 10000u);  // from start_of
  EXPECT_EQ(st.restarts, 0u);
  EXPECT_EQ(st.checkpoint_backend, "none");
  EXPECT_EQ(sup->service_of(1000), "web");
  EXPECT_FALSE(sup->service_of(1001));
  EXPECT_EQ(kinds(), (std::vector<K>{K::Started}));
}

TEST_F(SupervisorTest, CrashRestartsAfterTheBackoff) {
  sup->configure({service("web")});
  spawner.crash(1000);
  advance_ms(100);  // the daemon's tick: sees the exit, schedules the restart 100 ms out
  EXPECT_EQ(kinds(), (std::vector<K>{K::Started, K::Exited, K::Restarting}));
  EXPECT_EQ(last_event(K::Exited)->wait_status, W_EXITCODE(0, SIGSEGV));
  EXPECT_EQ(last_event(K::Restarting)->delay_ms, 100u);
  EXPECT_EQ(status_of("web").state, "backoff");
  EXPECT_EQ(status_of("web").last_exit, "killed by SIGSEGV");
  // The crashed process still maps to its service: the handler acts on the crash after the exit.
  EXPECT_EQ(sup->service_of(1000), "web");
  EXPECT_FALSE(sup->service_of(1002));
  advance_ms(99);
  EXPECT_EQ(spawner.spawned(), 1u);
  advance_ms(1);
  ASSERT_EQ(spawner.spawned(), 2u);
  ServiceStatus st = status_of("web");
  EXPECT_EQ(st.state, "running");
  EXPECT_EQ(st.pid, 1001);
  EXPECT_EQ(st.restarts, 1u);
  EXPECT_EQ(st.failures_in_window, 1u);
  EXPECT_EQ(sup->service_of(1001), "web");
  EXPECT_EQ(spawner.released, 1);  // the dead one's pidfd
}

TEST_F(SupervisorTest, BackoffDoublesUpToTheMaximumAndResetsAfterAStableRun) {
  ServiceConfig c = service("web");
  c.backoff_max = milliseconds(300);
  c.crash_loop_limit = 100;
  c.crash_loop_window = seconds(10);
  sup->configure({c});
  std::vector<uint64_t> delays;
  for (int i = 0; i < 4; ++i) delays.push_back(crash_and_restart("web"));
  EXPECT_EQ(delays, (std::vector<uint64_t>{100, 200, 300, 300}));
  EXPECT_EQ(spawner.spawned(), 5u);
  // A run as long as crash_loop_window without failing: back to the start.
  advance_ms(10'000);
  EXPECT_EQ(crash_and_restart("web"), 100u);
}

TEST_F(SupervisorTest, CrashLoopLimitKeepsTheServiceDown) {
  ServiceConfig c = service("web");
  c.crash_loop_limit = 3;
  c.crash_loop_window = seconds(60);
  sup->configure({c});
  crash_and_restart("web");
  crash_and_restart("web");
  EXPECT_EQ(spawner.spawned(), 3u);
  spawner.crash(1002);
  advance_ms(100);
  const SupervisorEvent* tripped = last_event(K::CrashLoopTripped);
  ASSERT_NE(tripped, nullptr);
  EXPECT_EQ(tripped->service, "web");
  EXPECT_NE(tripped->detail.find("3 failures in 60s"), std::string::npos) << tripped->detail;
  EXPECT_EQ(kinds().back(), K::CrashLoopTripped);  // no Restarting after it
  advance_ms(600'000);
  EXPECT_EQ(spawner.spawned(), 3u);
  ServiceStatus st = status_of("web");
  EXPECT_EQ(st.state, "failed");
  EXPECT_EQ(st.pid, 0);
  // A policy's restart does not revive it either.
  ActionOutcome o = sup->restart("web", false, false);
  EXPECT_EQ(o.result, ActionResult::Skipped);
  EXPECT_EQ(spawner.spawned(), 3u);
}

TEST_F(SupervisorTest, FailuresOutsideTheWindowDoNotCount) {
  ServiceConfig c = service("web");
  c.crash_loop_limit = 2;
  c.crash_loop_window = seconds(1);
  sup->configure({c});
  crash_and_restart("web");
  advance_ms(1500);
  crash_and_restart("web");
  EXPECT_EQ(status_of("web").state, "running");
  EXPECT_EQ(status_of("web").failures_in_window, 1u);
}

TEST_F(SupervisorTest, OnFailureDoesNotRestartACleanExit) {
  sup->configure({service("web")});
  spawner.exit_with(1000, 0);
  advance_ms(100);
  advance_ms(10'000);
  EXPECT_EQ(spawner.spawned(), 1u);
  EXPECT_EQ(status_of("web").state, "stopped");
  EXPECT_EQ(status_of("web").last_exit, "exited with code 0");
  // But a non-zero exit is a failure.
  ASSERT_EQ(sup->restart("web", false, false).result, ActionResult::Ok);
  ASSERT_EQ(spawner.spawned(), 2u);
  spawner.exit_with(1001, 3);
  advance_ms(100);
  advance_ms(100);
  EXPECT_EQ(spawner.spawned(), 3u);
}

TEST_F(SupervisorTest, AlwaysRestartsAndNoNever) {
  ServiceConfig a = service("always");
  a.restart = ServiceConfig::Restart::Always;
  ServiceConfig n = service("never");
  n.restart = ServiceConfig::Restart::No;
  sup->configure({a, n});
  ASSERT_EQ(spawner.spawned(), 2u);
  spawner.exit_with(status_of("always").pid, 0);
  spawner.crash(status_of("never").pid);
  advance_ms(100);
  advance_ms(100);
  EXPECT_EQ(spawner.spawned(), 3u);
  EXPECT_EQ(status_of("always").state, "running");
  EXPECT_EQ(status_of("always").failures_in_window, 0u);  // a clean exit is no failure
  EXPECT_EQ(status_of("never").state, "failed");
}

TEST_F(SupervisorTest, RestartSendsTermThenKillAfterTheGraceThenStarts) {
  spawner.exit_on_term = false;  // a service that ignores SIGTERM
  sup->configure({service("web")});
  ActionOutcome o = sup->restart("web", false, false);
  EXPECT_EQ(o.result, ActionResult::Ok);
  EXPECT_NE(o.detail.find("SIGTERM sent to pid 1000"), std::string::npos) << o.detail;
  EXPECT_EQ(spawner.proc(1000).signals, (std::vector<int>{SIGTERM}));
  EXPECT_EQ(status_of("web").state, "stopping");
  advance_ms(4999);
  EXPECT_EQ(spawner.proc(1000).signals, (std::vector<int>{SIGTERM}));
  advance_ms(1);  // the 5 s grace is over
  EXPECT_EQ(spawner.proc(1000).signals, (std::vector<int>{SIGTERM, SIGKILL}));
  EXPECT_EQ(spawner.spawned(), 1u);
  advance_ms(100);  // reaped: stopped, and started again at once
  EXPECT_EQ(spawner.spawned(), 2u);
  EXPECT_EQ(status_of("web").state, "running");
  EXPECT_EQ(status_of("web").failures_in_window, 0u);  // asked for, not a failure
  const SupervisorEvent* stopped = last_event(K::Stopped);
  ASSERT_NE(stopped, nullptr);
  EXPECT_EQ(stopped->wait_status, W_EXITCODE(0, SIGKILL));
  EXPECT_EQ(last_event(K::Exited), nullptr);
}

TEST_F(SupervisorTest, RestartOfAServiceThatHonoursTermIsQuick) {
  sup->configure({service("web")});
  EXPECT_EQ(sup->restart("web", false, false).result, ActionResult::Ok);
  advance_ms(100);
  EXPECT_EQ(spawner.spawned(), 2u);
  EXPECT_EQ(spawner.proc(1000).signals, (std::vector<int>{SIGTERM}));
  // Unknown service.
  EXPECT_EQ(sup->restart("nope", false, false).result, ActionResult::Failed);
}

TEST_F(SupervisorTest, DryRunChangesNothing) {
  sup->configure({service("web")});
  ActionOutcome o = sup->restart("web", true, true);
  EXPECT_EQ(o.result, ActionResult::DryRun);
  EXPECT_EQ(o.detail, "would restart service web (pid 1000: SIGTERM, 5s grace, then SIGKILL) "
                      "(no checkpoint backend: plain start)");
  advance_ms(10'000);
  EXPECT_TRUE(spawner.proc(1000).signals.empty());
  EXPECT_EQ(spawner.spawned(), 1u);
  EXPECT_EQ(status_of("web").state, "running");
}

TEST_F(SupervisorTest, ReloadStartsNewStopsRemovedRestartsChanged) {
  sup->configure({service("a"), service("b"), service("c")});
  ASSERT_EQ(spawner.spawned(), 3u);
  const pid_t a = status_of("a").pid, b = status_of("b").pid, c = status_of("c").pid;
  ServiceConfig b2 = service("b");
  b2.command = {"/usr/bin/b", "--new"};
  sup->configure({service("a"), b2, service("d")});
  EXPECT_TRUE(spawner.proc(a).signals.empty());
  EXPECT_EQ(spawner.proc(b).signals, (std::vector<int>{SIGTERM}));
  EXPECT_EQ(spawner.proc(c).signals, (std::vector<int>{SIGTERM}));
  EXPECT_EQ(spawner.last().spec.argv[0], "/usr/bin/d");
  advance_ms(100);
  std::vector<std::string> names;
  for (const auto& s : sup->status()) names.push_back(s.name + ":" + s.state);
  EXPECT_EQ(names, (std::vector<std::string>{"a:running", "b:running", "d:running"}));
  EXPECT_EQ(status_of("a").pid, a);
  EXPECT_EQ(spawner.last().spec.argv, (std::vector<std::string>{"/usr/bin/b", "--new"}));
  EXPECT_EQ(spawner.spawned(), 5u);
  // The same config again touches nothing.
  sup->configure({service("a"), b2, service("d")});
  advance_ms(100);
  EXPECT_EQ(spawner.spawned(), 5u);
}

TEST_F(SupervisorTest, ReloadRevivesAFailedServiceWhoseConfigChanged) {
  ServiceConfig c = service("web");
  c.crash_loop_limit = 1;
  sup->configure({c});
  spawner.crash(1000);
  advance_ms(100);
  ASSERT_EQ(status_of("web").state, "failed");
  c.crash_loop_limit = 5;
  sup->configure({c});
  EXPECT_EQ(status_of("web").state, "running");
  EXPECT_EQ(status_of("web").failures_in_window, 0u);
}

TEST_F(SupervisorTest, StartFailuresBackOffAndCount) {
  ServiceConfig c = service("web");
  c.crash_loop_limit = 2;
  spawner.fail_next = Error{ENOENT, "cannot exec /usr/bin/web: No such file or directory"};
  sup->configure({c});
  EXPECT_EQ(kinds(), (std::vector<K>{K::StartFailed, K::Restarting}));
  EXPECT_EQ(status_of("web").state, "backoff");
  EXPECT_EQ(status_of("web").last_exit, "start failed: cannot exec /usr/bin/web: No such file or directory");
  advance_ms(100);
  EXPECT_EQ(status_of("web").state, "running");
}

// App-assisted checkpoints: the newest complete one goes to the new process.
class AppCheckpointTest : public SupervisorTest {
 protected:
  AppCheckpointTest() {
    ckdir = dir.path / "ck";
    cfg = service("counter");
    cfg.checkpoint.backend = CheckpointConfig::Backend::App;
    cfg.checkpoint.dir = ckdir.string();
  }
  void write_ckpt(const std::string& name, int age_s) {
    std::ofstream(ckdir / name) << "1\n";
    fs::last_write_time(ckdir / name, fs::file_time_type::clock::now() - seconds(100 - age_s));
  }
  fs::path ckdir;
  ServiceConfig cfg;
};

TEST_F(AppCheckpointTest, ServiceGetsItsDirectoryAndNoRestoreAtFirst) {
  sup->configure({cfg});
  EXPECT_TRUE(fs::is_directory(ckdir));  // created for it
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_CHECKPOINT_DIR"), ckdir.string());
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_SERVICE"), "counter");
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), "<unset>");
  EXPECT_EQ(status_of("counter").checkpoint_backend, "app");
}

TEST_F(AppCheckpointTest, RestartFromCheckpointPassesTheNewestComplete) {
  sup->configure({cfg});
  write_ckpt("ckpt-1", 1);
  write_ckpt("ckpt-2", 2);
  write_ckpt("ckpt-3.tmp", 3);
  EXPECT_EQ(status_of("counter").last_checkpoint, (ckdir / "ckpt-2").string());
  ActionOutcome dry = sup->restart("counter", true, true);
  EXPECT_NE(dry.detail.find("from checkpoint " + (ckdir / "ckpt-2").string()), std::string::npos) << dry.detail;
  EXPECT_EQ(sup->restart("counter", true, false).result, ActionResult::Ok);
  advance_ms(100);
  ASSERT_EQ(spawner.spawned(), 2u);
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), (ckdir / "ckpt-2").string());
  // A plain restart does not.
  EXPECT_EQ(sup->restart("counter", false, false).result, ActionResult::Ok);
  advance_ms(100);
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), "<unset>");
}

TEST_F(AppCheckpointTest, CrashRestartPassesTheNewestCheckpoint) {
  sup->configure({cfg});
  write_ckpt("ckpt-7", 7);
  crash_and_restart("counter");
  ASSERT_EQ(spawner.spawned(), 2u);
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), (ckdir / "ckpt-7").string());
  EXPECT_NE(last_event(K::Started)->detail.find("ckpt-7"), std::string::npos);
}

// A checkpoint directory others can write (or reach through a symlink) could
// hand the service a state someone else chose: refused, and the reason said.
TEST_F(AppCheckpointTest, WorldWritableOrSymlinkedDirectoryIsRefused) {
  sup->configure({cfg});
  write_ckpt("ckpt-1", 1);
  fs::permissions(ckdir, fs::perms::all);  // 0777
  crash_and_restart("counter");
  ASSERT_EQ(spawner.spawned(), 2u);
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), "<unset>");
  const SupervisorEvent* rf = last_event(K::RestoreFailed);
  ASSERT_NE(rf, nullptr);
  EXPECT_NE(rf->detail.find("checkpoint directory " + ckdir.string() + " is not trusted: " + ckdir.string() +
                            " is writable by others"),
            std::string::npos)
      << rf->detail;

}

TEST_F(AppCheckpointTest, SymlinkedDirectoryIsRefused) {
  const fs::path real_dir = dir.path / "real-ck";
  fs::create_directory(real_dir);
  std::ofstream(real_dir / "ckpt-1") << "1\n";
  fs::create_symlink(real_dir, ckdir);
  sup->configure({cfg});
  crash_and_restart("counter");
  ASSERT_EQ(spawner.spawned(), 2u);
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), "<unset>");
  const SupervisorEvent* rf = last_event(K::RestoreFailed);
  ASSERT_NE(rf, nullptr);
  EXPECT_NE(rf->detail.find(ckdir.string() + " is a symlink"), std::string::npos) << rf->detail;
}

// The directory is handed to the service's user through an fd: a symlink put
// where it should be never gets root to chown what it points at.
TEST_F(AppCheckpointTest, ChownNeverFollowsALink) {
  ASSERT_EQ(geteuid(), 0u) << "needs root to chown";
  const fs::path target = dir.path / "root-owned";
  fs::create_directory(target);
  fs::create_symlink(target, ckdir);
  cfg.user = "nobody";
  sup->configure({cfg});
  struct stat sb {};
  ASSERT_EQ(lstat(target.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_uid, 0u);  // not nobody's
  ASSERT_EQ(spawner.spawned(), 1u);  // the service starts anyway, with no restore from there

  // A real directory is handed over.
  fs::remove(ckdir);
  crash_and_restart("counter");
  ASSERT_EQ(spawner.spawned(), 2u);
  ASSERT_EQ(stat(ckdir.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_uid, 65534u);
}

TEST_F(AppCheckpointTest, NoCheckpointYetIsAPlainStart) {
  sup->configure({cfg});
  crash_and_restart("counter");
  ASSERT_EQ(spawner.spawned(), 2u);
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), "<unset>");
}

// A checkpoint taken while a fault is open on the service is suspect: a
// restore skips it, and status lists it.
TEST_F(AppCheckpointTest, CheckpointTakenWhileAFaultIsOpenIsSuspect) {
  sup->configure({cfg});
  write_ckpt("ckpt-1", 1);
  sup->set_faulty({"counter"});
  write_ckpt("ckpt-2", 100);  // now: while the fault is open
  sup->set_faulty({});
  EXPECT_EQ(status_of("counter").suspect_checkpoints, std::vector<std::string>{(ckdir / "ckpt-2").string()});
  ActionOutcome o = sup->restart("counter", true, false);
  EXPECT_EQ(o.restore_source, "newest");
  EXPECT_NE(o.detail.find("from checkpoint " + (ckdir / "ckpt-1").string() +
                          " (newest: skipped 1 suspect (taken while a fault was open))"),
            std::string::npos)
      << o.detail;
  advance_ms(100);
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), (ckdir / "ckpt-1").string());
}

// A restore that brought the fault back: the next one starts from the oldest
// checkpoint, the one after that clean, and each says so.
TEST_F(AppCheckpointTest, RestoreThatDidNotHoldFallsBackToAnOlderCheckpointThenACleanStart) {
  sup->configure({cfg});
  write_ckpt("ckpt-1", 1);
  write_ckpt("ckpt-2", 2);
  write_ckpt("ckpt-3", 3);
  EXPECT_EQ(sup->restart("counter", true, false).restore_source, "newest");
  advance_ms(100);
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), (ckdir / "ckpt-3").string());

  auto next = sup->restore_verdict("counter", false);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, "an older checkpoint, " + (ckdir / "ckpt-1").string());
  ActionOutcome o = sup->restart("counter", true, false);
  EXPECT_EQ(o.restore_source, "older");
  advance_ms(100);
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), (ckdir / "ckpt-1").string());
  EXPECT_NE(last_event(K::Started)->detail.find("(older: the newer ones brought the fault back)"), std::string::npos)
      << last_event(K::Started)->detail;

  next = sup->restore_verdict("counter", false);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, "a clean start (the older checkpoint brought the fault back too)");
  o = sup->restart("counter", true, false);
  EXPECT_EQ(o.restore_source, "clean");
  EXPECT_NE(o.detail.find("with a clean start"), std::string::npos) << o.detail;
  advance_ms(100);
  EXPECT_EQ(env_of(spawner.last().spec, "FAULTPROBE_RESTORE_FROM"), "<unset>");
  EXPECT_NE(last_event(K::Started)->detail.find("clean start"), std::string::npos);
  EXPECT_FALSE(sup->restore_verdict("counter", false));  // nothing older than a clean start

  // It held in the end: the next fault starts over from the newest good checkpoint.
  write_ckpt("ckpt-9", 99);
  EXPECT_FALSE(sup->restore_verdict("counter", true));
  o = sup->restart("counter", true, false);
  EXPECT_EQ(o.restore_source, "newest");
  EXPECT_NE(o.detail.find((ckdir / "ckpt-9").string()), std::string::npos) << o.detail;
}

// CRIU.
class CriuSupervisorTest : public SupervisorTest {
 protected:
  CriuSupervisorTest() {
    cfg = service("db");
    cfg.checkpoint.backend = CheckpointConfig::Backend::Criu;
    cfg.checkpoint.dir = (dir.path / "images").string();
    cfg.checkpoint.every = seconds(1);
    cfg.checkpoint.keep = 2;
  }
  void make_criu_work() {
    criu_respond = [](const std::vector<std::string>& argv, std::string* out) -> Result<int> {
      if (argv[1] == "--version") *out = "Version: 4.1\n";
      if (argv[1] == "dump") std::ofstream(fs::path(argv[5]) / "core.img") << "x";
      if (argv[1] == "restore") std::ofstream(argv[7]) << "4321\n";
      return 0;
    };
    ASSERT_TRUE(criu.probe().available);
  }
  // db started with the worker, and two dumps taken (off the loop).
  void two_images(ActionWorker& worker) {
    make_criu_work();
    make(&worker);
    sup->configure({cfg});
    for (int i = 0; i < 2; ++i) {
      advance_ms(1000);
      settle(worker, "db");
    }
  }
  ServiceConfig cfg;
};

TEST_F(CriuSupervisorTest, UnavailableCriuFallsBackToAPlainStartAndSaysWhy) {
  criu_respond = [](const std::vector<std::string>& argv, std::string* out) -> Result<int> {
    if (argv[1] == "--version") {
      *out = "Version: 3.17.1\n";
      return 0;
    }
    *out = "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n";
    return 1;
  };
  criu.probe();
  sup->configure({cfg});
  ServiceStatus st = status_of("db");
  ASSERT_TRUE(st.criu.has_value());
  EXPECT_FALSE(st.criu->available);
  EXPECT_NE(st.criu->reason.find("vDSO"), std::string::npos);
  advance_ms(5000);  // no dumps attempted
  EXPECT_EQ(criu_calls.size(), 2u);  // only the probe
  EXPECT_EQ(sup->restart("db", true, false).result, ActionResult::Ok);
  advance_ms(100);
  ASSERT_EQ(spawner.spawned(), 2u);
  const SupervisorEvent* rf = last_event(K::RestoreFailed);
  ASSERT_NE(rf, nullptr);
  EXPECT_NE(rf->detail.find("CRIU unavailable"), std::string::npos) << rf->detail;
  EXPECT_EQ(status_of("db").state, "running");
}

TEST_F(CriuSupervisorTest, DumpsOnScheduleAndRestoresTheNewestImage) {
  make_criu_work();
  sup->configure({cfg});
  criu_calls.clear();
  advance_ms(999);
  EXPECT_TRUE(criu_calls.empty());
  advance_ms(1);
  ASSERT_EQ(criu_calls.size(), 1u);
  EXPECT_EQ(criu_calls[0][1], "dump");
  EXPECT_EQ(criu_calls[0][3], "1000");
  advance_ms(1000);
  advance_ms(1000);
  EXPECT_EQ(criu_calls.size(), 3u);
  const std::string newest = cfg.checkpoint.dir + "/000003";
  EXPECT_EQ(last_event(K::Checkpointed)->detail, newest);
  EXPECT_EQ(status_of("db").last_checkpoint, newest);
  EXPECT_FALSE(fs::exists(cfg.checkpoint.dir + "/000001"));  // keep = 2

  EXPECT_EQ(sup->restart("db", true, false).result, ActionResult::Ok);
  advance_ms(100);
  ASSERT_EQ(criu_calls.back()[1], "restore");
  EXPECT_EQ(criu_calls.back()[3], newest);
  EXPECT_EQ(spawner.spawned(), 1u);  // not spawned: adopted
  EXPECT_EQ(status_of("db").pid, 4321);
  EXPECT_EQ(sup->service_of(4321), "db");
  EXPECT_NE(last_event(K::Started)->detail.find("restored from " + newest), std::string::npos);
}

// CRIU restores as root what the images say: a directory a non-root user can
// write is never restored from.
TEST_F(CriuSupervisorTest, ImagesInADirectoryOthersCanWriteAreNotRestored) {
  make_criu_work();
  sup->configure({cfg});
  advance_ms(1000);  // one dump
  ASSERT_EQ(status_of("db").last_checkpoint, cfg.checkpoint.dir + "/000001");
  fs::permissions(cfg.checkpoint.dir, fs::perms::group_write, fs::perm_options::add);
  criu_calls.clear();
  EXPECT_EQ(sup->restart("db", true, false).result, ActionResult::Ok);
  advance_ms(100);
  for (const auto& c : criu_calls) EXPECT_NE(c[1], "restore");
  const SupervisorEvent* rf = last_event(K::RestoreFailed);
  ASSERT_NE(rf, nullptr);
  EXPECT_NE(rf->detail.find("is writable by its group"), std::string::npos) << rf->detail;
  EXPECT_EQ(spawner.spawned(), 2u);  // a plain start instead
  // Nor are new images written there.
  advance_ms(1000);
  ASSERT_NE(last_event(K::CheckpointFailed), nullptr);
  EXPECT_NE(last_event(K::CheckpointFailed)->detail.find("not trusted"), std::string::npos);
}

// A restore.pid names a process: one that ran before the restore (here the
// test itself) is someone else's, and is neither adopted nor ever signalled.
TEST_F(CriuSupervisorTest, RestorePidNamingAnotherProcessIsNotAdopted) {
  make_criu_work();
  const pid_t self = getpid();
  criu_respond = [self](const std::vector<std::string>& argv, std::string* out) -> Result<int> {
    if (argv[1] == "--version") *out = "Version: 4.1\n";
    if (argv[1] == "dump") std::ofstream(fs::path(argv[5]) / "core.img") << "x";
    if (argv[1] == "restore") std::ofstream(argv[7]) << self << "\n";
    return 0;
  };
  verify_restored = [](pid_t pid, uint64_t began, const std::string& cmd) {
    return verify_restored_process(pid, began, cmd);
  };
  sup->configure({cfg});
  advance_ms(1000);
  EXPECT_EQ(sup->restart("db", true, false).result, ActionResult::Ok);
  advance_ms(100);
  ASSERT_EQ(criu_calls.back()[1], "restore");
  for (const auto& p : spawner.procs) EXPECT_FALSE(p.adopted);
  const SupervisorEvent* rf = last_event(K::RestoreFailed);
  ASSERT_NE(rf, nullptr);
  // Refused for its start time or, when this test process started within
  // the clock tick the restore began in (ctest starts one per test), for
  // what it runs: either way not adopted.
  EXPECT_EQ(rf->detail.rfind("restore.pid names pid " + std::to_string(self) + ", which ", 0), 0u) << rf->detail;
  EXPECT_NE(rf->detail.find("not adopted"), std::string::npos) << rf->detail;
  EXPECT_NE(status_of("db").pid, self);
  EXPECT_EQ(spawner.spawned(), 2u);
}

// With the action worker a dump runs off the loop: tick() returns while criu
// runs, the service's exit is not reaped until the dump's result is in (its
// pid cannot be reused under criu), and no second dump starts meanwhile.
TEST_F(CriuSupervisorTest, ADumpRunsOffTheLoopAndHoldsTheReapUntilItsResultIsIn) {
  make_criu_work();
  ActionWorker worker;
  make(&worker);
  std::atomic<bool> in_dump{false}, open{false};
  criu_respond = [&](const std::vector<std::string>& argv, std::string* out) -> Result<int> {
    if (argv[1] == "dump") {
      in_dump = true;
      while (!open) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      std::ofstream(fs::path(argv[5]) / "core.img") << "x";
    }
    (void)out;
    return 0;
  };
  sup->configure({cfg});
  const pid_t pid = status_of("db").pid;
  advance_ms(1000);  // the dump is due: queued, and tick() returned
  for (int i = 0; i < 5000 && !in_dump; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(in_dump.load());
  EXPECT_EQ(worker.stats().running, "criu dump of service db");
  spawner.crash(pid);
  advance_ms(1000);  // a dump is due again, and the process is gone: neither happens yet
  EXPECT_EQ(last_event(K::Exited), nullptr);
  EXPECT_EQ(status_of("db").state, "running");
  open = true;
  for (int i = 0; i < 5000 && worker.busy("service db"); ++i) {
    worker.drain();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_FALSE(worker.busy("service db"));
  ASSERT_NE(last_event(K::Checkpointed), nullptr);
  EXPECT_EQ(last_event(K::Checkpointed)->detail, cfg.checkpoint.dir + "/000001");
  EXPECT_EQ(last_event(K::Checkpointed)->pid, pid);
  advance_ms(10);  // now the exit is seen
  ASSERT_NE(last_event(K::Exited), nullptr);
  EXPECT_EQ(last_event(K::Exited)->pid, pid);
  size_t dumps = 0;
  for (const auto& c : criu_calls) dumps += c[1] == "dump";
  EXPECT_EQ(dumps, 1u);
  worker.shutdown();
}

// Issue 15 item 2: a start that blocks (systemd-run, systemctl show) runs on
// the worker; the service is "starting" and the loop's ticks go on meanwhile.
TEST_F(SupervisorTest, AStartThroughASlowSpawnerRunsOffTheLoop) {
  ActionWorker worker;
  make(&worker);
  spawner.slow_mode = true;
  std::atomic<bool> in_spawn{false}, open{false};
  spawner.on_spawn = [&] {
    in_spawn = true;
    while (!open) std::this_thread::sleep_for(milliseconds(1));
  };
  sup->configure({service("web")});  // returns while the spawn blocks
  for (int i = 0; i < 5000 && !in_spawn; ++i) std::this_thread::sleep_for(milliseconds(1));
  ASSERT_TRUE(in_spawn.load());
  EXPECT_EQ(status_of("web").state, "starting");
  EXPECT_EQ(worker.stats().running, "start of service web");
  EXPECT_EQ(sup->restart("web", false, false).result, ActionResult::Skipped);  // already on its way
  advance_ms(100);
  worker.drain();
  EXPECT_EQ(status_of("web").state, "starting");
  EXPECT_EQ(last_event(K::Started), nullptr);
  open = true;
  settle(worker, "web");
  ServiceStatus st = status_of("web");
  EXPECT_EQ(st.state, "running");
  EXPECT_EQ(st.pid, 1000);
  EXPECT_EQ(kinds(), (std::vector<K>{K::Started}));
  worker.shutdown();
}

// A start that does not finish in time (systemd-run's timeout) is a failed
// start, counted towards the crash-loop limit like any other.
TEST_F(SupervisorTest, ASlowStartThatTimesOutCountsTowardsTheCrashLoopLimit) {
  ActionWorker worker;
  make(&worker);
  spawner.slow_mode = true;
  ServiceConfig c = service("web");
  c.crash_loop_limit = 2;
  spawner.fail_next = Error{ETIMEDOUT, "systemd-run --unit=faultprobe-svc-web-1.service: timed out"};
  sup->configure({c});
  EXPECT_EQ(status_of("web").state, "starting");
  settle(worker, "web");
  ASSERT_NE(last_event(K::StartFailed), nullptr);
  EXPECT_NE(last_event(K::StartFailed)->detail.find("timed out"), std::string::npos);
  EXPECT_EQ(status_of("web").state, "backoff");
  EXPECT_EQ(status_of("web").failures_in_window, 1u);
  spawner.fail_next = Error{ETIMEDOUT, "timed out again"};
  advance_ms(100);  // the backoff is over: the next start, off the loop again
  EXPECT_EQ(status_of("web").state, "starting");
  settle(worker, "web");
  EXPECT_EQ(status_of("web").state, "failed");
  EXPECT_NE(last_event(K::CrashLoopTripped), nullptr);
  EXPECT_EQ(spawner.spawned(), 0u);
  worker.shutdown();
}

// A service removed from the config while it starts is stopped once it is up.
TEST_F(SupervisorTest, AServiceRemovedWhileStartingIsStoppedOnceUp) {
  ActionWorker worker;
  make(&worker);
  spawner.slow_mode = true;
  std::atomic<bool> open{false};
  spawner.on_spawn = [&] {
    while (!open) std::this_thread::sleep_for(milliseconds(1));
  };
  sup->configure({service("web")});
  sup->configure({});
  EXPECT_EQ(status_of("web").state, "starting");  // kept until its start is in
  open = true;
  settle(worker, "web");
  EXPECT_EQ(status_of("web").state, "stopping");
  EXPECT_EQ(spawner.last().signals, std::vector<int>{SIGTERM});
  advance_ms(10);
  EXPECT_TRUE(sup->status().empty());
  worker.shutdown();
}

// Issue 15 item 4: under systemd the exit status comes from the unit, off the
// loop; a clean exit is not a crash for the limit, a failing one is.
TEST_F(SupervisorTest, AnExitUnderSystemdIsReadFromItsUnitAndACleanOneIsNoFailure) {
  ActionWorker worker;
  web_under_systemd(worker);
  ASSERT_EQ(status_of("web").state, "running");
  spawner.exit_with(1000, 0);
  advance_ms(10);  // the pidfd says it ended: the unit's record is read on the worker
  settle(worker, "web");
  EXPECT_EQ(spawner.status_reads, std::vector<std::string>{"fake-svc-1000.service"});
  ASSERT_NE(last_event(K::Exited), nullptr);
  EXPECT_EQ(last_event(K::Exited)->wait_status, W_EXITCODE(0, 0));
  EXPECT_EQ(status_of("web").state, "stopped");  // restart = on-failure: a clean exit stays down
  EXPECT_EQ(status_of("web").failures_in_window, 0u);
  EXPECT_EQ(status_of("web").last_exit, "exited with code 0");

  EXPECT_EQ(sup->restart("web", false, false).result, ActionResult::Ok);
  settle(worker, "web");
  ASSERT_EQ(status_of("web").pid, 1001);
  spawner.exit_with(1001, 1);
  advance_ms(10);
  settle(worker, "web");
  EXPECT_EQ(last_event(K::Exited)->wait_status, W_EXITCODE(1, 0));
  EXPECT_EQ(status_of("web").failures_in_window, 1u);
  EXPECT_EQ(status_of("web").state, "backoff");
  worker.shutdown();
}

// A restart under systemd: the old unit's record is read, then the next
// start is queued from that result (same service, one job after the other).
TEST_F(SupervisorTest, ARestartUnderSystemdReadsTheOldExitThenStartsOffTheLoop) {
  ActionWorker worker;
  web_under_systemd(worker);
  EXPECT_EQ(sup->restart("web", false, false).result, ActionResult::Ok);
  advance_ms(10);  // SIGTERM took it down: its status is read, then the start runs
  settle(worker, "web");
  ASSERT_NE(last_event(K::Stopped), nullptr);
  EXPECT_EQ(last_event(K::Stopped)->wait_status, W_EXITCODE(0, SIGTERM));
  EXPECT_EQ(last_event(K::StartFailed), nullptr);
  EXPECT_EQ(status_of("web").state, "running");
  EXPECT_EQ(status_of("web").pid, 1001);
  EXPECT_EQ(spawner.status_reads, std::vector<std::string>{"fake-svc-1000.service"});
  worker.shutdown();
}

// Without a record (the unit could not be read) the exit stays unknown: a failure, as before.
TEST_F(SupervisorTest, AnUnreadableUnitLeavesTheExitUnknownAndCountsIt) {
  spawner.units = true;
  sup->configure({service("web")});
  spawner.exit_with(1000, 0);
  spawner.last().unit = "gone.service";  // exit_status() finds nothing
  advance_ms(10);
  ASSERT_NE(last_event(K::Exited), nullptr);
  EXPECT_EQ(last_event(K::Exited)->wait_status, kUnknownWaitStatus);
  EXPECT_EQ(status_of("web").failures_in_window, 1u);
}

// Issue 15 item 1: `criu restore` runs on the worker; one that fails falls to
// the next rung in the same start (an older image), and the records say which.
TEST_F(CriuSupervisorTest, ARestoreRunsOffTheLoopAndAFailedOneFallsBackToAnOlderImage) {
  ActionWorker worker;
  two_images(worker);
  const std::string older = cfg.checkpoint.dir + "/000001", newest = cfg.checkpoint.dir + "/000002";
  ASSERT_EQ(status_of("db").last_checkpoint, newest);
  std::atomic<bool> in_restore{false}, open{false};
  criu_respond = [&](const std::vector<std::string>& argv, std::string* out) -> Result<int> {
    if (argv[1] != "restore") return 0;
    if (argv[3] == newest) {
      *out = "Error (criu/cr-restore.c:1): Can't restore: pid 1000 is busy\n";
      return 1;
    }
    in_restore = true;
    while (!open) std::this_thread::sleep_for(milliseconds(1));
    std::ofstream(argv[7]) << "4321\n";
    return 0;
  };
  EXPECT_EQ(sup->restart("db", true, false).result, ActionResult::Ok);
  advance_ms(10);  // the old process is gone: the restore is queued, tick() returned
  for (int i = 0; i < 5000 && !in_restore; ++i) std::this_thread::sleep_for(milliseconds(1));
  ASSERT_TRUE(in_restore.load());
  EXPECT_EQ(status_of("db").state, "starting");
  EXPECT_EQ(worker.stats().running, "criu restore of service db");
  advance_ms(100);  // ticks go on
  EXPECT_EQ(status_of("db").state, "starting");
  open = true;
  settle(worker, "db");
  const SupervisorEvent* rf = last_event(K::RestoreFailed);
  ASSERT_NE(rf, nullptr);
  EXPECT_NE(rf->detail.find("pid 1000 is busy; trying the older " + older), std::string::npos) << rf->detail;
  const SupervisorEvent* started = last_event(K::Started);
  ASSERT_NE(started, nullptr);
  EXPECT_EQ(started->pid, 4321);
  EXPECT_NE(started->detail.find("restored from " + older), std::string::npos) << started->detail;
  EXPECT_EQ(started->restore_source, "older");
  EXPECT_EQ(status_of("db").state, "running");
  EXPECT_EQ(spawner.spawned(), 1u);  // adopted, not spawned
  worker.shutdown();
}

// Every rung's restore failing (or timing out) ends in a clean start; a fault
// after it has nothing left to fall back to.
TEST_F(CriuSupervisorTest, WhenEveryRestoreFailsTheStartIsCleanAndSaysSo) {
  ActionWorker worker;
  two_images(worker);
  criu_respond = [](const std::vector<std::string>& argv, std::string*) -> Result<int> {
    if (argv[1] == "restore") return Error{ETIMEDOUT, "timed out after 60000 ms"};
    return 0;
  };
  EXPECT_EQ(sup->restart("db", true, false).result, ActionResult::Ok);
  advance_ms(10);
  settle(worker, "db");
  size_t restores = 0, failed = 0;
  for (const auto& c : criu_calls) restores += c[1] == "restore";
  for (const auto& e : events) failed += e.kind == K::RestoreFailed;
  EXPECT_EQ(restores, 2u);  // the newest, then the older one
  EXPECT_EQ(failed, 2u);
  EXPECT_NE(last_event(K::RestoreFailed)->detail.find("timed out after 60000 ms; starting without restore"),
            std::string::npos);
  const SupervisorEvent* started = last_event(K::Started);
  EXPECT_EQ(started->restore_source, "clean");
  EXPECT_NE(started->detail.find("clean start (2 restore(s) failed)"), std::string::npos) << started->detail;
  EXPECT_EQ(spawner.spawned(), 2u);
  EXPECT_EQ(sup->restore_verdict("db", false), std::nullopt);  // nothing older than a clean start
  worker.shutdown();
}

TEST_F(SupervisorTest, StopAllStopsEverything) {
  sup->configure({service("a"), service("b")});
  spawner.crash(status_of("b").pid);
  advance_ms(10);  // b in backoff
  sup->stop_all();
  EXPECT_EQ(status_of("a").state, "stopped");
  EXPECT_EQ(status_of("b").state, "stopped");
  advance_ms(10'000);
  EXPECT_EQ(spawner.spawned(), 2u);
}

// ---- real processes ----

class TestMonotonic : public Clock {
 public:
  uint64_t now_ns() const override {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
  }
};

// Ticks every 20 ms until `done` or the deadline; false on timeout.
bool run_until(Supervisor& sup, const Clock& clock, std::chrono::milliseconds limit,
               const std::function<bool()>& done) {
  const uint64_t end = clock.now_ns() + static_cast<uint64_t>(limit.count()) * kMs;
  while (clock.now_ns() < end) {
    sup.tick(clock.now_ns());
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

TEST(SupervisorRealProcesses, CrashedShellIsBackWithinASecond) {
  SupTempDir dir;
  TestMonotonic clock;
  RealSpawner spawner;
  std::vector<SupervisorEvent> events;
  SupervisorOptions o;
  o.log_dir = dir.path.string();
  o.on_event = [&](const SupervisorEvent& e) { events.push_back(e); };
  Supervisor sup(clock, spawner, o);
  ServiceConfig c;
  c.name = "crasher";
  // Crashes the first time (no marker yet), runs on the second.
  c.command = {"/bin/sh", "-c",
               "echo run $$; if [ -e marker ]; then exec sleep 30; fi; touch marker; kill -SEGV $$"};
  c.cwd = dir.path.string();
  sup.configure({c});
  auto started = [&] {
    return std::count_if(events.begin(), events.end(), [](const auto& e) { return e.kind == K::Started; });
  };
  ASSERT_EQ(started(), 1);
  uint64_t crashed_at = 0;
  ASSERT_TRUE(run_until(sup, clock, seconds(5), [&] {
    if (crashed_at == 0 && !events.empty() && events.back().kind == K::Restarting) crashed_at = clock.now_ns();
    return started() == 2;
  }));
  ASSERT_NE(crashed_at, 0u);
  EXPECT_LT(clock.now_ns() - crashed_at, 1000 * kMs);
  const auto exited = std::find_if(events.begin(), events.end(), [](const auto& e) { return e.kind == K::Exited; });
  ASSERT_NE(exited, events.end());
  EXPECT_TRUE(WIFSIGNALED(exited->wait_status));
  EXPECT_EQ(WTERMSIG(exited->wait_status), SIGSEGV);
  ServiceStatus st = sup.status().at(0);
  EXPECT_EQ(st.state, "running");
  EXPECT_EQ(st.restarts, 1u);
  EXPECT_EQ(sup.service_of(static_cast<uint32_t>(st.pid)), "crasher");
  // Both runs wrote to the service's log (the second one may need a moment).
  auto log_lines = [&] {
    std::ifstream log(dir.path / "crasher.log");
    std::vector<std::string> lines;
    for (std::string l; std::getline(log, l);) lines.push_back(l);
    return lines;
  };
  EXPECT_TRUE(run_until(sup, clock, seconds(5), [&] { return log_lines().size() >= 2; }));
  sup.stop_all();
  EXPECT_EQ(sup.status().at(0).state, "stopped");
  auto lines = log_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("run ", 0), 0u);
  EXPECT_EQ(lines[1], "run " + std::to_string(st.pid));
}

// `faultgen counter` next to this binary (the same build), if it was built.
std::string faultgen_path() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  fs::path fg = self.parent_path() / "faultgen";
  return fs::exists(fg) ? fg.string() : "";
}

TEST(SupervisorRealProcesses, FaultgenCounterCrashesOnceAndResumesFromItsCheckpoint) {
  const std::string fg = faultgen_path();
  if (fg.empty()) GTEST_SKIP() << "faultgen is not built next to unit_tests";
  SupTempDir dir;
  TestMonotonic clock;
  RealSpawner spawner;
  std::vector<SupervisorEvent> events;
  SupervisorOptions o;
  o.log_dir = dir.path.string();
  o.on_event = [&](const SupervisorEvent& e) { events.push_back(e); };
  Supervisor sup(clock, spawner, o);
  ServiceConfig c;
  c.name = "counter";
  c.command = {fg, "counter", "--tick", "5ms", "--every", "50ms", "--crash-at", "60"};
  c.checkpoint.backend = CheckpointConfig::Backend::App;
  c.checkpoint.dir = (dir.path / "ck").string();
  sup.configure({c});
  auto started = [&] {
    return std::count_if(events.begin(), events.end(), [](const auto& e) { return e.kind == K::Started; });
  };
  ASSERT_TRUE(run_until(sup, clock, seconds(5), [&] { return started() == 2; }));
  // It keeps running after the restore (no second crash).
  ASSERT_FALSE(run_until(sup, clock, milliseconds(700), [&] { return started() > 2; }));
  ServiceStatus st = sup.status().at(0);
  EXPECT_EQ(st.state, "running");
  EXPECT_EQ(st.restarts, 1u);
  EXPECT_EQ(st.last_exit, "killed by SIGSEGV");
  EXPECT_NE(st.last_checkpoint, "");
  sup.stop_all();
  std::ifstream in(dir.path / "counter.log");
  std::stringstream log;
  log << in.rdbuf();
  const std::string text = log.str();
  EXPECT_NE(text.find("\"crash\":"), std::string::npos) << text;
  EXPECT_NE(text.find("restored from " + c.checkpoint.dir + "/ckpt-"), std::string::npos) << text;
  EXPECT_NE(text.find("\"restored\":true"), std::string::npos) << text;
}

}  // namespace
}  // namespace fp
