// End-to-end tests: the real daemon (real probe) against faults from faultgen.
// Binaries come from the build (FP_FAULTPROBED_BIN, FP_FAULTGEN_BIN). Part
// of the support library that tests/e2e and tests/vm share.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fp::e2e {

// The start of a test's config: samples every 100 ms (a test takes seconds)
// and the anomaly rule off (it needs minutes of baseline).
inline const std::string kBase = R"(
sample_interval = "100ms"
[rules.anomaly]
enabled = false
)";

std::string temp_dir();

// faultprobed --foreground --config CFG --events-json FILE, started and
// stopped by the test. Ready once the probe is attached. Unless the config
// has its own [daemon] table, one is appended that gives the test its own
// socket, lock, state directory and pin directory (removed at the end with
// --detach-probe), so tests never meet each other's (or a real daemon's).
class Daemon {
 public:
  // daemon_keys: TOML lines added to the generated [daemon] table.
  explicit Daemon(const std::string& config_toml, std::vector<std::string> extra_args = {},
                  const std::string& daemon_keys = "");
  ~Daemon();
  bool ready() const { return ready_; }
  pid_t pid() const { return pid_; }
  // All JSON lines written so far.
  std::vector<nlohmann::json> records() const;
  // Polls the event stream until a record satisfies `pred`.
  std::optional<nlohmann::json> wait_record(const std::function<bool(const nlohmann::json&)>& pred,
                                            std::chrono::milliseconds timeout) const;
  std::optional<nlohmann::json> wait_fault(const std::string& cls, uint32_t pid,
                                           std::chrono::milliseconds timeout) const;
  std::optional<nlohmann::json> wait_resolved(const std::string& cls, uint32_t pid,
                                              std::chrono::milliseconds timeout) const;
  std::string log() const;  // the daemon's stderr so far
  std::string config_path() const { return dir_ + "/faultprobe.toml"; }
  void signal(int sig) const;
  int stop();               // SIGTERM, wait; returns the exit status
  // Starts it again on the same config, socket, state and pins (after stop()
  // or a SIGKILL); ready() tells whether it came up.
  bool restart(std::vector<std::string> extra_args = {});
  int kill9();              // SIGKILL, wait (the pins and state stay)

  std::string dir() const { return dir_; }
  std::string socket_path() const { return dir_ + "/faultprobe.sock"; }
  std::string pin_dir() const { return pin_dir_; }
  // One request on the daemon's socket; the reply (null on failure).
  nlohmann::json query(const nlohmann::json& req) const;
  // The daemon's view row of a process (null if none).
  nlohmann::json view_row(uint32_t pid) const;

 private:
  bool launch(std::vector<std::string> extra_args);
  std::string dir_, events_, log_, pin_dir_;
  pid_t pid_ = -1;
  bool ready_ = false;
};

// A faultgen run. Its first stdout line names the culprit.
class FaultGen {
 public:
  explicit FaultGen(std::vector<std::string> args);
  // Any program (argv[0] a path) whose first stdout line is faultgen's
  // {"culprit": PID, ...}: a copy of faultgen under another name, a script.
  FaultGen(std::string program, std::vector<std::string> args);
  ~FaultGen();
  bool started() const { return culprit_ != 0; }
  uint32_t culprit() const { return culprit_; }
  std::vector<uint32_t> victims() const { return victims_; }
  const nlohmann::json& header() const { return header_; }
  pid_t pid() const { return pid_; }
  // Further stdout lines (e.g. one per crash of a crash loop).
  std::vector<nlohmann::json> more_lines();
  int wait();  // until faultgen exits by itself
  int stop();  // SIGTERM and wait

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buf_;
  nlohmann::json header_;
  uint32_t culprit_ = 0;
  std::vector<uint32_t> victims_;
  bool reaped_ = false;
};

std::string describe(const std::vector<nlohmann::json>& records);

// The whole file ("" if it cannot be read).
std::string slurp(const std::string& path);
// An action record of `type` with `result` (for `pid`, or any when 0).
bool is_action(const nlohmann::json& r, const std::string& type, const std::string& result, uint32_t pid);

// Whether a fault record lists `pid` among its victims.
bool has_victim(const nlohmann::json& fault, uint32_t pid);
// Starts a command (argv[0] a path) with stdout/stderr on the given fds (-1:
// inherited); it is killed if the test process dies.
pid_t spawn(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd);

// Runs a command (argv[0] a path) and returns its exit status and stdout.
int run_capture(const std::vector<std::string>& argv, std::string* out, std::chrono::milliseconds timeout);

// As in the BPF tests: a directory on a real block device for O_DIRECT
// (FP_TEST_IO_DIR, else the first of the working directory, /var/tmp and
// /root that is not tmpfs or overlay).
std::string io_dir();

// Polls `pred` every 20 ms until it holds or `timeout` passes.
bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// The first record that satisfies `pred`, if any.
std::optional<nlohmann::json> first_match(const std::vector<nlohmann::json>& records,
                                          const std::function<bool(const nlohmann::json&)>& pred);

// A connected UNIX stream socket (the daemon's API), -1 on failure.
int connect_unix(const std::string& path);
// Reads until a newline, EOF or `timeout`: the line with its newline, or
// what came before the end.
std::string read_line(int fd, std::chrono::milliseconds timeout);

}  // namespace fp::e2e
