// The log source of app_errors ([[logwatch]] rules): each rule's file is
// followed from its end (across rename and truncation), its new lines are
// matched against the rule's RE2 pattern at every tick, and each matching
// line is charged to the process that wrote it, as far as that is known:
//  1. the pattern's named group "pid" ((?P<pid>[0-9]+)): the line says so
//     (logs written by a logger on the process's behalf);
//  2. else the kernel: a fanotify FAN_MODIFY mark on the file names the pid
//     of every process that wrote to it (needs CAP_SYS_ADMIN); when only one
//     wrote since the last read, the lines are its own;
//  3. else the detector settles it with the rule's match (the one live
//     process it selects), or counts the line as unattributed.
//
// The file is hostile input: it is opened without following a symlink and
// only if it is a regular file (an O_PATH look first, so a FIFO or a device
// put in its place is never opened), read at most kReadBudget bytes a tick,
// lines cut at kMaxLineBytes; a file that grows faster than that is skipped
// ahead and the skipped bytes counted. Nothing here throws out of a tick.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "util/fd.h"

namespace re2 {
class RE2;
}

namespace fp {

inline constexpr size_t kMaxLineBytes = 4096;          // longer lines are cut (and the rest skipped)
inline constexpr size_t kReadBudget = 256 * 1024;       // per file per tick
inline constexpr uint64_t kMaxBacklogBytes = 16u << 20;  // further behind than this: skip to the end
inline constexpr size_t kMaxJournalEntries = 2000;      // journal entries read per rule per tick

// A line that matched, and who wrote it as far as the source knows.
struct LogMatch {
  enum class By { Line, Kernel, Journal, None };
  uint32_t pid = 0;               // Line: the line's pid; Kernel: the only writer; Journal: _PID; None: 0
  By by = By::None;
  std::vector<uint32_t> writers;  // By::None: the writers the kernel saw (several, or none known)
  std::string line;               // raw bytes, at most kMaxLineBytes, no newline
};
const char* log_match_by_name(LogMatch::By by);  // "line", "kernel", "journal", "match"

// What the app_errors detector reads: the lines of a rule matched at this tick.
class LogMatchSource {
 public:
  virtual ~LogMatchSource() = default;
  virtual const std::vector<LogMatch>& matches(const std::string& rule) const = 0;
};

// One log file, followed.
class LogFollower {
 public:
  explicit LogFollower(std::string path) : path_(std::move(path)) {}
  // Calls on_line for each complete line appended since the last call (at
  // most `budget` bytes read). The first open starts at the file's end; a
  // file that replaced it (rotation) is read from its start once the old one
  // is read to its end; a truncated file is read again from its start.
  void read(size_t budget, const std::function<void(std::string_view)>& on_line);
  // "" while following; else why not (the file is missing, a symlink, ...).
  const std::string& error() const { return error_; }
  // The open file, -1 when none; generation() changes each time another file is opened.
  int fd() const { return fd_.get(); }
  uint64_t generation() const { return generation_; }
  uint64_t lines() const { return lines_; }
  uint64_t bytes() const { return bytes_; }
  uint64_t skipped_bytes() const { return skipped_; }
  uint64_t rotations() const { return rotations_; }

 private:
  bool open_file(bool at_end);
  void fail(std::string why);
  void take(std::string_view data, const std::function<void(std::string_view)>& on_line);

  std::string path_;
  Fd fd_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  uint64_t offset_ = 0;
  bool opened_once_ = false;
  std::string partial_;   // an incomplete last line
  bool cutting_ = false;  // inside a line longer than kMaxLineBytes: skip to its newline
  std::string error_;
  uint64_t generation_ = 0;
  uint64_t lines_ = 0, bytes_ = 0, skipped_ = 0, rotations_ = 0;
};

// The pids that wrote to a file, from a fanotify FAN_MODIFY mark on it.
class WriterWatch {
 public:
  // False (and error() says why) without CAP_SYS_ADMIN or fanotify.
  bool mark(int file_fd);
  // The distinct pids that modified the marked file since the last call.
  std::vector<uint32_t> drain();
  const std::string& error() const { return error_; }
  bool active() const { return fan_.valid(); }

 private:
  Fd fan_;
  std::string error_;
};

// Every enabled [[logwatch]] rule's follower, writer watch and matches.
class LogWatchSet final : public LogMatchSource {
 public:
  LogWatchSet();
  ~LogWatchSet() override;
  // Rules whose path and pattern did not change keep their place in their file.
  void set_rules(const std::vector<RuleConfig>& rules);
  bool empty() const { return watches_.empty(); }
  // Reads every file (called once a tick, before the engine's tick).
  void read();
  const std::vector<LogMatch>& matches(const std::string& rule) const override;
  // {"rule": {"path", "following", "error", "writers_from", "lines", "matched", "skipped_bytes", ...}}
  nlohmann::json status() const;

 private:
  struct Watch;
  std::map<std::string, std::unique_ptr<Watch>> watches_;
};

}  // namespace fp
