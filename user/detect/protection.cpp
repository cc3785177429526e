#include "detect/protection.h"

#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include "act/process.h"

namespace fp {
namespace {

constexpr size_t kCommLen = 15;  // TASK_COMM_LEN - 1: what the kernel keeps of a name
constexpr auto kCacheFor = std::chrono::seconds(1);
constexpr size_t kCacheMax = 4096;

// "/usr/sbin/sshd": an executable's path; anything else is a name.
bool is_path(const std::string& entry) { return !entry.empty() && entry.front() == '/'; }

bool glob(const std::string& pattern, std::string_view text) {
  std::string t(text);
  return pattern == t || ::fnmatch(pattern.c_str(), t.c_str(), 0) == 0;
}

// Only root or faultprobed's own user could have put it there, and nobody
// else can change it.
bool safe_owner(const struct stat& st) {
  return (st.st_uid == 0 || st.st_uid == ::geteuid()) && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

std::string_view file_name(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::optional<ExeIdentity> read_exe_identity(const ProcKey& key, const std::string& proc_root) {
  // Bracketed by two identity checks: what is read in between belongs to
  // the process of `key`, not to one that reused its pid.
  if (!verify_process(key, proc_root)) return std::nullopt;
  const std::string link = proc_root + "/" + std::to_string(key.tgid) + "/exe";
  auto path = read_link_path(link);
  if (!path) return std::nullopt;
  ExeIdentity id;
  id.path = *path;
  constexpr std::string_view kDeleted = " (deleted)";  // replaced by a package upgrade
  if (id.path.size() > kDeleted.size() && id.path.ends_with(kDeleted)) id.path.resize(id.path.size() - kDeleted.size());
  struct stat file {}, dir {};
  const size_t slash = id.path.rfind('/');
  const std::string dir_path = slash == std::string::npos || slash == 0 ? "/" : id.path.substr(0, slash);
  // The file through the link (the inode it runs, even if renamed since),
  // its directory by path.
  id.trusted = ::stat(link.c_str(), &file) == 0 && S_ISREG(file.st_mode) && safe_owner(file) &&
               ::stat(dir_path.c_str(), &dir) == 0 && S_ISDIR(dir.st_mode) && safe_owner(dir);
  if (!verify_process(key, proc_root)) return std::nullopt;
  return id;
}

Protection::Protection(std::vector<std::string> entries, ExeLookup lookup)
    : entries_(std::move(entries)), lookup_(std::move(lookup)) {
  if (!lookup_) lookup_ = [](const ProcKey& k) { return read_exe_identity(k, "/proc"); };
}

void Protection::set_entries(std::vector<std::string> entries) {
  entries_ = std::move(entries);
  cache_.clear();
}

std::optional<std::string> Protection::named(std::string_view comm) const {
  if (comm.empty()) return std::nullopt;
  for (const auto& e : entries_)
    if (!is_path(e) && glob(e, comm)) return e;
  return std::nullopt;
}

std::optional<std::string> Protection::protects(std::string_view comm, const ExeIdentity& exe) const {
  if (!exe.trusted || exe.path.empty()) return std::nullopt;
  for (const auto& e : entries_) {
    if (is_path(e)) {
      if (glob(e, exe.path)) return "protected: executable " + exe.path + " (protected_comms)";
      continue;
    }
    if (comm.empty() || !glob(e, comm)) continue;
    std::string_view name = file_name(exe.path);
    if (!glob(e, name.substr(0, kCommLen))) continue;
    std::string reason = "protected: comm \"" + std::string(comm) + "\"";
    if (e != comm) reason += " matches \"" + e + "\"";
    return reason + " (protected_comms)";
  }
  return std::nullopt;
}

std::optional<ExeIdentity> Protection::exe_of(const ProcKey& key) const {
  const auto now = std::chrono::steady_clock::now();
  if (auto it = cache_.find(key); it != cache_.end() && now - it->second.at < kCacheFor) return it->second.exe;
  if (cache_.size() >= kCacheMax) cache_.clear();
  auto exe = lookup_(key);
  cache_[key] = Cached{exe, now};
  return exe;
}

std::optional<std::string> Protection::protects(const ProcKey& key, std::string_view comm) const {
  bool by_path = false;
  for (const auto& e : entries_) by_path |= is_path(e);
  // The /proc reads only for a name that could be protected.
  if (!by_path && !named(comm)) return std::nullopt;
  auto exe = exe_of(key);
  if (!exe) return std::nullopt;
  return protects(comm, *exe);
}

std::string Protection::pretender(const ProcKey& key, std::string_view comm, bool alive) const {
  auto entry = named(comm);
  if (!entry || (alive && protects(key, comm))) return "";
  auto exe = alive ? exe_of(key) : std::nullopt;
  std::string why = "named like protected_comms entry \"" + *entry + "\" but ";
  if (!exe) return why + "its executable cannot be checked (it is gone): not protected";
  return why + "its executable " + exe->path + " is not that program" +
         (exe->trusted ? "" : " (not a root-owned file in a root-owned directory)") + ": not protected";
}

}  // namespace fp
