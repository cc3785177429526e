// Checkpoints for restore: the two backends.
//  - Application-assisted: the service writes complete checkpoints into its
//    directory (write, then rename); faultprobe only picks the newest one.
//  - CRIU: faultprobe dumps the running process on a schedule
//    (criu dump --leave-running) and restores the newest image on a fault,
//    where CRIU works on the running kernel (probed at start-up).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

namespace fp {

// A complete checkpoint (an app checkpoint or a CRIU image directory) and
// when it was taken (its mtime: for a CRIU image, the last file criu wrote).
struct CheckpointEntry {
  std::string path;
  std::filesystem::file_time_type time;
  bool operator==(const CheckpointEntry&) const = default;
};

// The complete checkpoints in `dir`, oldest first. Ignores names starting
// with '.', ending in ".tmp", ".partial" or "~", and anything that is not a
// regular file or a directory (symlinks included). Ordered by mtime; equal
// mtimes by name (the greater name is the newer).
std::vector<CheckpointEntry> complete_checkpoints(const std::string& dir);
// The newest of them (full path), or nullopt.
std::optional<std::string> newest_complete_checkpoint(const std::string& dir);

// Runs argv (argv[0] looked up in PATH) with stdin on /dev/null and
// stdout+stderr captured into *out (when out is not null). Returns the exit
// code (128 + signal when killed); an Error when it could not be started
// (code ENOENT when the program is missing) or ran past the timeout (killed).
using CommandRunnerFn =
    std::function<Result<int>(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, std::string* out)>;
Result<int> run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, std::string* out);

struct CriuStatus {
  bool available = false;
  std::string version;  // "3.17.1"; "" when unknown
  std::string reason;   // why not available ("criu not installed", the first error of `criu check`)
};

class CriuBackend {
 public:
  explicit CriuBackend(CommandRunnerFn run = run_command);

  // `criu --version` and `criu check`. Never throws, never fails: the reason
  // says what did not work.
  static CriuStatus probe(const CommandRunnerFn& run);
  // Probes with this backend's runner and remembers the answer for status().
  const CriuStatus& probe();
  const CriuStatus& status() const { return status_; }

  // Dumps the process tree of `pid` into a fresh numbered image directory
  // under `image_root` (root/000001, root/000002, ...): written to NNNNNN.tmp,
  // renamed when criu succeeded, then all but the `keep` newest removed.
  // Returns the new directory.
  Result<std::string> dump(pid_t pid, const std::string& image_root, uint32_t keep);
  // Restores an image directory detached (-d) and returns the restored pid.
  Result<pid_t> restore(const std::string& image_dir);
  // What restore() runs (`criu restore -D DIR --shell-job -d --pidfile
  // DIR/restore.pid -o restore.log`), for a caller that starts it elsewhere
  // (a systemd unit: act/systemd_spawner.h), and the pid file it writes.
  static std::vector<std::string> restore_argv(const std::string& image_dir);
  static std::string restore_pidfile(const std::string& image_dir);
  // The first error line of criu's restore.log in `image_dir` (after a failed restore).
  static std::string restore_error(const std::string& image_dir);

  // The newest complete image directory under `image_root`, or nullopt.
  static std::optional<std::string> newest_image(const std::string& image_root);
  // Every complete image directory under `image_root`, oldest first.
  static std::vector<CheckpointEntry> images(const std::string& image_root);

 private:
  CommandRunnerFn run_;
  CriuStatus status_;
};

}  // namespace fp
