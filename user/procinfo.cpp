#include "procinfo.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <string_view>

#include "util/file.h"
#include "util/proc_status.h"

namespace fp {
namespace {

// What a /proc file holds is the process's choice: at most this much of it
// (what was read before an error: the process may exit between reads).
constexpr size_t kProcFileCap = 64 * 1024;

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
  info.comm = std::string(trim_newline(read_file_partial(dir + "/comm", kProcFileCap)));
  info.exe = read_link(dir + "/exe");
  if (opts_.max_cmdline_bytes > 0) {
    // One byte more than kept tells a cut line from one that fits exactly.
    std::string raw = read_file_partial(dir + "/cmdline", opts_.max_cmdline_bytes + 1);
    if (raw.size() > opts_.max_cmdline_bytes) {
      raw.resize(opts_.max_cmdline_bytes);
      info.cmdline_truncated = true;
      ++cmdline_truncated_;
    }
    info.cmdline = join_cmdline(raw);
  }
  info.cgroup = parse_cgroup_file(read_file_partial(dir + "/cgroup", 256 * 1024));  // v1: a line per hierarchy
  // Read last: a process that exited meanwhile shows as a zombie here. The
  // kernel moves an exiting task to the root cgroup before it becomes a
  // zombie and its exe link is gone, so what was read of it above is not what
  // it was: it is not found (a stale "/" must not stand for its cgroup).
  std::string status = read_file_partial(dir + "/status", kProcFileCap);
  if (proc_status_exited(status)) return ProcInfo{};
  proc_status_number(status, "Uid:", info.uid);
  proc_status_number(status, "PPid:", info.ppid);
  return info;
}

size_t ProcInfoCache::entry_bytes(const ProcInfo& info) {
  // The strings' bytes plus the map node, the list node and the strings' own
  // headers: what a process can make us hold, to within a few percent.
  return sizeof(Entry) + sizeof(ProcKey) + 64 + info.comm.size() + info.exe.size() + info.cmdline.size() +
         info.cgroup.size();
}

void ProcInfoCache::erase(std::map<ProcKey, Entry>::iterator it) {
  bytes_ -= it->second.bytes;
  order_.erase(it->second.order);
  cache_.erase(it);
}

const ProcInfo& ProcInfoCache::get(const ProcKey& key) {
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    ProcInfo info = read(key.tgid);
    const size_t bytes = entry_bytes(info);
    // Oldest first; the new entry itself always stays (one entry larger than
    // the whole budget cannot be: every field is bounded).
    while (!order_.empty() && bytes_ + bytes > opts_.max_bytes) {
      erase(cache_.find(order_.front()));
      ++evicted_;
    }
    order_.push_back(key);
    it = cache_.emplace(key, Entry{std::move(info), true, bytes, std::prev(order_.end())}).first;
    bytes_ += bytes;
  }
  it->second.used = true;
  return it->second.info;
}

void ProcInfoCache::prune() {
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (!it->second.used) {
      auto next = std::next(it);
      erase(it);
      it = next;
    } else {
      it->second.used = false;
      ++it;
    }
  }
}

ProcInfoCache::Stats ProcInfoCache::stats() const {
  return Stats{cache_.size(), bytes_, opts_.max_bytes, evicted_, cmdline_truncated_};
}

}  // namespace fp
