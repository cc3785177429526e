// The systemd journal as a [[logwatch]] source (`journal = true`, or a
// directory of journal files such as systemd-journal-remote's): new entries
// from the journal's end, optionally of one unit (`unit`), each with its
// MESSAGE and the writer's _PID. journald takes _PID from the kernel's
// credentials of the logging socket, not from what the process wrote, so a
// local entry's pid is the writer's; an imported journal's _PID is what its
// sender said (the journal-remote case: say so in the rule's match).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

struct sd_journal;

namespace fp {

class JournalFollower {
 public:
  // dir "": the host's own journal (system and services); else a directory
  // of journal files. unit "": every entry; else those of _SYSTEMD_UNIT=unit.
  JournalFollower(std::string dir, std::string unit) : dir_(std::move(dir)), unit_(std::move(unit)) {}
  ~JournalFollower();
  JournalFollower(const JournalFollower&) = delete;
  JournalFollower& operator=(const JournalFollower&) = delete;

  // Calls on_entry(message, pid) for each entry added since the last call,
  // at most `max_entries` (the rest next time). pid 0: the entry has none.
  void read(size_t max_entries, const std::function<void(std::string_view, uint32_t)>& on_entry);
  // "" while following; else why not (no journal on this host, ...).
  const std::string& error() const { return error_; }
  bool following() const { return j_ != nullptr; }
  uint64_t entries() const { return entries_; }

 private:
  bool open();
  void fail(std::string why);

  std::string dir_, unit_;
  sd_journal* j_ = nullptr;
  std::string error_;
  uint64_t entries_ = 0;
  uint64_t attempts_ = 0;
};

}  // namespace fp
