#include "procinfo.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <iterator>
#include <string_view>

namespace fp {
namespace {

// The whole file, or what was read before an error (the process may exit
// between reads: /proc then fails reads with ESRCH, which an istream turns
// into an exception thrown from its iterator). /proc files report size 0,
// so read until EOF. Plain read(2): no exceptions, no surprises.
std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, size_t(n));
    if (out.size() > (1u << 20)) break;  // a cmdline can be long, not unbounded
  }
  ::close(fd);
  return out;
}

std::string read_link(const std::string& path) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) return {};
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    if (buf.size() >= 65536) return {};  // PATH_MAX is 4096; give up on anything absurd
    buf.resize(buf.size() * 2);
  }
}

std::string_view trim_newline(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool has_token(std::string_view list, std::string_view token) {
  while (true) {
    size_t comma = list.find(',');
    if (list.substr(0, comma) == token) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

// First unsigned number after `field` ("Uid:", "PPid:") at the start of a line of /proc/PID/status.
bool status_field(std::string_view status, std::string_view field, uint32_t& out) {
  size_t pos = 0;
  while (pos < status.size()) {
    size_t eol = status.find('\n', pos);
    std::string_view line = status.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (line.substr(0, field.size()) == field) {
      line.remove_prefix(field.size());
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      uint32_t v = 0;
      auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
      if (ec != std::errc() || ptr == line.data()) return false;
      out = v;
      return true;
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return false;
}

}  // namespace

std::string parse_cgroup_file(const std::string& content) {
  std::string v2;  // path of the "0::" line, if any
  bool have_v2 = false;
  std::string cpu, systemd;
  std::string_view rest = content;
  while (!rest.empty()) {
    size_t eol = rest.find('\n');
    std::string_view line = trim_newline(rest.substr(0, eol));
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);

    // "hierarchy-ID:controller-list:cgroup-path"; the path may itself contain ':'.
    size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view hier = line.substr(0, c1);
    std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string_view path = line.substr(c2 + 1);
    if (path.empty()) continue;

    if (hier == "0" && controllers.empty()) {
      v2 = path;
      have_v2 = true;
    } else if (cpu.empty() && has_token(controllers, "cpu")) {
      cpu = path;
    } else if (systemd.empty() && has_token(controllers, "name=systemd")) {
      systemd = path;
    }
  }
  if (have_v2 && v2 != "/") return v2;
  if (!cpu.empty()) return cpu;
  if (!systemd.empty()) return systemd;
  if (have_v2) return v2;
  return "/";
}

std::string join_cmdline(const std::string& raw) {
  // Trailing NULs are dropped, all of them: programs that rewrite their argv
  // (setproctitle) leave the rest of the original area NUL-filled.
  size_t end = raw.find_last_not_of('\0');
  if (end == std::string::npos) return {};
  std::string out = raw.substr(0, end + 1);
  for (char& c : out) {
    if (c == '\0') c = ' ';
  }
  return out;
}

ProcInfo ProcInfoCache::read(uint32_t pid) const {
  ProcInfo info;
  std::string dir = root_ + "/" + std::to_string(pid);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return info;
  info.found = true;
  info.comm = std::string(trim_newline(read_file(dir + "/comm")));
  info.exe = read_link(dir + "/exe");
  info.cmdline = join_cmdline(read_file(dir + "/cmdline"));
  info.cgroup = parse_cgroup_file(read_file(dir + "/cgroup"));
  std::string status = read_file(dir + "/status");
  status_field(status, "Uid:", info.uid);
  status_field(status, "PPid:", info.ppid);
  return info;
}

const ProcInfo& ProcInfoCache::get(const ProcKey& key) {
  auto it = cache_.find(key);
  if (it == cache_.end()) it = cache_.emplace(key, Entry{read(key.tgid), true}).first;
  it->second.used = true;
  return it->second.info;
}

void ProcInfoCache::prune() {
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (!it->second.used) {
      it = cache_.erase(it);
    } else {
      it->second.used = false;
      ++it;
    }
  }
}

}  // namespace fp
