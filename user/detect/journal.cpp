#include "detect/journal.h"

#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstring>

#include "detect/logwatch.h"
#include "util/text.h"

namespace fp {
namespace {

constexpr uint64_t kRetryEvery = 50;  // reads (5 s at the default interval) between attempts to open

bool is_dir(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// The value of a "FIELD=value" datum of the current entry, "" when absent.
std::string_view field(sd_journal* j, const char* name) {
  const void* data = nullptr;
  size_t len = 0;
  if (sd_journal_get_data(j, name, &data, &len) < 0 || data == nullptr) return {};
  std::string_view d(static_cast<const char*>(data), len);
  const size_t eq = d.find('=');
  return eq == std::string_view::npos ? std::string_view{} : d.substr(eq + 1);
}

}  // namespace

JournalFollower::~JournalFollower() {
  if (j_ != nullptr) sd_journal_close(j_);
}

void JournalFollower::fail(std::string why) {
  if (why != error_) {
    spdlog::warn("logwatch: journal{}{}: {}", dir_.empty() ? "" : " " + display_text(dir_),
                 unit_.empty() ? "" : " of " + display_text(unit_), why);
    error_ = std::move(why);
  }
}

bool JournalFollower::open() {
  if (dir_.empty() && !is_dir("/run/log/journal") && !is_dir("/var/log/journal")) {
    fail("no systemd journal on this host (neither /run/log/journal nor /var/log/journal): `journal = true` sees "
         "nothing; log to a file and set `path` instead");
    return false;
  }
  if (!dir_.empty() && !is_dir(dir_.c_str())) {
    fail("the journal directory does not exist or is not a directory");
    return false;
  }
  sd_journal* j = nullptr;
  int r = dir_.empty() ? sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM)
                       : sd_journal_open_directory(&j, dir_.c_str(), 0);
  if (r < 0) {
    fail(std::string("cannot open the journal: ") + std::strerror(-r));
    return false;
  }
  // MESSAGE longer than a line is cut, as a file's lines are.
  sd_journal_set_data_threshold(j, kMaxLineBytes + sizeof("MESSAGE="));
  if (!unit_.empty()) {
    const std::string match = "_SYSTEMD_UNIT=" + unit_;
    if ((r = sd_journal_add_match(j, match.data(), match.size())) < 0) {
      sd_journal_close(j);
      fail(std::string("cannot match the unit: ") + std::strerror(-r));
      return false;
    }
  }
  // The inotify watch that sd_journal_process() reads: entries appended
  // after this are seen without reopening.
  if ((r = sd_journal_get_fd(j)) < 0) spdlog::debug("logwatch: journal: no inotify fd: {}", std::strerror(-r));
  // From the end: what was logged before the daemon looked is history.
  if ((r = sd_journal_seek_tail(j)) < 0) {
    sd_journal_close(j);
    fail(std::string("cannot seek to the journal's end: ") + std::strerror(-r));
    return false;
  }
  sd_journal_previous(j);
  j_ = j;
  if (!error_.empty()) spdlog::info("logwatch: journal: following again");
  error_.clear();
  return true;
}

void JournalFollower::read(size_t max_entries, const std::function<void(std::string_view, uint32_t)>& on_entry) {
  if (j_ == nullptr) {
    if (attempts_++ % kRetryEvery != 0 || !open()) return;
  }
  sd_journal_process(j_);
  for (size_t n = 0; n < max_entries; n++) {
    const int r = sd_journal_next(j_);
    if (r < 0) {
      fail(std::string("cannot read the journal: ") + std::strerror(-r));
      return;
    }
    if (r == 0) return;
    entries_++;
    const std::string_view pid_text = field(j_, "_PID");
    uint32_t pid = 0;
    auto [end, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
    if (ec != std::errc() || end != pid_text.data() + pid_text.size()) pid = 0;
    const std::string_view msg = field(j_, "MESSAGE");
    on_entry(msg.substr(0, kMaxLineBytes), pid);
  }
}

}  // namespace fp
