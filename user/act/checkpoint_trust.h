// Whether a checkpoint directory, and a process a restore names, deserve the
// daemon's trust. faultprobed runs as root: a checkpoint directory an
// unprivileged user can swap (a symlink on the path, a group- or
// world-writable directory) would let that user choose what root chowns,
// which images CRIU restores as root, or which process a forged restore.pid
// has the daemon adopt and later signal.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

namespace fp {

// An open directory (O_DIRECTORY, read-only) that passed the checks; closes itself.
class TrustedDir {
 public:
  explicit TrustedDir(int fd = -1) : fd_(fd) {}
  TrustedDir(TrustedDir&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  TrustedDir& operator=(TrustedDir&& o) noexcept;
  TrustedDir(const TrustedDir&) = delete;
  TrustedDir& operator=(const TrustedDir&) = delete;
  ~TrustedDir();
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Walks `path` (absolute) from "/" one component at a time with
// openat(O_NOFOLLOW | O_DIRECTORY), so no symlink anywhere on the path is
// followed, and checks each directory:
//  - the last one is owned by root or by `owner` (nullopt: root only) and is
//    not writable by group or others;
//  - every one above it is owned by root or `owner` and not writable by group
//    or others unless it is sticky (/tmp: others cannot rename or remove what
//    is not theirs there).
// Errors (EPERM, ELOOP for a symlink, ENOENT) say which component failed and
// why: "checkpoint directory /x/y is not trusted: /x is writable by others".
Result<TrustedDir> open_trusted_dir(const std::string& path, std::optional<uid_t> owner);

// mkdir -p of `path` (missing components made by root, mode 0755), then the
// checks above for `owner` (nullopt: root only); when `owner` is set and the
// directory is root's, it is handed to owner:group through its fd (fchown:
// never a path, so never a link).
Result<TrustedDir> ensure_trusted_dir(const std::string& path, std::optional<uid_t> owner, gid_t group);

// A restore.pid (CRIU's --pidfile) names a process: it must be the one the
// restore just made, not one an image's writer chose. It must have started no
// earlier than `restore_began_ns` (CLOCK_MONOTONIC, as process_start_ns),
// and run the expected executable (`command0`: an absolute path compared by
// realpath, else by file name; "" = not checked).
Result<void> verify_restored_process(pid_t pid, uint64_t restore_began_ns, const std::string& command0,
                                     const std::string& proc_root = "/proc");

}  // namespace fp
