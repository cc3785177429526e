#include "act/respawn.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "act/process.h"

namespace fp {
namespace {

constexpr std::string_view kDeleted = " (deleted)";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

// Real id (first number) of the "Uid:" or "Gid:" line of /proc/PID/status.
bool status_id(std::string_view status, std::string_view field, uint32_t& out) {
  size_t pos = 0;
  while (pos < status.size()) {
    size_t eol = status.find('\n', pos);
    std::string_view line = status.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (line.substr(0, field.size()) == field) {
      line.remove_prefix(field.size());
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), out);
      return ec == std::errc() && ptr != line.data();
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return false;
}

// cmdline is each argument followed by a NUL.
std::vector<std::string> split_cmdline(std::string_view raw) {
  if (!raw.empty() && raw.back() == '\0') raw.remove_suffix(1);
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    size_t nul = raw.find('\0', pos);
    out.emplace_back(raw.substr(pos, nul == std::string_view::npos ? std::string_view::npos : nul - pos));
    if (nul == std::string_view::npos) break;
    pos = nul + 1;
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> split_environ(std::string_view raw) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t nul = raw.find('\0', pos);
    std::string_view entry = raw.substr(pos, nul == std::string_view::npos ? std::string_view::npos : nul - pos);
    pos = nul == std::string_view::npos ? raw.size() : nul + 1;
    size_t eq = entry.find('=');
    if (entry.empty() || eq == std::string_view::npos || eq == 0) continue;  // not NAME=VALUE
    out.emplace_back(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return out;
}

// The path to exec for argv[0], or "" when argv[0] does not lead to the running binary.
std::string resolve_argv0(const std::string& argv0, const std::string& cwd, const std::string& exe,
                          const std::vector<std::pair<std::string, std::string>>& env) {
  const std::string exe_real = real_path(exe);
  auto is_exe = [&](const std::string& path) {
    return !exe_real.empty() && ::access(path.c_str(), X_OK) == 0 && real_path(path) == exe_real;
  };
  auto in_cwd = [&](const std::string& rel) { return cwd == "/" ? "/" + rel : cwd + "/" + rel; };
  if (argv0.empty()) return {};
  if (argv0.front() == '/') return is_exe(argv0) ? argv0 : std::string();
  if (argv0.find('/') != std::string::npos) return is_exe(in_cwd(argv0)) ? argv0 : std::string();
  // A bare name was found through PATH; resolve it the same way, to an absolute path.
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& [k, v] : env) {
    if (k == "PATH") path = v;
  }
  size_t pos = 0;
  for (;;) {
    size_t colon = path.find(':', pos);
    std::string dir = path.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos);
    std::string candidate = dir.empty() ? argv0 : dir + "/" + argv0;
    if (candidate.front() != '/') candidate = in_cwd(candidate);
    if (is_exe(candidate)) return candidate;
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  return {};
}

}  // namespace

Result<SpawnSpec> capture_spawn_spec(pid_t pid, const std::string& proc_root) {
  const std::string dir = proc_root + "/" + std::to_string(pid);
  const std::string who = "pid " + std::to_string(pid);
  auto fail = [&](const Error& e, const std::string& what) {
    return Error{e.code, "cannot read " + what + " of " + who + ": " + e.message};
  };

  auto st = read_proc_stat(pid, proc_root);
  if (!st) return st.error();
  if (st->flags & kPfKthread) return Error{EINVAL, who + " is a kernel thread: nothing to respawn"};

  auto cmdline = read_small_file(dir + "/cmdline", 4u << 20);
  if (!cmdline) return fail(cmdline.error(), "the command line");
  if (cmdline->empty())
    return Error{EINVAL, who + " has no command line (kernel thread or zombie): nothing to respawn"};

  auto exe = read_link_path(dir + "/exe");
  if (!exe) return fail(exe.error(), "the executable");
  if (ends_with(*exe, kDeleted)) {
    return Error{ENOENT, "the executable of " + who + " was deleted (" + *exe + "): cannot respawn it"};
  }
  auto cwd = read_link_path(dir + "/cwd");
  if (!cwd) return fail(cwd.error(), "the working directory");
  if (ends_with(*cwd, kDeleted)) {
    return Error{ENOENT, "the working directory of " + who + " was deleted (" + *cwd + "): cannot respawn it"};
  }

  // A respawn runs in faultprobed's filesystem view: refuse when the process saw another one.
  // (Unreadable links, as in a fake /proc tree, mean there is nothing to compare.)
  if (auto root = read_link_path(dir + "/root"); root && *root != "/") {
    return Error{EINVAL, who + " runs chrooted in " + *root + ": cannot respawn it outside"};
  }
  auto mnt = read_link_path(dir + "/ns/mnt");
  auto own_mnt = read_link_path(proc_root + "/self/ns/mnt");
  if (mnt && own_mnt && *mnt != *own_mnt) {
    return Error{EINVAL, who + " runs in another mount namespace (" + *mnt + "): cannot respawn it here"};
  }

  auto environ = read_small_file(dir + "/environ", 4u << 20);
  if (!environ) return fail(environ.error(), "the environment");
  auto status = read_small_file(dir + "/status");
  if (!status) return fail(status.error(), "the status");

  SpawnSpec spec;
  uint32_t uid = 0, gid = 0;
  if (!status_id(*status, "Uid:", uid) || !status_id(*status, "Gid:", gid)) {
    return Error{EINVAL, "no Uid:/Gid: line in " + dir + "/status"};
  }
  spec.uid = uid;
  spec.gid = gid;
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found && found->pw_gid == gid) {
    spec.user = found->pw_name;
  }

  spec.argv = split_cmdline(*cmdline);
  spec.cwd = *cwd;
  spec.env = split_environ(*environ);
  std::string argv0 = resolve_argv0(spec.argv[0], spec.cwd, *exe, spec.env);
  spec.argv[0] = argv0.empty() ? *exe : argv0;

  // Keep appending to the log file the process wrote its stdout to.
  if (auto out = read_link_path(dir + "/fd/1");
      out && !out->empty() && out->front() == '/' && !ends_with(*out, kDeleted)) {
    struct stat sb {};
    if (::stat(out->c_str(), &sb) == 0 && S_ISREG(sb.st_mode)) spec.log_path = *out;
  }
  return spec;
}

void RespawnRegistry::remember(const ProcKey& key) {
  if (entries_.count(key)) return;
  // The pid must be that process before and after the reads: a pid reused in
  // between would otherwise give us someone else's command line.
  if (auto v = verify_process(key, proc_root_); !v) {
    spdlog::debug("respawn: not capturing pid {}: {}", key.tgid, v.error().message);
    return;
  }
  auto spec = capture_spawn_spec(pid_t(key.tgid), proc_root_);
  if (auto v = verify_process(key, proc_root_); !v) {
    spdlog::debug("respawn: not capturing pid {}: {}", key.tgid, v.error().message);
    return;
  }

  while (entries_.size() >= capacity_) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
  order_.push_back(key);
  Entry e;
  e.order = std::prev(order_.end());
  if (spec) {
    e.spec = std::move(spec.value());
  } else {
    e.error = spec.error().message;
    spdlog::debug("respawn: pid {} cannot be respawned: {}", key.tgid, e.error);
  }
  entries_.emplace(key, std::move(e));
}

void RespawnRegistry::forget(const ProcKey& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  order_.erase(it->second.order);
  entries_.erase(it);
}

const SpawnSpec* RespawnRegistry::find(const ProcKey& key) const {
  auto it = entries_.find(key);
  return it != entries_.end() && it->second.spec ? &*it->second.spec : nullptr;
}

std::optional<std::string> RespawnRegistry::failure(const ProcKey& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.spec) return std::nullopt;
  return it->second.error;
}

}  // namespace fp
