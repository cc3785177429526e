#include "e2e_fixture.h"

#include "../time_scale.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace fp::e2e {
namespace fs = std::filesystem;

std::string temp_dir() {
  char tmpl[] = "/tmp/fp_e2e_XXXXXX";
  char* d = mkdtemp(tmpl);
  return d ? d : "/tmp";
}

pid_t spawn(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (stdout_fd >= 0) dup2(stdout_fd, 1);
  if (stderr_fd >= 0) dup2(stderr_fd, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

bool has_victim(const nlohmann::json& fault, uint32_t pid) {
  for (const auto& v : fault["victims"])
    if (v.is_number_unsigned() && v.get<uint32_t>() == pid) return true;
  return false;
}

std::string io_dir() {
  const char* env = std::getenv("FP_TEST_IO_DIR");
  if (env && *env) return env;
  for (std::string d : {fs::current_path().string(), std::string("/var/tmp"), std::string("/root")}) {
    struct statfs sfs {};
    if (statfs(d.c_str(), &sfs) == 0 && sfs.f_type != TMPFS_MAGIC && sfs.f_type != OVERLAYFS_SUPER_MAGIC) return d;
  }
  return fs::current_path().string();
}

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + fp::test::scaled(timeout);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

std::optional<nlohmann::json> first_match(const std::vector<nlohmann::json>& records,
                                          const std::function<bool(const nlohmann::json&)>& pred) {
  for (const auto& r : records)
    if (pred(r)) return r;
  return std::nullopt;
}

int connect_unix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string read_line(int fd, std::chrono::milliseconds timeout) {
  std::string buf;
  auto end = std::chrono::steady_clock::now() + timeout;
  while (buf.find('\n') == std::string::npos && std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char tmp[65536];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n <= 0) break;
    buf.append(tmp, size_t(n));
  }
  return buf;
}

int run_capture(const std::vector<std::string>& argv, std::string* out, std::chrono::milliseconds timeout) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t pid = spawn(argv, fds[1], -1);
  close(fds[1]);
  std::string buf;
  auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, int(std::min<int64_t>(left.count(), 100))) <= 0) continue;
    char tmp[4096];
    ssize_t n = read(fds[0], tmp, sizeof(tmp));
    if (n <= 0) break;
    buf.append(tmp, size_t(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (out) *out = buf;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Daemon::Daemon(const std::string& config_toml, std::vector<std::string> extra_args, const std::string& daemon_keys) {
  dir_ = temp_dir();
  std::string cfg = dir_ + "/faultprobe.toml";
  std::string text = config_toml;
  if (text.find("[daemon]") == std::string::npos) {
    pin_dir_ = "/sys/fs/bpf/fp-e2e-" + fs::path(dir_).filename().string();
    text += "\n[daemon]\nsocket = \"" + socket_path() + "\"\nlock_path = \"" + dir_ +
            "/faultprobed.lock\"\nstate_dir = \"" + dir_ + "/state\"\nlog_dir = \"" + dir_ +
            "/logs\"\npin_dir = \"" + pin_dir_ + "\"\n" + daemon_keys + "\n";
  }
  std::ofstream(cfg) << text;
  if (!pin_dir_.empty()) {
    // The teardown detaches through a file of its own: a test may rewrite the
    // daemon's config (a reload test leaves a broken one), and a probe left
    // pinned stays attached to every sched_switch of the host afterwards.
    std::ofstream(dir_ + "/detach.toml") << "[daemon]\nlock_path = \"" << dir_ << "/faultprobed.lock\"\nstate_dir = \""
                                         << dir_ << "/state\"\npin_dir = \"" << pin_dir_ << "\"\n";
    chmod((dir_ + "/detach.toml").c_str(), 0600);
  }
  events_ = dir_ + "/events.jsonl";
  log_ = dir_ + "/daemon.log";
  launch(std::move(extra_args));
  if (!ready_) ADD_FAILURE() << "faultprobed did not start:\n" << log();
}

bool Daemon::launch(std::vector<std::string> extra_args) {
  int logfd = open(log_.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
  size_t log_from = slurp(log_).size();
  std::vector<std::string> argv = {FP_FAULTPROBED_BIN, "--foreground", "--config", config_path(),
                                   "--events-json", events_};
  for (auto& a : extra_args) argv.push_back(a);
  pid_ = spawn(argv, logfd, logfd);
  close(logfd);
  bool exited = false;
  ready_ = wait_for(
      [&] {
        if (!exited && waitpid(pid_, nullptr, WNOHANG) == pid_) exited = true;  // refused to start
        return exited || log().find("probe attached", log_from) != std::string::npos;
      },
      std::chrono::seconds(20)) &&
           !exited;
  if (exited) pid_ = -1;
  return ready_;
}

bool Daemon::restart(std::vector<std::string> extra_args) {
  if (pid_ > 0) stop();
  return launch(std::move(extra_args));
}

int Daemon::kill9() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

Daemon::~Daemon() {
  if (pid_ > 0) stop();
  if (!pin_dir_.empty() && fs::exists(pin_dir_)) {
    std::string out;
    run_capture({FP_FAULTPROBED_BIN, "--config", dir_ + "/detach.toml", "--detach-probe"}, &out,
                std::chrono::seconds(10));
    if (fs::exists(pin_dir_)) ADD_FAILURE() << "the probe pinned in " << pin_dir_ << " is still there: " << out;
  }
  std::error_code ec;
  if (!::testing::Test::HasFailure()) fs::remove_all(dir_, ec);
}

nlohmann::json Daemon::query(const nlohmann::json& req) const {
  int fd = connect_unix(socket_path());
  if (fd < 0) return nullptr;
  std::string line = req.dump() + "\n";
  if (write(fd, line.data(), line.size()) != ssize_t(line.size())) {
    close(fd);
    return nullptr;
  }
  std::string buf = read_line(fd, std::chrono::seconds(5));
  close(fd);
  auto nl = buf.find('\n');
  if (nl == std::string::npos) return nullptr;
  auto j = nlohmann::json::parse(buf.substr(0, nl), nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

nlohmann::json Daemon::view_row(uint32_t pid) const {
  auto r = query({{"cmd", "view"}});
  if (!r.is_object() || !r.contains("view")) return nullptr;
  for (const auto& p : r["view"]["procs"])
    if (p.value("pid", 0u) == pid) return p;
  return nullptr;
}

std::string Daemon::log() const { return slurp(log_); }

std::vector<nlohmann::json> Daemon::records() const {
  std::vector<nlohmann::json> out;
  std::ifstream in(events_);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      ADD_FAILURE() << "malformed event line: " << line;
      continue;
    }
    out.push_back(std::move(j));
  }
  return out;
}

std::optional<nlohmann::json> Daemon::wait_record(const std::function<bool(const nlohmann::json&)>& pred,
                                                  std::chrono::milliseconds timeout) const {
  std::optional<nlohmann::json> found;
  wait_for([&] { return (found = first_match(records(), pred)).has_value(); }, timeout);
  return found;
}

std::optional<nlohmann::json> Daemon::wait_fault(const std::string& cls, uint32_t pid,
                                                 std::chrono::milliseconds timeout) const {
  return wait_record(
      [&](const nlohmann::json& r) { return r["kind"] == "fault" && r["class"] == cls && r["pid"] == pid; },
      timeout);
}

std::optional<nlohmann::json> Daemon::wait_resolved(const std::string& cls, uint32_t pid,
                                                    std::chrono::milliseconds timeout) const {
  return wait_record(
      [&](const nlohmann::json& r) { return r["kind"] == "resolved" && r["class"] == cls && r["pid"] == pid; },
      timeout);
}

void Daemon::signal(int sig) const { kill(pid_, sig); }

int Daemon::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

FaultGen::FaultGen(std::vector<std::string> args) : FaultGen(FP_FAULTGEN_BIN, std::move(args)) {}

FaultGen::FaultGen(std::string program, std::vector<std::string> args) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return;
  args.insert(args.begin(), std::move(program));
  pid_ = spawn(args, fds[1], -1);
  close(fds[1]);
  out_fd_ = fds[0];
  // the first line, within 10 s
  auto end = std::chrono::steady_clock::now() + fp::test::scaled(std::chrono::seconds(10));
  while (buf_.find('\n') == std::string::npos && std::chrono::steady_clock::now() < end) {
    pollfd p{out_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char tmp[4096];
    ssize_t n = read(out_fd_, tmp, sizeof(tmp));
    if (n <= 0) break;
    buf_.append(tmp, size_t(n));
  }
  auto nl = buf_.find('\n');
  if (nl == std::string::npos) {
    ADD_FAILURE() << "faultgen printed no first line";
    return;
  }
  header_ = nlohmann::json::parse(buf_.substr(0, nl), nullptr, false);
  buf_.erase(0, nl + 1);
  if (header_.is_discarded() || !header_.contains("culprit")) {
    ADD_FAILURE() << "faultgen's first line is not the expected JSON";
    return;
  }
  culprit_ = header_["culprit"].get<uint32_t>();
  if (header_.contains("victims"))
    for (auto& v : header_["victims"]) victims_.push_back(v.get<uint32_t>());
}

std::vector<nlohmann::json> FaultGen::more_lines() {
  char tmp[4096];
  for (;;) {
    pollfd p{out_fd_, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) break;
    ssize_t n = read(out_fd_, tmp, sizeof(tmp));
    if (n <= 0) break;
    buf_.append(tmp, size_t(n));
  }
  std::vector<nlohmann::json> out;
  size_t nl;
  while ((nl = buf_.find('\n')) != std::string::npos) {
    auto j = nlohmann::json::parse(buf_.substr(0, nl), nullptr, false);
    buf_.erase(0, nl + 1);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

int FaultGen::wait() {
  int status = 0;
  if (!reaped_ && pid_ > 0) waitpid(pid_, &status, 0);
  reaped_ = true;
  return status;
}

int FaultGen::stop() {
  if (!reaped_ && pid_ > 0) kill(pid_, SIGTERM);
  return wait();
}

FaultGen::~FaultGen() {
  stop();
  if (out_fd_ >= 0) close(out_fd_);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool is_action(const nlohmann::json& r, const std::string& type, const std::string& result, uint32_t pid) {
  return r.value("kind", "") == "action" && r["action"].value("type", "") == type &&
         r["action"].value("result", "") == result && (pid == 0 || r.value("pid", 0u) == pid);
}

std::string describe(const std::vector<nlohmann::json>& records) {
  std::string s;
  for (const auto& r : records) s += r.dump() + "\n";
  return s.empty() ? "(no records)" : s;
}

}  // namespace fp::e2e
