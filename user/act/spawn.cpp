// spawn_process: fork + exec with everything a supervised service needs.
//
// The daemon is multithreaded (socket server, metrics), so the child may only
// call async-signal-safe functions between fork and exec: everything that
// allocates or takes locks (getpwnam, initgroups' group lookup, building argv
// and envp, opening a configured log) happens in the parent before the fork.
// A log path a user chose (a respawn's old stdout) is the exception: the
// child opens it after becoming that user, so root never opens it for them.
#include "act/spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include "act/spawner.h"
#include "util/fd.h"

namespace fp {

namespace {

// What the child reports through the CLOEXEC pipe when a step fails.
// Log is the one that is not fatal: the output goes to /dev/null instead.
enum class Stage : int { Dup, Groups, Gid, Uid, Chdir, Exec, OomScore, Log };

struct ChildError {
  Stage stage;
  int err;
};

struct Identity {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// The user's uid, primary gid and supplementary groups (what initgroups would
// set), resolved here because getpwnam and getgrouplist are not safe after fork.
Result<Identity> resolve_identity(const SpawnSpec& spec) {
  Identity id;
  if (spec.user.empty()) {
    id.uid = spec.uid;
    id.gid = spec.gid;
    // Only a change of identity needs set*id; root staying root keeps its groups.
    id.switch_user = spec.uid != geteuid() || spec.gid != getegid() || spec.groups.has_value();
    id.groups = spec.groups.value_or(std::vector<gid_t>{spec.gid});
    return id;
  }
  long bufsize = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(bufsize > 0 ? static_cast<size_t>(bufsize) : 16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc;
  while ((rc = getpwnam_r(spec.user.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE)
    buf.resize(buf.size() * 2);
  if (rc != 0) return Error::from_errno(rc, "cannot look up user " + spec.user);
  if (found == nullptr) return Error{ENOENT, "no such user: " + spec.user};
  id.switch_user = true;
  id.uid = pw.pw_uid;
  id.gid = pw.pw_gid;
  if (spec.groups) {
    id.groups = *spec.groups;
    return id;
  }
  int n = 32;
  for (;;) {
    id.groups.resize(static_cast<size_t>(n));
    int want = n;
    if (getgrouplist(spec.user.c_str(), pw.pw_gid, id.groups.data(), &want) >= 0) {
      id.groups.resize(static_cast<size_t>(want));
      break;
    }
    if (want <= n) return Error{EINVAL, "cannot list the groups of user " + spec.user};
    n = want;
  }
  return id;
}

std::string stage_message(const ChildError& e, const SpawnSpec& spec, const Identity& id) {
  std::string what;
  switch (e.stage) {
    case Stage::Dup: what = "cannot set up stdio"; break;
    case Stage::Groups: what = "cannot set supplementary groups"; break;
    case Stage::Gid: what = "cannot switch to gid " + std::to_string(id.gid); break;
    case Stage::Uid:
      what = "cannot switch to user " + (spec.user.empty() ? std::to_string(id.uid) : spec.user);
      break;
    case Stage::Chdir: what = "cannot chdir to " + spec.cwd; break;
    case Stage::Exec: what = "cannot exec " + spec.argv[0]; break;
    case Stage::OomScore: what = "cannot set oom_score_adj " + std::to_string(spec.oom_score_adj); break;
    case Stage::Log:
      what = "cannot open " + spec.log_path + " as uid " + std::to_string(id.uid) + " (output to /dev/null)";
      break;
  }
  return what + ": " + std::strerror(e.err);
}

// Child side: report and leave. Only async-signal-safe calls.
[[noreturn]] void child_fail(int errfd, Stage stage) {
  ChildError e{stage, errno};
  ssize_t ignored = write(errfd, &e, sizeof(e));
  (void)ignored;
  _exit(127);
}

// The child's side of a log path a user chose: opened with the user's rights
// (we are that user by now), never through a symlink, never a FIFO or device
// that could block or do something on open. -1 when refused.
int open_user_log(const char* path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0640);
  if (fd < 0) return -1;
  struct stat sb {};
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  fcntl(fd, F_SETFL, O_APPEND);  // drop O_NONBLOCK
  return fd;
}

struct ChildArgs {
  const SpawnSpec* spec;
  const Identity* id;
  char* const* argv;
  char* const* envp;
  const char* oom_text;  // "-17\n", written to /proc/self/oom_score_adj
  size_t oom_len;        // 0: ours is that value already (the child inherits it)
};

[[noreturn]] void child_main(const ChildArgs& a, int errfd, int in_fd, int out_fd) {
  const SpawnSpec& spec = *a.spec;
  const Identity& id = *a.id;
  // Default dispositions and an empty mask: the daemon blocks signals for its
  // signalfd and may ignore SIGPIPE; neither must leak into a service.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  setsid();  // own session and process group: stopping the service stops what it forked

  // Move our fds above 2 first so the dup2s below cannot clobber one.
  errfd = fcntl(errfd, F_DUPFD_CLOEXEC, 3);
  if (errfd < 0) _exit(127);
  in_fd = fcntl(in_fd, F_DUPFD_CLOEXEC, 3);
  if (in_fd < 0) child_fail(errfd, Stage::Dup);
  if (out_fd >= 0) {
    out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
    if (out_fd < 0) child_fail(errfd, Stage::Dup);
  }
  if (dup2(in_fd, 0) < 0) child_fail(errfd, Stage::Dup);

  // Before the identity switch: lowering the value needs CAP_SYS_RESOURCE.
  if (a.oom_len > 0) {
    int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (oom < 0 || write(oom, a.oom_text, a.oom_len) != static_cast<ssize_t>(a.oom_len))
      child_fail(errfd, Stage::OomScore);
    close(oom);
  }

  if (id.switch_user) {
    if (setgroups(id.groups.size(), id.groups.data()) != 0) child_fail(errfd, Stage::Groups);
    if (setgid(id.gid) != 0) child_fail(errfd, Stage::Gid);
    if (setuid(id.uid) != 0) child_fail(errfd, Stage::Uid);
  }
  if (out_fd < 0) {
    // log_as_user: we are the user now.
    out_fd = open_user_log(spec.log_path.c_str());
    if (out_fd < 0) {
      ChildError warn{Stage::Log, errno};
      ssize_t ignored = write(errfd, &warn, sizeof(warn));
      (void)ignored;
      out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (out_fd < 0) child_fail(errfd, Stage::Dup);
    }
  }
  if (dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) child_fail(errfd, Stage::Dup);
  // Nothing else of the daemon's (sockets, BPF maps, the lock file) reaches the
  // service; the error pipe stays until exec closes it.
  if (errfd > 3) close_range(3, static_cast<unsigned>(errfd) - 1, 0);
  close_range(static_cast<unsigned>(errfd) + 1, ~0u, 0);

  // After the switch, so the directory is checked with the service's rights.
  if (chdir(spec.cwd.empty() ? "/" : spec.cwd.c_str()) != 0) child_fail(errfd, Stage::Chdir);
  execve(a.argv[0], a.argv, a.envp);
  child_fail(errfd, Stage::Exec);
}

}  // namespace

Result<Spawned> spawn_process(const SpawnSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) return Error{EINVAL, "spawn: empty command"};
  auto id = resolve_identity(spec);
  if (!id) return id.error();

  // argv and envp as C arrays, built before the fork.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  env_strings.reserve(spec.env.size());
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  const std::string oom_text = std::to_string(spec.oom_score_adj) + "\n";
  // The child inherits ours: written only when it differs (an unprivileged
  // caller could not lower it, and need not).
  std::string own_oom;
  std::getline(std::ifstream("/proc/self/oom_score_adj"), own_oom);
  const size_t oom_len = own_oom + "\n" == oom_text ? 0 : oom_text.size();

  Fd in(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return Error::from_errno(errno, "cannot open /dev/null");
  Fd out;
  if (!spec.log_as_user || spec.log_path.empty()) {
    // The configured log: the last component is ours to name, never a link.
    const std::string out_path = spec.log_path.empty() ? "/dev/null" : spec.log_path;
    out.reset(open(out_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640));
    if (out.get() < 0) return Error::from_errno(errno, "cannot open " + out_path);
  }

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return Error::from_errno(errno, "pipe2");
  Fd err_read(pipefd[0]), err_write(pipefd[1]);

  pid_t pid = fork();
  if (pid < 0) return Error::from_errno(errno, "fork");
  if (pid == 0) {
    ChildArgs a{&spec, &*id, argv.data(), envp.data(), oom_text.c_str(), oom_len};
    child_main(a, err_write.get(), in.get(), out.get());
  }

  err_write.reset();
  // The child is ours and unreaped, so its pid cannot be reused before this.
  Fd pidfd(sys_pidfd_open(pid, 0));
  const int pidfd_errno = errno;

  // Reports until exec closes the pipe: a Log warning, then maybe a failure.
  ChildError ce{};
  ssize_t n;
  std::string warning;
  for (;;) {
    do {
      n = read(err_read.get(), &ce, sizeof(ce));
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof(ce)) || ce.stage != Stage::Log) break;
    warning = stage_message(ce, spec, *id);
  }
  if (n > 0) {
    // exec did not happen: the child has _exit(127)ed or is about to. Reap it
    // so no zombie and no half-started service is left behind.
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (n != static_cast<ssize_t>(sizeof(ce))) return Error{EIO, "spawn " + spec.argv[0] + ": short error report"};
    return Error{ce.err, stage_message(ce, spec, *id)};
  }
  if (pidfd.get() < 0) {
    // Exec succeeded; without a pidfd we would signal by pid, which is exactly
    // the race pidfds exist to avoid. Leave no untracked process behind.
    kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return Error::from_errno(pidfd_errno, "pidfd_open");
  }
  Spawned s;
  s.pid = pid;
  s.pidfd = pidfd.release();
  s.key.tgid = static_cast<uint32_t>(pid);
  s.key.start_ns = 0;  // filled by the caller from process_start_ns (see Supervisor's start_of)
  s.warning = std::move(warning);
  return s;
}

}  // namespace fp
