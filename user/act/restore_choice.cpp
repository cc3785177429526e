#include "act/restore_choice.h"

#include <algorithm>

namespace fp {

const char* restore_source_name(RestoreChoice::Source s) {
  switch (s) {
    case RestoreChoice::Source::Newest: return "newest";
    case RestoreChoice::Source::Older: return "older";
    case RestoreChoice::Source::Clean: return "clean";
  }
  return "unknown";
}

void RestoreChoice::fault_open(Time now) {
  if (!open_since_) open_since_ = now;
}

void RestoreChoice::fault_closed(Time now) {
  if (!open_since_) return;
  windows_.emplace_back(*open_since_, now);
  open_since_.reset();
  while (windows_.size() > kMaxWindows) windows_.pop_front();
}

bool RestoreChoice::suspect(const CheckpointEntry& c) const {
  if (open_since_ && c.time >= *open_since_) return true;
  return std::any_of(windows_.begin(), windows_.end(),
                     [&](const auto& w) { return c.time >= w.first && c.time <= w.second; });
}

RestoreChoice::Pick RestoreChoice::choose(const std::vector<CheckpointEntry>& oldest_first) const {
  Pick p;
  p.source = level_;
  size_t suspects = 0, bads = 0;
  for (const auto& c : oldest_first) {
    if (bad(c))
      ++bads;
    else if (suspect(c))
      ++suspects;
  }
  auto skipped = [&] {
    std::string s;
    if (suspects) s += std::to_string(suspects) + " suspect (taken while a fault was open)";
    if (bads) s += std::string(s.empty() ? "" : ", ") + std::to_string(bads) + " that brought the fault back";
    return s.empty() ? s : "skipped " + s;
  };
  auto eligible = [&](const CheckpointEntry& c) { return !bad(c) && !suspect(c); };

  if (level_ == Source::Newest) {
    auto it = std::find_if(oldest_first.rbegin(), oldest_first.rend(), eligible);
    if (it != oldest_first.rend()) {
      p.checkpoint = *it;
      p.why = skipped();
      return p;
    }
    p.source = Source::Clean;
    p.why = oldest_first.empty() ? "no complete checkpoint" : "no checkpoint left to trust: " + skipped();
    return p;
  }
  if (level_ == Source::Older) {
    const bool have_ref = last_ && last_->checkpoint;
    auto it = std::find_if(oldest_first.begin(), oldest_first.end(), [&](const CheckpointEntry& c) {
      return eligible(c) && (!have_ref || c.time < last_->checkpoint->time);
    });
    if (it != oldest_first.end()) {
      p.checkpoint = *it;
      p.why = "the newer ones brought the fault back";
      return p;
    }
    p.source = Source::Clean;
    p.why = "no older checkpoint left to trust";
    return p;
  }
  p.why = "the older checkpoint brought the fault back too";
  return p;
}

std::optional<RestoreChoice::Pick> RestoreChoice::older_than(const CheckpointEntry& failed,
                                                           const std::vector<CheckpointEntry>& oldest_first) const {
  // Oldest first: the first to trust before `failed` in the list.
  for (const auto& c : oldest_first) {
    if (c.path == failed.path || c.time > failed.time) break;
    if (!bad(c) && !suspect(c)) return Pick{c, Source::Older, "the restore of " + failed.path + " failed"};
  }
  return std::nullopt;
}

std::optional<std::string> RestoreChoice::did_not_hold(const std::vector<CheckpointEntry>& oldest_first) {
  if (!last_) return std::nullopt;
  const Pick last = *last_;
  last_.reset();
  if (!last.checkpoint) {
    level_ = Source::Clean;
    return std::nullopt;  // a clean start had the fault too: nothing older than that
  }
  bad_.insert(last.checkpoint->path);
  for (const auto& c : oldest_first)
    if (c.time >= last.checkpoint->time) bad_.insert(c.path);
  level_ = last.source == Source::Newest ? Source::Older : Source::Clean;
  Pick next = choose(oldest_first);
  if (next.checkpoint) return "an older checkpoint, " + next.checkpoint->path;
  return "a clean start (" + next.why + ")";
}

void RestoreChoice::held() {
  level_ = Source::Newest;
  last_.reset();
}

std::vector<std::string> RestoreChoice::marked(const std::vector<CheckpointEntry>& oldest_first) const {
  std::vector<std::string> out;
  for (const auto& c : oldest_first)
    if (bad(c) || suspect(c)) out.push_back(c.path);
  return out;
}

}  // namespace fp
