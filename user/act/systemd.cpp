#include "act/systemd.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>

#include <spdlog/spdlog.h>

#include "act/process.h"
#include "util/keepalive.h"
#include "util/assignments.h"

extern char** environ;

namespace fp {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

// The last part of a command's output, one line, for an action detail.
std::string tail_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  constexpr size_t kMax = 400;
  if (s.size() > kMax) s = "..." + s.substr(s.size() - kMax);
  return s;
}

// Reaps our own child, retrying on EINTR.
Result<int> reap(pid_t pid, const std::string& what) {
  int status = 0;
  for (;;) {
    if (::waitpid(pid, &status, 0) == pid) return status;
    if (errno == EINTR) continue;
    if (errno == ECHILD) return Error{ECHILD, "exit status of " + what + " lost (reaped elsewhere)"};
    return Error::from_errno(errno, "waitpid(" + what + ")");
  }
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<int> RealCommandRunner::run(const std::vector<std::string>& argv, milliseconds timeout, std::string* output) {
  if (argv.empty()) return Error{EINVAL, "empty command"};
  const std::string what = join(argv);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return Error::from_errno(errno, "pipe2");
  FdCloser rd{pipefd[0]}, wr{pipefd[1]};

  // stdout and stderr first, then stdin: if the daemon runs with fd 0 closed
  // the pipe may be fd 0, and opening /dev/null first would close it.
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, killed as a whole on timeout
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cargv[0], &fa, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::from_errno(rc, "cannot run " + argv[0]);
  ::close(wr.fd);
  wr.fd = -1;
  ::fcntl(rd.fd, F_SETFL, ::fcntl(rd.fd, F_GETFL) | O_NONBLOCK);
  // The child is ours and not reaped yet, so its pid cannot be reused: the
  // pidfd is only for polling its exit together with the pipe.
  FdCloser pidfd{pidfd_open_fd(pid)};

  std::string buffer;
  bool truncated = false;
  auto drain = [&]() -> bool {  // false at EOF
    char chunk[4096];
    for (;;) {
      ssize_t n = ::read(rd.fd, chunk, sizeof(chunk));
      if (n > 0) {
        size_t room = kOutputCap - std::min(kOutputCap, buffer.size());
        buffer.append(chunk, std::min(room, size_t(n)));
        truncated |= size_t(n) > room;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0;  // EAGAIN: open but empty; 0: EOF
    }
  };

  const auto deadline = steady_clock::now() + timeout;
  bool eof = false, exited = false, timed_out = false, cancelled = false;
  // Until it exits (not until EOF: it may close its output and go on running).
  while (!exited) {
    auto left = std::chrono::ceil<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0 || (cancel_ && cancel_->load())) {
      timed_out = true;
      cancelled = left.count() > 0;
      break;
    }
    std::array<pollfd, 2> fds{pollfd{eof ? -1 : rd.fd, POLLIN, 0}, pollfd{pidfd.fd, POLLIN, 0}};
    // Without a pidfd, look at the exit every 10 ms; with one, wake at least
    // every 500 ms for the watchdog and the cancel flag (a criu dump may take
    // a minute). keepalive() pings only on the loop's thread.
    keepalive();
    int wait_ms = int(std::min<long long>(left.count(), pidfd.fd >= 0 ? 500 : 10));
    int r = ::poll(fds.data(), fds.size(), wait_ms);
    if (r < 0 && errno != EINTR) return Error::from_errno(errno, "poll");
    if (r > 0 && fds[0].revents) eof = !drain();
    if (pidfd.fd >= 0) {
      exited = r > 0 && fds[1].revents;
    } else {
      siginfo_t info{};
      exited = ::waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
    }
  }
  if (timed_out) {
    ::kill(-pid, SIGKILL);
    (void)reap(pid, what);
    if (output) *output = buffer;
    if (cancelled) return Error{ECANCELED, what + " cancelled: the daemon is stopping (killed)"};
    return Error{ETIMEDOUT, what + " timed out after " + std::to_string(timeout.count()) + " ms (killed)"};
  }
  // Exited: take what it wrote, but do not wait for descendants that still hold the pipe.
  if (!eof) drain();
  if (output) *output = truncated ? buffer + "\n[output truncated]" : buffer;
  auto status = reap(pid, what);
  if (!status) return status.error();
  if (WIFEXITED(*status)) return WEXITSTATUS(*status);
  int sig = WIFSIGNALED(*status) ? WTERMSIG(*status) : 0;
  return Error{EINTR, what + " was killed by signal " + std::to_string(sig)};
}

bool valid_unit_name(const std::string& unit) {
  static constexpr std::array<std::string_view, 11> kSuffixes = {".service",   ".socket", ".device", ".mount",
                                                                 ".automount", ".swap",   ".target", ".path",
                                                                 ".timer",     ".slice",  ".scope"};
  if (unit.empty() || unit.size() > 255) return false;
  for (char c : unit) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' || c == '_' ||
              c == '.' || c == '@' || c == '\\' || c == '-';
    if (!ok) return false;
  }
  size_t dot = unit.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  std::string_view suffix = std::string_view(unit).substr(dot);
  bool known = false;
  for (auto s : kSuffixes) known |= suffix == s;
  if (!known) return false;
  size_t at = unit.find('@');
  if (at != std::string::npos && (at == 0 || at + 1 == dot)) return false;  // "@x.service", template "x@.service"
  return true;
}

bool SystemdControl::available() const {
  struct stat st {};
  return ::lstat(run_dir_.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<std::string> SystemdControl::systemctl(const std::string& unit, std::vector<std::string> argv,
                                              const std::string& done, std::string* output) {
  if (!valid_unit_name(unit)) return Error{EINVAL, "not a systemd unit name: \"" + unit + "\""};
  if (!available()) return Error{ENOENT, "systemd is not running (no " + run_dir_ + ")"};
  // Options end before the unit; whatever follows it (set-property's assignments) is positional.
  auto dashes = std::find(argv.begin(), argv.end(), "--");
  if (dashes == argv.end()) {
    argv.push_back("--");
    argv.push_back(unit);
  } else {
    argv.insert(dashes + 1, unit);
  }
  return run_checked(argv, join(argv), done, output);
}

Result<std::string> SystemdControl::run_checked(const std::vector<std::string>& argv, const std::string& what,
                                                const std::string& done, std::string* captured) {
  std::string output;
  auto rc = runner_.run(argv, timeout_, &output);
  if (captured) *captured = output;
  if (!rc) return Error{rc.error().code, what + ": " + rc.error().message};
  if (*rc != 0) {
    std::string out = tail_line(output);
    return Error{0, what + " failed (exit " + std::to_string(*rc) + ")" + (out.empty() ? "" : ": " + out)};
  }
  spdlog::info("systemd: {}", what);
  return done;
}

Result<std::string> SystemdControl::restart(const std::string& unit) {
  return systemctl(unit, {"systemctl", "restart", "--no-block"}, "restart of " + unit + " queued with systemd");
}

std::vector<std::string> SystemdControl::manager(std::optional<uint32_t> user) {
  if (!user) return {"systemctl"};
  return {"systemctl", "--user", "-M", std::to_string(*user) + "@"};
}

Result<std::string> SystemdControl::restart_user_unit(const std::string& unit, uint32_t uid) {
  auto argv = manager(uid);
  argv.insert(argv.end(), {"restart", "--no-block"});
  return systemctl(unit, argv, "restart of " + unit + " queued with the systemd manager of uid " + std::to_string(uid));
}

Result<std::string> SystemdControl::set_property(const std::string& unit, std::optional<uint32_t> user,
                                                 const std::vector<std::string>& assignments) {
  if (assignments.empty()) return Error{EINVAL, "set-property of " + unit + " without an assignment"};
  auto argv = manager(user);
  argv.insert(argv.end(), {"set-property", "--runtime", "--"});
  argv.insert(argv.end(), assignments.begin(), assignments.end());
  std::string done = "set on " + unit + ":";
  for (const auto& a : assignments) done += " " + a;
  return systemctl(unit, argv, done);
}

Result<SystemdControl::Properties> SystemdControl::show(const std::string& unit, std::optional<uint32_t> user,
                                                        const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ",") + n;
  auto argv = manager(user);
  argv.insert(argv.end(), {"show", "-p", list});
  std::string output;
  auto r = systemctl(unit, argv, "", &output);
  if (!r) return r.error();
  return split_assignments(output, '\n');
}

Result<std::string> SystemdControl::kill(const std::string& unit, int signal) {
  if (signal <= 0 || signal > SIGRTMAX) return Error{EINVAL, "invalid signal " + std::to_string(signal)};
  const char* abbrev = ::sigabbrev_np(signal);
  std::string name = abbrev ? std::string("SIG") + abbrev : std::to_string(signal);
  return systemctl(unit, {"systemctl", "kill", "--signal=" + name}, "sent " + name + " to the processes of " + unit);
}

}  // namespace fp

namespace fp {

Result<std::vector<std::string>> SystemdControl::transient_argv(const std::string& unit, const SpawnSpec& spec,
                                                               const std::vector<std::string>& properties) {
  // The kernel's MAX_ARG_STRLEN: one argument longer than this cannot be exec'd.
  constexpr size_t kMaxArg = 128 * 1024;
  if (!valid_unit_name(unit) || unit.size() < 8 || unit.compare(unit.size() - 8, 8, ".service") != 0)
    return Error{EINVAL, "not a transient service name: \"" + unit + "\""};
  if (spec.argv.empty() || spec.argv[0].empty()) return Error{EINVAL, "respawn: empty command"};
  std::vector<std::string> a = {"systemd-run", "--unit=" + unit, "--service-type=exec", "--collect", "--quiet",
                                "--no-ask-password"};
  if (!spec.user.empty()) {
    a.push_back("--uid=" + spec.user);
  } else {
    a.push_back("--uid=" + std::to_string(spec.uid));
    a.push_back("--gid=" + std::to_string(spec.gid));
  }
  if (spec.groups) {
    std::string g;
    for (gid_t x : *spec.groups) g += (g.empty() ? "" : " ") + std::to_string(x);
    // An empty assignment resets the list: no supplementary groups.
    a.push_back("--property=SupplementaryGroups=" + g);
  }
  a.push_back("--property=OOMScoreAdjust=" + std::to_string(spec.oom_score_adj));
  for (const auto& p : properties) a.push_back("--property=" + p);
  a.push_back("--working-directory=" + (spec.cwd.empty() ? std::string("/") : spec.cwd));
  for (const auto& [k, v] : spec.env) {
    std::string kv = "--setenv=" + k + "=" + v;
    if (kv.size() > kMaxArg || kv.find('\0') != std::string::npos)
      return Error{EINVAL, "environment variable " + k + " cannot be passed to systemd-run (" +
                               std::to_string(kv.size()) + " bytes)"};
    a.push_back(std::move(kv));
  }
  a.push_back("--");
  for (const auto& arg : spec.argv) {
    if (arg.size() > kMaxArg) return Error{EINVAL, "an argument of " + spec.argv[0] + " is above 128 KiB"};
    a.push_back(arg);
  }
  return a;
}

Result<std::string> SystemdControl::start_transient(const std::string& unit, const SpawnSpec& spec,
                                                    const std::vector<std::string>& properties) {
  auto argv = transient_argv(unit, spec, properties);
  if (!argv) return argv.error();
  if (!available()) return Error{ENOENT, "systemd is not running (no " + run_dir_ + ")"};
  // The environment stays out of logs and errors: it may hold secrets.
  auto r = run_checked(*argv, "systemd-run --unit=" + unit + " -- " + spec.argv[0], unit);
  if (!r) return r.error();
  return unit;
}

}  // namespace fp
