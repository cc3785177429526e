#include "act/respawn.h"

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
#include "util/proc_status.h"
#include "util/assignments.h"

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

// cmdline is each argument followed by a NUL.
// The "Groups:" line of /proc/PID/status: the supplementary groups, maybe none.
std::optional<std::vector<gid_t>> status_groups(std::string_view status) {
  size_t pos = status.find("\nGroups:");
  if (pos == std::string_view::npos) return std::nullopt;
  std::string_view line = status.substr(pos + 8);
  line = line.substr(0, line.find('\n'));
  std::vector<gid_t> out;
  const char* p = line.data();
  const char* end = p + line.size();
  while (p < end) {
    if (*p == ' ' || *p == '\t') {
      ++p;
      continue;
    }
    gid_t g = 0;
    auto [next, ec] = std::from_chars(p, end, g);
    if (ec != std::errc()) return std::nullopt;
    out.push_back(g);
    p = next;
  }
  return out;
}

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
  return split_assignments(raw, '\0');
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

size_t spawn_spec_bytes(const SpawnSpec& spec) {
  constexpr size_t kPerString = sizeof(std::string);
  size_t n = sizeof(SpawnSpec) + spec.cwd.size() + spec.user.size() + spec.log_path.size();
  for (const auto& a : spec.argv) n += kPerString + a.size();
  for (const auto& [k, v] : spec.env) n += 2 * kPerString + k.size() + v.size();
  if (spec.groups) n += spec.groups->size() * sizeof(gid_t);
  return n;
}

Result<SpawnSpec> capture_spawn_spec(pid_t pid, const std::string& proc_root, size_t max_bytes) {
  const std::string dir = proc_root + "/" + std::to_string(pid);
  const std::string who = "pid " + std::to_string(pid);
  auto fail = [&](const Error& e, const std::string& what) {
    return Error{e.code, "cannot read " + what + " of " + who + ": " + e.message};
  };

  auto st = read_proc_stat(pid, proc_root);
  if (!st) return st.error();
  if (st->flags & kPfKthread) return Error{EINVAL, who + " is a kernel thread: nothing to respawn"};

  // One byte over the bound is enough to know it is over.
  auto cmdline = read_small_file(dir + "/cmdline", max_bytes + 1);
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

  if (cmdline->size() > max_bytes) {
    return Error{E2BIG, "the command line of " + who + " is above " + std::to_string(max_bytes) +
                            " bytes: not kept, it will not be respawned"};
  }
  auto environ = read_small_file(dir + "/environ", max_bytes - cmdline->size() + 1);
  if (!environ) return fail(environ.error(), "the environment");
  if (cmdline->size() + environ->size() > max_bytes) {
    return Error{E2BIG, "the command line and environment of " + who + " are above " +
                            std::to_string(max_bytes) + " bytes: not kept, it will not be respawned"};
  }
  auto status = read_small_file(dir + "/status");
  if (!status) return fail(status.error(), "the status");

  SpawnSpec spec;
  uint32_t uid = 0, gid = 0;
  if (!proc_status_number(*status, "Uid:", uid) || !proc_status_number(*status, "Gid:", gid)) {
    return Error{EINVAL, "no Uid:/Gid: line in " + dir + "/status"};
  }
  spec.uid = uid;
  spec.gid = gid;
  // The groups it has, not the ones the group database gives its user now.
  spec.groups = status_groups(*status);
  if (!spec.groups) return Error{EINVAL, "no Groups: line in " + dir + "/status"};
  // Its own OOM priority (a fake /proc tree may not have one: the default 0).
  if (auto adj = read_small_file(dir + "/oom_score_adj", 32)) {
    int v = 0;
    std::string_view text(*adj);
    if (!text.empty() && text.front() == '-') text.remove_prefix(1);
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc() && p != text.data() && v >= 0 && v <= 1000)
      spec.oom_score_adj = adj->front() == '-' ? -v : v;
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
    if (::stat(out->c_str(), &sb) == 0 && S_ISREG(sb.st_mode)) {
      spec.log_path = *out;
      spec.log_as_user = true;  // a path the user chose: opened as them (spawn.h)
    }
  }
  return spec;
}

void RespawnRegistry::remember(const ProcKey& key) {
  if (auto it = entries_.find(key); it != entries_.end()) {
    // A capture that failed while the process was exec'ing (no command line
    // yet) gets another look when it is offered again (under its new name);
    // one refused for its size does not.
    if (it->second.spec || it->second.oversize) return;
    erase(it);
  }
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

  Entry e;
  if (spec) {
    e.bytes = spawn_spec_bytes(*spec);
    e.spec = std::move(spec.value());
  } else {
    e.error = spec.error().message;
    e.bytes = sizeof(Entry) + e.error.size();
    if (spec.error().code == E2BIG) {
      e.oversize = true;
      ++oversize_;
      spdlog::info("respawn: pid {} will not be respawned: {}", key.tgid, e.error);
    } else {
      spdlog::debug("respawn: pid {} cannot be respawned: {}", key.tgid, e.error);
    }
  }
  while (!entries_.empty() && (entries_.size() >= capacity_ || bytes_ + e.bytes > max_bytes_)) {
    erase(entries_.find(order_.front()));
    ++evicted_;
  }
  order_.push_back(key);
  e.order = std::prev(order_.end());
  bytes_ += e.bytes;
  entries_.emplace(key, std::move(e));
}

void RespawnRegistry::erase(std::map<ProcKey, Entry>::iterator it) {
  bytes_ -= it->second.bytes;
  order_.erase(it->second.order);
  entries_.erase(it);
}

void RespawnRegistry::forget(const ProcKey& key) {
  auto it = entries_.find(key);
  if (it != entries_.end()) erase(it);
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
