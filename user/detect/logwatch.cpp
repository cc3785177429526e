#include "detect/logwatch.h"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <re2/re2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "detect/journal.h"
#include "util/text.h"

namespace fp {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

// The file at `path` if it is a regular file reached without a symlink in
// its last component: looked at through O_PATH first (which opens nothing:
// no FIFO blocks, no device acts), then opened for reading through that
// same inode.
Fd open_regular(const std::string& path, std::string& why, struct stat& st) {
  Fd probe(::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!probe.valid()) {
    why = errno == ELOOP ? "is a symbolic link (not followed)" : errno_text(errno);
    return Fd();
  }
  if (::fstat(probe.get(), &st) != 0) {
    why = errno_text(errno);
    return Fd();
  }
  if (S_ISLNK(st.st_mode)) {  // O_PATH|O_NOFOLLOW opens the link itself
    why = "is a symbolic link (not followed)";
    return Fd();
  }
  if (!S_ISREG(st.st_mode)) {
    why = "is not a regular file";
    return Fd();
  }
  const std::string self = "/proc/self/fd/" + std::to_string(probe.get());
  Fd fd(::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    why = errno_text(errno);
    return Fd();
  }
  return fd;
}

}  // namespace

const char* log_match_by_name(LogMatch::By by) {
  switch (by) {
    case LogMatch::By::Line: return "line";
    case LogMatch::By::Kernel: return "kernel";
    case LogMatch::By::Journal: return "journal";
    case LogMatch::By::None: return "match";
  }
  return "?";
}

// ---- LogFollower ----

void LogFollower::fail(std::string why) {
  if (why != error_) {
    spdlog::warn("logwatch: {}: {}", display_text(path_), why);
    error_ = std::move(why);
  }
}

bool LogFollower::open_file(bool at_end) {
  std::string why;
  struct stat st {};
  Fd fd = open_regular(path_, why, st);
  if (!fd.valid()) {
    fail("cannot follow: " + why);
    return false;
  }
  fd_ = std::move(fd);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  offset_ = at_end ? static_cast<uint64_t>(st.st_size) : 0;
  partial_.clear();
  cutting_ = false;
  generation_++;
  if (!error_.empty()) spdlog::info("logwatch: {}: following again", display_text(path_));
  error_.clear();
  return true;
}

void LogFollower::take(std::string_view data, const std::function<void(std::string_view)>& on_line) {
  while (!data.empty()) {
    const size_t nl = data.find('\n');
    const std::string_view piece = data.substr(0, nl);
    if (!cutting_) {
      const size_t room = kMaxLineBytes - partial_.size();
      partial_.append(piece.substr(0, room));
      if (piece.size() > room) cutting_ = true;  // the rest of this line is not kept
    }
    if (nl == std::string_view::npos) return;
    lines_++;
    on_line(partial_);
    partial_.clear();
    cutting_ = false;
    data.remove_prefix(nl + 1);
  }
}

void LogFollower::read(size_t budget, const std::function<void(std::string_view)>& on_line) {
  if (!fd_.valid() && !open_file(!opened_once_)) return;
  opened_once_ = true;
  char buf[64 * 1024];
  for (int pass = 0; pass < 2; pass++) {
    struct stat st {};
    if (::fstat(fd_.get(), &st) == 0) {
      const auto size = static_cast<uint64_t>(st.st_size);
      if (size < offset_) {  // truncated in place (copytruncate): read it again from the start
        offset_ = 0;
        partial_.clear();
        cutting_ = false;
        rotations_++;
      } else if (size - offset_ > kMaxBacklogBytes) {  // cannot keep up: count what is skipped
        skipped_ += size - offset_;
        offset_ = size;
        partial_.clear();
        cutting_ = true;  // the line we land in is incomplete
      }
    }
    while (budget > 0) {
      const ssize_t n = ::pread(fd_.get(), buf, std::min(budget, sizeof buf), static_cast<off_t>(offset_));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        fail("read failed: " + errno_text(errno));
        fd_.reset();
        return;
      }
      if (n == 0) break;
      offset_ += static_cast<uint64_t>(n);
      bytes_ += static_cast<uint64_t>(n);
      budget -= static_cast<size_t>(n);
      take(std::string_view(buf, static_cast<size_t>(n)), on_line);
    }
    if (budget == 0) return;  // more next tick
    // At the end of this file: has another taken its name (rotation)?
    struct stat now {};
    if (::lstat(path_.c_str(), &now) != 0 || (now.st_dev == dev_ && now.st_ino == ino_)) return;
    if (!partial_.empty() && !cutting_) {  // the old file's last line, unterminated
      lines_++;
      on_line(partial_);
    }
    rotations_++;
    fd_.reset();
    if (!open_file(false)) return;
  }
}

// ---- WriterWatch ----

bool WriterWatch::mark(int file_fd) {
  // A fresh group for each file opened: the old file's mark goes with it.
  fan_.reset(::fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_CLOEXEC | O_LARGEFILE));
  if (!fan_.valid()) {
    error_ = "fanotify_init: " + errno_text(errno) + " (writers are known only from the line or the match)";
    return false;
  }
  if (::fanotify_mark(fan_.get(), FAN_MARK_ADD, FAN_MODIFY, file_fd, nullptr) != 0) {
    error_ = "fanotify_mark: " + errno_text(errno);
    fan_.reset();
    return false;
  }
  error_.clear();
  return true;
}

std::vector<uint32_t> WriterWatch::drain() {
  std::vector<uint32_t> pids;
  if (!fan_.valid()) return pids;
  alignas(fanotify_event_metadata) char buf[4096];
  for (int rounds = 0; rounds < 64; rounds++) {  // a bound: the queue merges a writer's events
    const ssize_t n = ::read(fan_.get(), buf, sizeof buf);
    if (n <= 0) break;
    auto* m = reinterpret_cast<fanotify_event_metadata*>(buf);
    ssize_t len = n;
    while (FAN_EVENT_OK(m, len)) {
      if (m->fd >= 0) ::close(m->fd);
      if (m->vers == FANOTIFY_METADATA_VERSION && m->pid > 0 && (m->mask & FAN_Q_OVERFLOW) == 0)
        pids.push_back(static_cast<uint32_t>(m->pid));
      m = FAN_EVENT_NEXT(m, len);
    }
  }
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  return pids;
}

// ---- LogWatchSet ----

struct LogWatchSet::Watch {
  LogWatchRule source;
  std::string path, pattern;
  LogFollower follower;
  std::unique_ptr<JournalFollower> journal;  // journal = ...: instead of the file
  WriterWatch writers;
  uint64_t marked_generation = 0;
  std::unique_ptr<re2::RE2> re;
  int pid_group = 0;  // 1-based index of (?P<pid>...), 0 when none
  std::vector<LogMatch> matches;
  uint64_t matched = 0;
  explicit Watch(const LogWatchRule& lw)
      : source(lw), path(lw.path), pattern(lw.pattern), follower(lw.path) {
    if (lw.journal) journal = std::make_unique<JournalFollower>(lw.journal_dir, lw.unit);
    re2::RE2::Options opts;
    opts.set_log_errors(false);
    opts.set_max_mem(8 << 20);
    re = std::make_unique<re2::RE2>(pattern, opts);
    auto groups = re->NamedCapturingGroups();
    if (auto it = groups.find("pid"); it != groups.end()) pid_group = it->second;
  }
};

LogWatchSet::LogWatchSet() = default;
LogWatchSet::~LogWatchSet() = default;

void LogWatchSet::set_rules(const std::vector<RuleConfig>& rules) {
  std::map<std::string, std::unique_ptr<Watch>> next;
  for (const RuleConfig& r : rules) {
    if (r.cls != FaultClass::AppErrors || !r.enabled || (r.logwatch.path.empty() && !r.logwatch.journal)) continue;
    auto it = watches_.find(r.name);
    const LogWatchRule& lw = r.logwatch;
    if (it != watches_.end() && it->second->path == lw.path && it->second->pattern == lw.pattern &&
        it->second->source.journal == lw.journal && it->second->source.journal_dir == lw.journal_dir &&
        it->second->source.unit == lw.unit) {
      next[r.name] = std::move(it->second);
      continue;
    }
    auto w = std::make_unique<Watch>(r.logwatch);
    if (!w->re->ok()) {  // the config checked it: only a stale one gets here
      spdlog::error("logwatch {}: pattern does not compile: {}", display_text(r.name), w->re->error());
      continue;
    }
    next[r.name] = std::move(w);
  }
  watches_ = std::move(next);
}

namespace {

// Whether `line` matches; with a pid group, the pid it names (0: none or not a number).
bool match_line(const re2::RE2& re, int pid_group, std::string_view line, uint32_t& pid) {
  pid = 0;
  re2::StringPiece pid_text;
  bool hit = false;
  try {
    if (pid_group > 0) {
      std::vector<re2::StringPiece> groups(static_cast<size_t>(pid_group) + 1);
      hit = re.Match(line, 0, line.size(), re2::RE2::UNANCHORED, groups.data(), static_cast<int>(groups.size()));
      if (hit) pid_text = groups[static_cast<size_t>(pid_group)];
    } else {
      hit = re2::RE2::PartialMatch(line, re);
    }
  } catch (...) {
    return false;  // RE2 does not throw; an allocation failure must not end the tick
  }
  if (hit && !pid_text.empty()) {
    uint32_t v = 0;
    auto [end, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), v);
    if (ec == std::errc() && end == pid_text.data() + pid_text.size()) pid = v;
  }
  return hit;
}

}  // namespace

void LogWatchSet::read() {
  for (auto& [name, wp] : watches_) {
    Watch& w = *wp;
    w.matches.clear();
    std::vector<LogMatch> found;
    auto take = [&](std::string_view line, uint32_t line_pid, LogMatch::By by) {
      LogMatch m;
      m.line = std::string(utf8_prefix(line, kMaxLineBytes));
      if (line_pid > 0) {
        m.pid = line_pid;
        m.by = by;
      }
      found.push_back(std::move(m));
    };
    if (w.journal) {
      // The journal names the writer of each entry (_PID); a pid group in the
      // pattern overrides it (a logger's entries about others).
      w.journal->read(kMaxJournalEntries, [&](std::string_view msg, uint32_t pid) {
        uint32_t line_pid = 0;
        if (!match_line(*w.re, w.pid_group, msg, line_pid)) return;
        if (line_pid > 0)
          take(msg, line_pid, LogMatch::By::Line);
        else
          take(msg, pid, LogMatch::By::Journal);
      });
      w.matched += found.size();
      w.matches = std::move(found);
      continue;
    }
    w.follower.read(kReadBudget, [&](std::string_view line) {
      uint32_t line_pid = 0;
      if (match_line(*w.re, w.pid_group, line, line_pid)) take(line, line_pid, LogMatch::By::Line);
    });
    // Who wrote: the kernel's answer covers every line read so far (the
    // marks were drained after the read), so a writer of these lines is in it.
    if (w.follower.fd() >= 0 && w.marked_generation != w.follower.generation()) {
      w.marked_generation = w.follower.generation();
      if (!w.writers.mark(w.follower.fd()))
        spdlog::warn("logwatch {}: {}", display_text(name), w.writers.error());
    }
    const std::vector<uint32_t> writers = w.writers.drain();
    for (LogMatch& m : found) {
      if (m.by == LogMatch::By::Line) continue;
      if (writers.size() == 1) {
        m.pid = writers[0];
        m.by = LogMatch::By::Kernel;
      } else {
        m.writers = writers;
      }
    }
    w.matched += found.size();
    w.matches = std::move(found);
  }
}

const std::vector<LogMatch>& LogWatchSet::matches(const std::string& rule) const {
  static const std::vector<LogMatch> kNone;
  auto it = watches_.find(rule);
  return it == watches_.end() ? kNone : it->second->matches;
}

nlohmann::json LogWatchSet::status() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, wp] : watches_) {
    const Watch& w = *wp;
    nlohmann::json j;
    if (w.journal) {
      j = {{"journal", w.source.journal_dir.empty() ? "the host's" : w.source.journal_dir},
           {"following", w.journal->following()},
           {"entries", w.journal->entries()},
           {"matched", w.matched},
           {"writers_from", w.pid_group > 0 ? "line" : "journal (_PID)"}};
      if (!w.source.unit.empty()) j["unit"] = w.source.unit;
      if (!w.journal->error().empty()) j["error"] = w.journal->error();
      out[name] = std::move(j);
      continue;
    }
    j = {{"path", w.path},
         {"following", w.follower.fd() >= 0},
         {"lines", w.follower.lines()},
         {"bytes", w.follower.bytes()},
         {"matched", w.matched},
         {"rotations", w.follower.rotations()},
         {"skipped_bytes", w.follower.skipped_bytes()},
         {"writers_from", w.pid_group > 0       ? "line"
                          : w.writers.active() ? "kernel (fanotify)"
                                               : "match"}};
    if (!w.follower.error().empty()) j["error"] = w.follower.error();
    if (!w.writers.error().empty()) j["writer_error"] = w.writers.error();
    out[name] = std::move(j);
  }
  return out;
}

}  // namespace fp
