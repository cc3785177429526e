// The daemon's faces end to end: syslog, the socket API and the CLI verbs on
// it, the instance lock, config file checks, restarts that lose nothing, and
// Prometheus scraping the metrics endpoint.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "e2e_fixture.h"
#include "faultprobe/abi.h"
#include "services.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Crash faults clear after a second here, so that they resolve within a test.
const std::string kDaemonBase = kBase + R"([rules.crash]
clear = "1s"
)";

size_t file_size(const std::string& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : size_t(n);
}

uint64_t cpu_total_ns(const Daemon& d, uint32_t pid) {
  auto row = d.view_row(pid);
  return row.is_object() ? row.value("cpu_total_ns", uint64_t{0}) : 0;
}

}  // namespace

// Open, action and resolve lines of an injected fault reach the host's
// rsyslogd (facility daemon), with their fields.
TEST(Daemon, SyslogReceivesOpenActionResolve) {
  const std::string syslog = "/var/log/syslog";
  ASSERT_EQ(system("pgrep -x rsyslogd >/dev/null"), 0) << "rsyslogd is not running (scripts/start-services)";
  size_t from = file_size(syslog);
  Daemon d(kDaemonBase + R"(
[rules.cpu_runaway]
for = "1s"
clear = "1s"
[[policy]]
name = "hogs"
match = { comm = "fg-cpu" }
on.cpu_runaway = ["throttle:cpu=20%"]
cooldown = "60s"
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"cpu", "--duration", "30s"});
  ASSERT_TRUE(g.started());
  // the culprit's lines: any other process of the host (a compiler) may run away too
  const std::string pid = " pid=" + std::to_string(g.culprit()) + " ";
  auto open = wait_syslog_line(syslog, {"class=cpu_runaway", pid}, 15s, from);
  ASSERT_TRUE(open) << d.log();
  EXPECT_NE(open->find("faultprobed"), std::string::npos) << *open;
  EXPECT_NE(open->find("rule=cpu_runaway"), std::string::npos) << *open;
  auto action = wait_syslog_line(syslog, {"action=throttle", pid}, 10s, from);
  ASSERT_TRUE(action) << describe(d.records());
  auto resolved = wait_syslog_line(syslog, {"resolved class=cpu_runaway", pid}, 20s, from);
  ASSERT_TRUE(resolved) << describe(d.records());
}

// The same alerts forwarded as RFC 5424 to a collector over UDP and TCP; an
// unreachable collector is counted and local syslog still works.
TEST(Daemon, SyslogForwardRfc5424) {
  PrivateRsyslog collector;
  ASSERT_TRUE(collector.ok()) << collector.log();
  for (const std::string proto : {"udp", "tcp"}) {
    uint16_t port = proto == "udp" ? collector.udp_port() : collector.tcp_port();
    size_t from = file_size(collector.output_file());
    std::string dir = temp_dir();
    Daemon d2(kDaemonBase + R"(
[daemon]
syslog_forward = ")" + proto + "://127.0.0.1:" + std::to_string(port) +
                  R"("
socket = ")" + dir + R"(/sock"
lock_path = ")" + dir + R"(/lock"
state_dir = ")" + dir + R"(/state"
log_dir = ")" + dir + R"(/logs"
pin_dir = ""
)");
    ASSERT_TRUE(d2.ready()) << proto;
    FaultGen g({"crash", "--signal", "SEGV", "--after", "200ms", "--duration", "2s"});
    ASSERT_TRUE(g.started());
    // other crashes may be forwarded first (on some kernels `criu check`, run by the
    // daemon's CRIU probe, crashes a child of its own): wait for the culprit's
    const std::string culprit = "pid=\"" + std::to_string(g.culprit()) + "\"";
    auto line = wait_syslog_line(collector.output_file(), {"faultprobe@32473", culprit}, 10s, from);
    ASSERT_TRUE(line) << proto << "\n" << d2.log();
    EXPECT_NE(line->find("class=\"crash\""), std::string::npos) << *line;
  }
}

// An unreachable collector: local syslog still gets the alert, the failed
// forwards are counted in status, and the daemon does not stall.
TEST(Daemon, UnreachableCollectorIsCountedLocalSyslogStillWorks) {
  const std::string syslog = "/var/log/syslog";
  size_t from = file_size(syslog);
  const uint16_t dead = free_port(SOCK_STREAM);
  std::string dir = temp_dir();
  Daemon d(kDaemonBase + R"(
[daemon]
syslog_forward = "tcp://127.0.0.1:)" + std::to_string(dead) + R"("
socket = ")" + dir + R"(/sock"
lock_path = ")" + dir + R"(/lock"
state_dir = ")" + dir + R"(/state"
log_dir = ")" + dir + R"(/logs"
pin_dir = ""
)");
  ASSERT_TRUE(d.ready()) << d.log();
  FaultGen g({"crash", "--signal", "SEGV", "--after", "200ms", "--duration", "2s"});
  ASSERT_TRUE(g.started());
  auto line = wait_syslog_line(syslog, "pid=" + std::to_string(g.culprit()), 10s, from);
  ASSERT_TRUE(line) << d.log();
  EXPECT_NE(line->find("class=crash"), std::string::npos) << *line;
  // the failure shows in status (the view is rebuilt every second)
  uint64_t failures = 0;
  EXPECT_TRUE(wait_for(
      [&] {
        int fd = connect_unix(dir + "/sock");
        if (fd < 0) return false;
        (void)!write(fd, "{\"cmd\":\"status\"}\n", 17);
        auto j = json::parse(read_line(fd, 2s), nullptr, false);
        close(fd);
        if (j.is_discarded() || !j.contains("status")) return false;
        failures = j["status"]["syslog"].value("forward_failures", uint64_t{0});
        return failures > 0;
      },
      10s))
      << d.log();
}

// status and events --follow against a running daemon, through the CLI.
TEST(Daemon, StatusAndEventsFollow) {
  Daemon d(kDaemonBase);
  ASSERT_TRUE(d.ready());
  std::string out;
  ASSERT_EQ(run_capture({FP_FAULTPROBE_BIN, "status", "--json", "--socket", d.socket_path()}, &out, 10s), 0) << out;
  auto st = json::parse(out, nullptr, false);
  ASSERT_FALSE(st.is_discarded()) << out;
  EXPECT_TRUE(st.contains("hooks")) << out;
  EXPECT_TRUE(st.contains("criu")) << out;
  EXPECT_TRUE(st.contains("drops")) << out;
  // The build's version, the one --version prints (CMake's project(VERSION)).
  EXPECT_EQ(st.value("version", ""), FAULTPROBE_VERSION) << out;
  // this kernel keeps task IO accounting: IO bytes are charged to whoever caused them
  EXPECT_EQ(st.value("io_bytes_from", ""), "task_io_accounting") << out;
  // The memory breakdown; only the slots read lately are mapped, not the whole array.
  ASSERT_TRUE(st.contains("memory")) << out;
  EXPECT_GT(st["memory"].value("rss_bytes", 0ull), 0u) << out;
  EXPECT_GE(st["memory"].value("hwm_bytes", 0ull), st["memory"].value("rss_bytes", 0ull)) << out;
  EXPECT_GT(st["memory"].value("probe_ring_mapped_bytes", 0ull), 0u) << out;
  EXPECT_LT(st["memory"].value("probe_slots_mapped_bytes", 0ull),
            st["maps"].value("proc_slots_max", 0ull) * sizeof(fp_proc)) << out;
  ASSERT_EQ(run_capture({FP_FAULTPROBE_BIN, "status", "--socket", d.socket_path()}, &out, 10s), 0) << out;
  EXPECT_NE(out.find("sched_switch"), std::string::npos) << out;

  // events --follow in the background, then a crash
  std::string events_out = d.dir() + "/follow.out";
  pid_t follower = fork();
  if (follower == 0) {
    int fd = open(events_out.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    dup2(fd, 1);
    execl(FP_FAULTPROBE_BIN, FP_FAULTPROBE_BIN, "events", "--follow", "--json", "--socket", d.socket_path().c_str(),
          nullptr);
    _exit(127);
  }
  std::this_thread::sleep_for(500ms);
  FaultGen g({"crash", "--signal", "SEGV", "--after", "200ms", "--duration", "2s"});
  ASSERT_TRUE(g.started());
  bool seen = wait_for(
      [&] {
        std::ifstream in(events_out);
        std::string line;
        while (std::getline(in, line)) {
          auto j = json::parse(line, nullptr, false);
          if (!j.is_discarded() && j.value("class", "") == "crash" && j.value("pid", 0u) == g.culprit()) return true;
        }
        return false;
      },
      10s);
  kill(follower, SIGTERM);
  int status = 0;
  waitpid(follower, &status, 0);
  EXPECT_TRUE(seen) << "events --follow never printed the crash";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  // events without --follow prints the backlog and exits
  ASSERT_EQ(run_capture({FP_FAULTPROBE_BIN, "events", "--socket", d.socket_path()}, &out, 10s), 0) << out;
  EXPECT_NE(out.find("crash"), std::string::npos) << out;
}

// The daemon's own start-up checks are not faults of the host: `criu check`
// (CRIU 3.17 on kernels >= 6.13) loses a child to SIGSEGV at every start; it
// runs before the probe is attached. A real crash after ready marks the point
// by which any start-up record would have been read.
TEST(Daemon, ItsOwnStartUpChecksRaiseNothing) {
  Daemon d(kDaemonBase);
  ASSERT_TRUE(d.ready()) << d.log();
  pid_t marker = spawn({"/bin/sh", "-c", "kill -SEGV $$"}, -1, -1);
  ASSERT_GT(marker, 0);
  waitpid(marker, nullptr, 0);
  ASSERT_TRUE(d.wait_fault("crash", uint32_t(marker), 20s)) << describe(d.records());
  for (const auto& r : d.records())
    EXPECT_FALSE(r.value("kind", "") == "fault" && r.value("pid", 0u) != uint32_t(marker)) << r.dump();
}

// --exits-json: a clean exit (not a fault, so not in the event stream) comes
// out with its final counters, and status counts the records received.
TEST(Daemon, ExitsJsonHasCleanExitsWithCounters) {
  std::string exits = temp_dir() + "/exits.jsonl";
  Daemon d(kDaemonBase, {"--exits-json", exits});
  ASSERT_TRUE(d.ready());
  pid_t k = fork();
  if (k == 0) {
    volatile unsigned long n = 0;
    for (int i = 0; i < 20'000'000; i++) n = n + 1;  // some CPU to account for
    _exit(3);
  }
  ASSERT_GT(k, 0);
  int status = 0;
  waitpid(k, &status, 0);
  json rec;
  bool seen = wait_for(
      [&] {
        std::ifstream in(exits);
        std::string line;
        while (std::getline(in, line)) {
          auto j = json::parse(line, nullptr, false);
          if (!j.is_discarded() && j.value("pid", 0) == k) {
            rec = j;
            return true;
          }
        }
        return false;
      },
      10s);
  ASSERT_TRUE(seen) << "no exit record for pid " << k << " in " << exits;
  EXPECT_EQ(rec.value("exit_code", 0u), 3u << 8) << rec.dump();
  EXPECT_GT(rec.value("cpu_ns", 0ull), 1'000'000ull) << rec.dump();
  EXPECT_GT(rec.value("start_ns", 0ull), 0ull) << rec.dump();
  // status is rebuilt every second
  bool counted = wait_for(
      [&] {
        auto st = d.query({{"cmd", "status"}});
        return st.is_object() && st["status"]["events_received"].value("exits", 0ull) > 0;
      },
      5s);
  EXPECT_TRUE(counted) << d.query({{"cmd", "status"}}).dump();
  std::filesystem::remove_all(std::filesystem::path(exits).parent_path());
}

// The socket's abuse cases against the real daemon.
TEST(Daemon, SocketAbuse) {
  Daemon d(kDaemonBase);
  ASSERT_TRUE(d.ready());
  struct stat st {};
  ASSERT_EQ(stat(d.socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  // garbage -> error reply
  int fd = connect_unix(d.socket_path());
  ASSERT_GE(fd, 0);
  ASSERT_GT(write(fd, "hello there\n", 12), 0);
  auto reply = json::parse(read_line(fd, 2s), nullptr, false);
  ASSERT_FALSE(reply.is_discarded());
  EXPECT_EQ(reply["ok"], false);
  close(fd);

  // oversized -> error reply and close, not a hang
  fd = connect_unix(d.socket_path());
  std::string big(200 * 1024, 'x');
  (void)!write(fd, big.data(), big.size());
  auto r2 = json::parse(read_line(fd, 3s), nullptr, false);
  EXPECT_FALSE(r2.is_discarded());
  if (!r2.is_discarded()) {
    EXPECT_EQ(r2["ok"], false);
  }
  close(fd);

  // a follower that never reads, plus many clients at once: the daemon keeps answering
  int lazy = connect_unix(d.socket_path());
  std::string follow = R"({"cmd":"events","follow":true,"backlog":1000})" "\n";
  ASSERT_GT(write(lazy, follow.data(), follow.size()), 0);
  std::vector<int> many;
  for (int i = 0; i < 40; ++i) many.push_back(connect_unix(d.socket_path()));
  for (int c : many) {
    ASSERT_GE(c, 0);
    ASSERT_GT(write(c, "{\"cmd\":\"ping\"}\n", 15), 0);
  }
  for (int c : many) {
    auto j = json::parse(read_line(c, 3s), nullptr, false);
    EXPECT_FALSE(j.is_discarded());
    close(c);
  }
  FaultGen g({"crash", "--signal", "SEGV", "--after", "20ms", "--loop", "20", "--every", "50ms"});
  ASSERT_TRUE(g.started());
  g.wait();
  auto v = d.query({{"cmd", "view"}});
  EXPECT_TRUE(v.is_object() && v.value("ok", false)) << v.dump();
  close(lazy);

  // a non-root user without the group is refused
  pid_t child = fork();
  if (child == 0) {
    struct passwd* nobody = getpwnam("nobody");
    if (!nobody || setgroups(0, nullptr) != 0 || setgid(nobody->pw_gid) != 0 || setuid(nobody->pw_uid) != 0)
      _exit(3);
    int c = connect_unix(d.socket_path());
    if (c < 0) _exit(0);  // refused by the file mode: fine
    (void)!write(c, "{\"cmd\":\"status\"}\n", 17);
    auto j = json::parse(read_line(c, 2s), nullptr, false);
    _exit(!j.is_discarded() && j.value("ok", true) == false ? 0 : 4);
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a non-root user got an answer: " << status;
}

// A second instance refuses to start; a world-writable config is refused.
TEST(Daemon, LockAndConfigPermissions) {
  Daemon d(kDaemonBase);
  ASSERT_TRUE(d.ready());
  std::string out;
  int rc = run_capture({FP_FAULTPROBED_BIN, "--foreground", "--config", d.config_path()}, &out, 20s);
  EXPECT_EQ(rc, 1);
  std::string dir = temp_dir();
  std::string cfg = dir + "/ww.toml";
  std::ofstream(cfg) << kDaemonBase;
  chmod(cfg.c_str(), 0666);
  std::string err;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t c = fork();
  if (c == 0) {
    dup2(fds[1], 2);
    execl(FP_FAULTPROBED_BIN, FP_FAULTPROBED_BIN, "--foreground", "--config", cfg.c_str(), nullptr);
    _exit(127);
  }
  close(fds[1]);
  err = read_line(fds[0], 10s);
  close(fds[0]);
  int st = 0;
  waitpid(c, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2) << st;
  EXPECT_NE(err.find("writable"), std::string::npos) << err;
}

// kill -9 of the daemon and a restart: the cumulative counters of a
// long-running child keep growing from where they were.
TEST(Daemon, KillNineThenRestartLosesNothing) {
  Daemon d(kDaemonBase);
  ASSERT_TRUE(d.ready());
  FaultGen g({"cpu", "--duration", "60s"});
  ASSERT_TRUE(g.started());
  uint64_t before = 0;
  ASSERT_TRUE(wait_for([&] { return (before = cpu_total_ns(d, g.culprit())) > 500'000'000ull; }, 10s))
      << d.log();
  d.kill9();
  std::this_thread::sleep_for(1500ms);  // the child spins on while no daemon runs
  ASSERT_TRUE(d.restart()) << d.log();
  EXPECT_NE(d.log().find("took over"), std::string::npos) << d.log();
  uint64_t after = 0;
  ASSERT_TRUE(wait_for([&] { return (after = cpu_total_ns(d, g.culprit())) > before + 1'000'000'000ull; }, 10s))
      << "before " << before << " after " << after;
}

// A fault that is open when the daemon is killed stays open in the new one
// (no second "fault" line, and it resolves later).
TEST(Daemon, OpenFaultSurvivesRestart) {
  Daemon d(kDaemonBase + R"(
[rules.cpu_runaway]
for = "1s"
clear = "1s"
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"cpu", "--duration", "8s"});
  ASSERT_TRUE(g.started());
  ASSERT_TRUE(d.wait_fault("cpu_runaway", g.culprit(), 10s));
  d.kill9();
  ASSERT_TRUE(d.restart()) << d.log();
  auto st = d.query({{"cmd", "status"}});
  bool open = false;
  auto v = d.query({{"cmd", "view"}});
  for (const auto& f : v["view"]["open_faults"])
    if (f.value("class", "") == "cpu_runaway" && f.value("pid", 0u) == g.culprit()) open = true;
  EXPECT_TRUE(open) << v.dump();
  g.wait();
  ASSERT_TRUE(d.wait_resolved("cpu_runaway", g.culprit(), 15s)) << describe(d.records());
  int opened = 0;
  for (const auto& r : d.records())
    if (r.value("kind", "") == "fault" && r.value("class", "") == "cpu_runaway" && r.value("pid", 0u) == g.culprit())
      opened++;
  EXPECT_EQ(opened, 1) << describe(d.records());
}

// A real Prometheus scrapes the endpoint and a query returns the injected
// fault's counter.
TEST(Daemon, PrometheusScrapesFaultCounter) {
  const std::string target = "127.0.0.1:" + std::to_string(free_port(SOCK_STREAM));
  Daemon d("metrics_listen = \"" + target + "\"\n" + kDaemonBase);
  ASSERT_TRUE(d.ready());
  PrivatePrometheus prom(target);
  ASSERT_TRUE(prom.ok()) << prom.log();
  ASSERT_TRUE(prom.wait_target_up(30s)) << prom.log();
  FaultGen g({"crash", "--signal", "SEGV", "--after", "200ms", "--duration", "2s"});
  ASSERT_TRUE(g.started());
  ASSERT_TRUE(d.wait_fault("crash", g.culprit(), 5s));
  auto value = prom.wait_value("faultprobe_faults_total{class=\"crash\"}", [](double v) { return v >= 1; }, 30s);
  EXPECT_TRUE(value) << prom.log();
}

// `faultprobe top` against the running daemon, in tmux: the header and the
// hog's row with its fault class.
TEST(Daemon, TopShowsHogWithFaultClass) {
  ASSERT_EQ(system("command -v tmux >/dev/null"), 0) << "tmux is needed (scripts/install-deps)";
  Daemon d(kDaemonBase + R"(
[rules.cpu_runaway]
for = "1s"
)");
  ASSERT_TRUE(d.ready());
  FaultGen g({"cpu", "--duration", "30s"});
  ASSERT_TRUE(g.started());
  ASSERT_TRUE(d.wait_fault("cpu_runaway", g.culprit(), 10s));
  std::string session = "fpe2e" + std::to_string(getpid());
  std::string cmd = "tmux new-session -d -s " + session + " -x 200 -y 50 '" + FP_FAULTPROBE_BIN +
                    " top --daemon --socket " + d.socket_path() + "'";
  ASSERT_EQ(system(cmd.c_str()), 0);
  std::string screen;
  bool shown = wait_for(
      [&] {
        run_capture({"/usr/bin/tmux", "capture-pane", "-p", "-t", session}, &screen, 5s);
        std::istringstream in(screen);
        for (std::string line; std::getline(in, line);)
          if (line.find(" " + std::to_string(g.culprit()) + " ") != std::string::npos &&
              line.find("cpu_runaway") != std::string::npos)
            return true;
        return false;
      },
      15s);
  system(("tmux send-keys -t " + session + " q").c_str());
  wait_for([&] { return system(("tmux has-session -t " + session + " 2>/dev/null").c_str()) != 0; }, 5s);
  system(("tmux kill-session -t " + session + " 2>/dev/null").c_str());
  EXPECT_TRUE(shown) << screen;
  EXPECT_NE(screen.find("daemon"), std::string::npos) << screen;
}
