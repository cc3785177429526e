#include "services.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <httplib.h>

#include "e2e_fixture.h"

namespace fp::e2e {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// A fresh private directory; never "/tmp" itself (it is removed afterwards).
std::string make_temp_dir(const char* prefix) {
  std::string tmpl = std::string("/tmp/") + prefix + "_XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    std::perror("mkdtemp");
    std::abort();
  }
  return buf.data();
}

void remove_temp_dir(const std::string& dir) {
  if (dir.rfind("/tmp/fp_", 0) != 0) return;
  if (std::getenv("FP_KEEP_TEMP")) {
    std::fprintf(stderr, "services: keeping %s (FP_KEEP_TEMP)\n", dir.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

namespace {

bool tcp_accepts(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// A UDP socket bound to 127.0.0.1:port shows in /proc/net/udp as
// "0100007F:PPPP" (hex, host byte order of the address as printed).
bool udp_bound(uint16_t port) {
  char want[32];
  std::snprintf(want, sizeof want, "0100007F:%04X", port);
  std::ifstream in("/proc/net/udp");
  std::string line;
  while (std::getline(in, line))
    if (line.find(want) != std::string::npos) return true;
  return false;
}

}  // namespace

size_t file_offset(const std::string& path) {
  std::error_code ec;
  auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<size_t>(n);
}

std::optional<std::string> wait_syslog_line(const std::string& log_file, const std::vector<std::string>& needles,
                                            std::chrono::milliseconds deadline, size_t from_offset) {
  auto end = std::chrono::steady_clock::now() + deadline;
  size_t offset = from_offset;
  std::string partial;  // a line not yet ended by '\n'
  while (true) {
    std::ifstream in(log_file, std::ios::binary);
    if (in) {
      in.seekg(0, std::ios::end);
      auto size = static_cast<size_t>(in.tellg());
      if (size < offset) {  // rotated or truncated: start over
        offset = 0;
        partial.clear();
      }
      in.seekg(static_cast<std::streamoff>(offset));
      std::string chunk(size - offset, '\0');
      in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      chunk.resize(static_cast<size_t>(in.gcount()));
      offset += chunk.size();
      partial += chunk;
      size_t start = 0, nl;
      while ((nl = partial.find('\n', start)) != std::string::npos) {
        std::string line = partial.substr(start, nl - start);
        start = nl + 1;
        bool all = true;
        for (const auto& n : needles) all = all && line.find(n) != std::string::npos;
        if (all) return line;
      }
      partial.erase(0, start);
    }
    if (std::chrono::steady_clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(50ms);
  }
}

uint16_t free_port(int sock_type) {
  int fd = socket(AF_INET, sock_type | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// ---- ChildProcess ----

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& log_path) {
  int logfd = open(log_path.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no service behind
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    if (logfd >= 0) {
      dup2(logfd, 1);
      dup2(logfd, 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  if (logfd >= 0) close(logfd);
}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    stop();
    pid_ = o.pid_;
    o.pid_ = -1;
  }
  return *this;
}

bool ChildProcess::alive() {
  if (pid_ <= 0) return false;
  if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  bool gone = wait_until([&] { return waitpid(pid_, nullptr, WNOHANG) == pid_; }, grace);
  if (!gone) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_ = -1;
}

// ---- PrivateRsyslog ----

PrivateRsyslog::PrivateRsyslog(std::chrono::milliseconds ready_deadline) {
  dir_ = make_temp_dir("fp_rsyslog");
  fs::create_directories(dir_ + "/work");
  udp_port_ = free_port(SOCK_DGRAM);
  tcp_port_ = free_port(SOCK_STREAM);
  std::string conf = dir_ + "/rsyslog.conf";
  std::ofstream(conf) << R"(# Private rsyslogd for faultprobe's end-to-end tests.
global(workDirectory=")" << dir_ << R"(/work" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
template(name="fpFields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="facility" name="syslogfacility" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="input" name="inputname" format="jsonf")
}
ruleset(name="received") {
  action(type="omfile" file=")" << dir_ << R"(/received.log" template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfile" file=")" << dir_ << R"(/received.jsonl" template="fpFields")
}
input(type="imudp" address="127.0.0.1" port=")" << udp_port_ << R"(" ruleset="received")
input(type="imtcp" address="127.0.0.1" port=")" << tcp_port_ << R"(" ruleset="received")
*.* action(type="omfile" file=")" << dir_ << R"(/internal.log")
)";
  proc_ = ChildProcess({"/usr/sbin/rsyslogd", "-n", "-f", conf, "-i", dir_ + "/rsyslogd.pid"}, dir_ + "/stderr.log");
  ok_ = wait_until([&] { return !proc_.alive() || (tcp_accepts(tcp_port_) && udp_bound(udp_port_)); },
                   ready_deadline) &&
        proc_.alive();
  if (!ok_) std::fprintf(stderr, "PrivateRsyslog did not start:\n%s\n", log().c_str());
}

PrivateRsyslog::~PrivateRsyslog() {
  proc_.stop();
  remove_temp_dir(dir_);
}

std::string PrivateRsyslog::log() const {
  return slurp(dir_ + "/stderr.log") + slurp(dir_ + "/internal.log");
}

std::vector<nlohmann::json> PrivateRsyslog::records() const {
  std::vector<nlohmann::json> out;
  std::ifstream in(json_file());
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

std::optional<nlohmann::json> PrivateRsyslog::wait_record(const std::function<bool(const nlohmann::json&)>& pred,
                                                          std::chrono::milliseconds deadline) const {
  std::optional<nlohmann::json> found;
  wait_until([&] { return (found = first_match(records(), pred)).has_value(); }, deadline);
  return found;
}

// ---- PrivateHttpService ----

PrivateHttpService::PrivateHttpService(const std::string& name)
    : name_(name), dir_(make_temp_dir(("fp_" + name).c_str())), port_(free_port(SOCK_STREAM)) {}

PrivateHttpService::~PrivateHttpService() {
  proc_.stop();
  remove_temp_dir(dir_);
}

void PrivateHttpService::start(const std::vector<std::string>& argv, std::chrono::milliseconds ready_deadline) {
  proc_ = ChildProcess(argv, dir_ + "/" + name_ + ".log");
  ok_ = wait_until(
            [&] {
              if (!proc_.alive()) return true;
              httplib::Client cli("127.0.0.1", port_);
              cli.set_connection_timeout(1s);
              auto res = cli.Get("/-/ready");
              return res && res->status == 200;
            },
            ready_deadline) &&
        proc_.alive();
  if (!ok_) std::fprintf(stderr, "%s did not get ready:\n%s\n", name_.c_str(), log().c_str());
}

std::string PrivateHttpService::log() const { return slurp(dir_ + "/" + name_ + ".log"); }

std::optional<nlohmann::json> PrivateHttpService::get_json(
    const std::string& path, const std::vector<std::pair<std::string, std::string>>& params) const {
  httplib::Client cli("127.0.0.1", port_);
  cli.set_connection_timeout(2s);
  cli.set_read_timeout(10s);
  httplib::Params p;
  for (const auto& [k, v] : params) p.emplace(k, v);
  auto res = cli.Get(path, p, httplib::Headers{});
  if (!res) return std::nullopt;
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

// ---- PrivatePrometheus ----

PrivatePrometheus::PrivatePrometheus(const PrometheusSetup& setup, std::chrono::milliseconds ready_deadline)
    : PrivateHttpService("prometheus") {
  std::string conf = dir() + "/prometheus.yml";
  std::ofstream out(conf);
  out << "global:\n"
         "  scrape_interval: 1s\n"
         "  scrape_timeout: 1s\n"
         "  evaluation_interval: 1s\n";
  if (!setup.rule_files.empty()) {
    out << "rule_files:\n";
    for (const auto& f : setup.rule_files) out << "  - '" << f << "'\n";
  }
  if (!setup.alertmanager.empty())
    out << "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['" << setup.alertmanager << "']\n";
  out << "scrape_configs:\n"
         "  - job_name: faultprobe\n"
         "    static_configs:\n"
         "      - targets: [";
  for (size_t i = 0; i < setup.targets.size(); ++i) out << (i ? ", '" : "'") << setup.targets[i] << "'";
  out << "]\n";
  out.close();
  start({"/usr/bin/prometheus", "--config.file=" + conf, "--storage.tsdb.path=" + dir() + "/data",
         "--web.listen-address=" + address(), "--log.level=info"},
        ready_deadline);
}

std::optional<nlohmann::json> PrivatePrometheus::query(const std::string& promql) const {
  return get_json("/api/v1/query", {{"query", promql}});
}

std::optional<nlohmann::json> PrivatePrometheus::targets() const { return get_json("/api/v1/targets", {}); }

std::optional<double> PrivatePrometheus::wait_value(const std::string& promql,
                                                    const std::function<bool(double)>& pred,
                                                    std::chrono::milliseconds deadline) const {
  std::optional<double> found;
  wait_until(
      [&] {
        auto j = query(promql);
        if (!j || j->value("status", "") != "success") return false;
        const auto& result = (*j)["data"]["result"];
        if (!result.is_array() || result.empty()) return false;
        // Instant vector: [{"metric": {...}, "value": [time, "1"]}]; scalar: [time, "1"].
        const auto& value = result[0].is_object() ? result[0]["value"] : result;
        if (!value.is_array() || value.size() != 2 || !value[1].is_string()) return false;
        double v = std::strtod(value[1].get<std::string>().c_str(), nullptr);
        if (!pred(v)) return false;
        found = v;
        return true;
      },
      deadline);
  return found;
}

bool PrivatePrometheus::wait_target_up(std::chrono::milliseconds deadline, size_t targets_up) const {
  return wait_until(
      [&] {
        auto j = targets();
        if (!j) return false;
        size_t up = 0;
        for (const auto& t : (*j)["data"]["activeTargets"]) up += t.value("health", "") == "up";
        return up >= targets_up;
      },
      deadline);
}

}  // namespace fp::e2e
