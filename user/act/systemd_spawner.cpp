#include "act/systemd_spawner.h"

#include <unistd.h>

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

namespace fp {
namespace {

std::string service_name(const SpawnSpec& spec) {
  for (const auto& [k, v] : spec.env)
    if (k == "FAULTPROBE_SERVICE") return v;
  return spec.argv.empty() ? "service" : spec.argv[0].substr(spec.argv[0].rfind('/') + 1);
}

// Whether /proc/PID/cgroup puts it in `unit` (any hierarchy, a path
// component equal to the unit's name): the pid is the unit's, not a reuse.
bool in_unit(const std::string& proc_root, pid_t pid, const std::string& unit) {
  std::ifstream in(proc_root + "/" + std::to_string(pid) + "/cgroup");
  for (std::string line; std::getline(in, line);) {
    const std::string path = line.substr(line.find(':', line.find(':') + 1) + 1);
    for (size_t at = 0; (at = path.find("/" + unit, at)) != std::string::npos; ++at) {
      const size_t end = at + 1 + unit.size();
      if (end == path.size() || path[end] == '/') return true;
    }
  }
  return false;
}

}  // namespace

std::string SystemdSpawner::unit_for(const std::string& service, uint64_t seq) {
  std::string n = service.substr(0, 100);
  for (char& c : n) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-';
    if (!ok) c = '_';
  }
  return "faultprobe-svc-" + n + "-" + std::to_string(seq) + ".service";
}

Result<std::vector<std::string>> SystemdSpawner::argv_for(const std::string& unit, const SpawnSpec& spec) {
  std::vector<std::string> props;
  if (!spec.log_path.empty()) {
    // Opened by PID 1, as root: a path in the daemon's root-owned log_dir
    // (the config's), never one a user chose (log_as_user is a respawn's).
    if (spec.log_as_user) return Error{EINVAL, "a service's log cannot be a path a user chose"};
    props.push_back("StandardOutput=append:" + spec.log_path);
    props.push_back("StandardError=append:" + spec.log_path);
  }
  auto a = SystemdControl::transient_argv(unit, spec, props);
  if (!a) return a.error();
  // A failed unit stays loaded (CollectMode=inactive): exit_status() reads
  // how it ended, then unloads it.
  std::erase(*a, std::string("--collect"));
  return a;
}

std::vector<std::string> SystemdSpawner::restore_argv_for(const std::string& unit, const std::string& image_dir) {
  std::vector<std::string> a = {"systemd-run",
                                "--unit=" + unit,
                                "--service-type=forking",
                                "--property=PIDFile=" + CriuBackend::restore_pidfile(image_dir),
                                // criu runs at most a minute (CriuBackend::restore's bound).
                                "--property=TimeoutStartSec=60",
                                "--property=OOMScoreAdjust=0",
                                "--quiet",
                                "--no-ask-password",
                                "--"};
  for (auto& arg : CriuBackend::restore_argv(image_dir)) a.push_back(std::move(arg));
  a.push_back("--manage-cgroups=ignore");
  return a;
}

Result<pid_t> SystemdSpawner::main_pid(const std::string& unit) {
  std::string out;
  auto rc = runner_.run({"systemctl", "show", "-p", "MainPID", "--value", "--", unit}, timeout_, &out);
  if (!rc) return Error{rc.error().code, "systemctl show " + unit + ": " + rc.error().message};
  if (*rc != 0) return Error{EIO, "systemctl show " + unit + " failed (exit " + std::to_string(*rc) + ")"};
  long pid = 0;
  try {
    pid = std::stol(out);
  } catch (const std::exception&) {
    pid = 0;
  }
  if (pid <= 0) return Error{ESRCH, unit + " has no main process (it exited at once?)"};
  return pid_t(pid);
}

Result<Spawned> SystemdSpawner::pin(const std::string& unit, const std::string& service, const RestoreCheck& check) {
  // Pinned, then checked: a pid read from systemd could be reused between
  // the two; one in the unit's cgroup after pidfd_open is the unit's.
  Result<Spawned> s = Error{ESRCH, ""};
  if (auto pid = main_pid(unit); !pid) {
    s = pid.error();
  } else if (s = adopt(*pid); s && !in_unit(proc_root_, *pid, unit)) {
    release(s->pidfd);
    s = Error{ESRCH, "pid " + std::to_string(*pid) + " is not in " + unit + " (it exited and the pid was reused?)"};
  } else if (s && check) {
    if (auto v = check(*pid); !v) {
      release(s->pidfd);
      s = v.error();
    }
  }
  if (!s) {
    (void)runner_.run({"systemctl", "stop", "--no-block", "--", unit}, timeout_, nullptr);  // nothing unsupervised
    return Error{s.error().code, "started as " + unit + " but not pinned: " + s.error().message};
  }
  s->unit = unit;
  spdlog::info("service {}: running as transient unit {}, main pid {}", service, unit, s->pid);
  return s;
}

Result<Spawned> SystemdSpawner::spawn(const SpawnSpec& spec) {
  const std::string unit = unit_for(service_name(spec), ++seq_);
  auto argv = argv_for(unit, spec);
  if (!argv) return argv.error();
  if (!systemd_.available()) return Error{ENOENT, "systemd is not running"};
  std::string out;
  auto rc = runner_.run(*argv, timeout_, &out);
  if (!rc) {
    // It may still come up after we stopped waiting: not unsupervised either.
    (void)runner_.run({"systemctl", "stop", "--no-block", "--", unit}, timeout_, nullptr);
    return Error{rc.error().code, "systemd-run --unit=" + unit + ": " + rc.error().message};
  }
  if (*rc != 0) {
    // An exec that failed leaves the unit failed and (without --collect) loaded.
    (void)runner_.run({"systemctl", "reset-failed", "--", unit}, timeout_, nullptr);
    return Error{EIO, "systemd-run --unit=" + unit + " -- " + spec.argv[0] + " failed (exit " + std::to_string(*rc) +
                          ")" + (out.empty() ? "" : ": " + out.substr(0, 400))};
  }
  return pin(unit, service_name(spec), nullptr);
}

Result<Spawned> SystemdSpawner::restore(CriuBackend& criu, const std::string& image_dir, const std::string& service,
                                        const RestoreCheck& check) {
  (void)criu;  // criu runs in the unit, not as our child
  const std::string unit = unit_for(service, ++seq_);
  if (!systemd_.available()) return Error{ENOENT, "systemd is not running"};
  std::error_code ec;
  std::filesystem::remove(CriuBackend::restore_pidfile(image_dir), ec);
  std::string out;
  auto rc = runner_.run(restore_argv_for(unit, image_dir), std::chrono::seconds(60) + timeout_, &out);
  const std::string what = "criu restore from " + image_dir + " as " + unit;
  if (!rc || *rc != 0) {
    // A start job that outlived systemd-run, or a failed unit: stopped and unloaded.
    (void)runner_.run({"systemctl", "stop", "--no-block", "--", unit}, timeout_, nullptr);
    (void)runner_.run({"systemctl", "reset-failed", "--", unit}, timeout_, nullptr);
    if (!rc) return Error{rc.error().code, what + " failed: " + rc.error().message};
    return Error{EIO, what + " failed (exit " + std::to_string(*rc) + "): " + CriuBackend::restore_error(image_dir)};
  }
  return pin(unit, service, check);
}

Result<int> SystemdSpawner::exit_status(const std::string& unit) {
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    std::string out;
    auto rc = runner_.run({"systemctl", "show", "-p", "LoadState", "-p", "ActiveState", "-p", "ExecMainCode", "-p",
                           "ExecMainStatus", "--", unit},
                          timeout_, &out);
    if (!rc) return Error{rc.error().code, "systemctl show " + unit + ": " + rc.error().message};
    if (*rc != 0) return Error{EIO, "systemctl show " + unit + " failed (exit " + std::to_string(*rc) + ")"};
    std::map<std::string, std::string> p;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
      if (auto eq = line.find('='); eq != std::string::npos) p[line.substr(0, eq)] = line.substr(eq + 1);
    if (p["LoadState"] == "not-found") return W_EXITCODE(0, 0);  // collected: it did not fail
    const std::string active = p["ActiveState"];
    if (active == "inactive" || active == "failed") {
      int code = 0, status = 0;
      try {
        code = std::stoi(p["ExecMainCode"]);
        status = std::stoi(p["ExecMainStatus"]);
      } catch (const std::exception&) {
        code = 0;
      }
      if (active == "failed") {
        auto r = runner_.run({"systemctl", "reset-failed", "--", unit}, timeout_, nullptr);
        if (!r || *r != 0) spdlog::warn("systemctl reset-failed {} failed: {} stays loaded", unit, unit);
      }
      switch (code) {  // the main process's si_code
        case CLD_EXITED: return W_EXITCODE(status & 0xff, 0);
        case CLD_KILLED: return W_EXITCODE(0, status & 0x7f);
        case CLD_DUMPED: return W_EXITCODE(0, status & 0x7f) | WCOREFLAG;
        default: return Error{EIO, unit + " is " + active + " with no record of its main process (ExecMainCode=" +
                                       p["ExecMainCode"] + ")"};
      }
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return Error{ETIMEDOUT, unit + " is still " + (active.empty() ? "unknown" : active) +
                                  " after its main process ended"};
    std::this_thread::sleep_for(settle_poll_);
  }
}

Result<void> SystemdSpawner::signal(pid_t pid, int pidfd, int sig) {
  if (pidfd < 0) return Error{EBADF, "no pidfd for pid " + std::to_string(pid)};
  if (sys_pidfd_send_signal(pidfd, sig) != 0 && errno != ESRCH)
    return Error::from_errno(errno, "pidfd_send_signal(" + std::to_string(pid) + ")");
  return {};
}

}  // namespace fp
