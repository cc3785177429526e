// Which checkpoint a restore of one service starts from, and what to fall
// back to when a restore brings the fault back.
//
//  - A checkpoint taken while a fault was open on the service's process is
//    suspect: its state may hold the fault. Restores skip it.
//  - A restore whose replacement had the fault again did not hold: the
//    checkpoint it used, and every newer one, were taken while the fault was
//    already developing (before it was detected). The next restore falls back
//    to an older checkpoint: the oldest one kept, the best bet of predating
//    the fault (one step back per retry could walk through every poisoned
//    checkpoint, a recovery window each). If that does not hold either, a
//    clean start (no checkpoint). Past the clean start there is nothing left
//    to fall back to: the handler's ladder goes on.
//  - A restore that held resets the fallback; the marks stay while their
//    checkpoints exist.
//
// Pure logic over a list of checkpoints and their times; the supervisor owns
// one per service and tells it when faults open and close.
#pragma once

#include <deque>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "act/checkpoint.h"

namespace fp {

class RestoreChoice {
 public:
  using Time = std::filesystem::file_time_type;

  enum class Source { Newest, Older, Clean };
  struct Pick {
    std::optional<CheckpointEntry> checkpoint;  // nullopt: a clean start
    Source source = Source::Newest;
    std::string why;  // what was skipped and why, for the action record ("" when nothing was)
  };

  // A fault opened on (or closed on) the service's running process at `now`.
  void fault_open(Time now);
  void fault_closed(Time now);
  bool faulty() const { return open_since_.has_value(); }

  // Taken while a fault was open on the service.
  bool suspect(const CheckpointEntry& c) const;
  // Brought the fault back (itself or an older checkpoint it is newer than).
  bool bad(const CheckpointEntry& c) const { return bad_.count(c.path) != 0; }

  // What a restore would start from now. `oldest_first`: the complete checkpoints.
  Pick choose(const std::vector<CheckpointEntry>& oldest_first) const;
  // The next rung when the restore of `failed` could not even run (criu
  // failed, timed out): the oldest checkpoint to trust that is older than it,
  // as the Older level picks; nullopt: none, a clean start is next.
  std::optional<Pick> older_than(const CheckpointEntry& failed, const std::vector<CheckpointEntry>& oldest_first) const;
  // A restore started from `p` (the next did_not_hold() is about it).
  void used(const Pick& p) { last_ = p; }

  // The last restore brought the fault back. Marks its checkpoint and the
  // newer ones bad and moves to the next fallback; returns what the next
  // restore will start from ("an older checkpoint PATH", "a clean start"), or
  // nullopt when the last restore was already a clean start (or none is known).
  std::optional<std::string> did_not_hold(const std::vector<CheckpointEntry>& oldest_first);
  // The last restore held: the next fault starts again from the newest good checkpoint.
  void held();

  // The suspect or bad checkpoints among `oldest_first`, for status.
  std::vector<std::string> marked(const std::vector<CheckpointEntry>& oldest_first) const;

 private:
  static constexpr size_t kMaxWindows = 64;
  std::deque<std::pair<Time, Time>> windows_;  // closed fault windows, oldest first
  std::optional<Time> open_since_;
  std::set<std::string> bad_;
  Source level_ = Source::Newest;
  std::optional<Pick> last_;
};

const char* restore_source_name(RestoreChoice::Source s);  // "newest", "older", "clean"

}  // namespace fp
