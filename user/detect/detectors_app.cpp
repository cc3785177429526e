// app_errors: a process wrote at least `threshold` lines matching a
// [[logwatch]] rule's pattern to its log file within `window`. The lines
// come from the daemon's LogWatchSet (detect/logwatch.h), each charged to its
// writer as well as that source could tell: the line's own pid, the kernel's
// (fanotify), or, when several processes or none were seen writing, the one
// live writer (or, with no writer known, the one live process) the rule's
// match selects. A line no process can be charged with is counted as
// unattributed in the evidence of the rule's next finding, never guessed.
#include <algorithm>
#include <deque>
#include <map>

#include "detect/detectors.h"
#include "detect/engine.h"
#include "detect/logwatch.h"
#include "detect/threshold.h"

namespace fp {
namespace {

constexpr size_t kLastLines = 3;           // lines kept for the evidence
constexpr size_t kEvidenceLineBytes = 240;  // each cut to this
constexpr size_t kMaxKeptPerProcess = 100'000;  // timestamps per process (a bound, far above any threshold)

struct Seen {
  std::deque<uint64_t> at;      // when each matching line was read, oldest first
  std::deque<std::string> last;  // the last kLastLines lines
  const char* by = "match";
};

class AppErrorsDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    const uint64_t since = w.now_ns > win ? w.now_ns - win : 0;
    if (w.logs != nullptr) {
      for (const LogMatch& m : w.logs->matches(rule_.name)) charge(w, m);
    }
    for (auto it = seen_.begin(); it != seen_.end();) {
      Seen& s = it->second;
      while (!s.at.empty() && s.at.front() < since) s.at.pop_front();
      const ProcState* p = w.procs->find_pid(it->first);
      if (s.at.empty() || p == nullptr || p->exited) {
        it = seen_.erase(it);
        continue;
      }
      const double count = static_cast<double>(s.at.size());
      const Level level = level_of(count, rule_);
      if (level != Level::None && may_accuse(rule_, *p, w)) {
        nlohmann::json ev = rule_evidence(rule_, "matching_lines", count);
        ev["path"] = rule_.logwatch.path;
        ev["pattern"] = rule_.logwatch.pattern;
        ev["writer_from"] = s.by;
        ev["last_lines"] = nlohmann::json::array();
        for (const std::string& l : s.last) ev["last_lines"].push_back(l);
        if (unattributed_ > 0) ev["unattributed_lines"] = unattributed_;
        out.push_back(make_finding(rule_, p->key, level, std::move(ev)));
      }
      ++it;
    }
  }

 private:
  void charge(const World& w, const LogMatch& m) {
    uint32_t pid = m.pid;
    const char* by = log_match_by_name(m.by);
    if (pid == 0) pid = settle(w, m);
    const ProcState* p = pid != 0 ? w.procs->find_pid(pid) : nullptr;
    if (p == nullptr || p->exited) {  // no writer, or one this host's table does not know (a thread id, another namespace)
      unattributed_++;
      return;
    }
    Seen& s = seen_[pid];
    if (s.at.size() >= kMaxKeptPerProcess) s.at.pop_front();
    s.at.push_back(w.now_ns);
    s.last.emplace_back(utf8_prefix_of(m.line));
    if (s.last.size() > kLastLines) s.last.pop_front();
    s.by = by;
  }

  static std::string utf8_prefix_of(const std::string& line) {
    // Cut at a character boundary; the bytes stay raw (every output escapes them).
    size_t n = std::min(line.size(), kEvidenceLineBytes);
    while (n > 0 && n < line.size() && (static_cast<unsigned char>(line[n]) & 0xC0) == 0x80) n--;
    return line.substr(0, n);
  }

  // The writer among several (or, with none known, among all processes) that
  // the rule's match selects, when exactly one does; 0 otherwise.
  uint32_t settle(const World& w, const LogMatch& m) const {
    uint32_t found = 0;
    auto consider = [&](const ProcState& s) {
      if (found == UINT32_MAX || !may_accuse(rule_, s, w)) return;
      found = found == 0 ? s.key.tgid : UINT32_MAX;
    };
    if (!m.writers.empty()) {
      for (uint32_t pid : m.writers)
        if (const ProcState* s = w.procs->find_pid(pid)) consider(*s);
    } else if (!rule_.match.empty()) {
      w.procs->for_each(consider);
    }
    return found == UINT32_MAX ? 0 : found;
  }

  std::map<uint32_t, Seen> seen_;
  uint64_t unattributed_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_app_errors(const RuleConfig& r) { return std::make_unique<AppErrorsDetector>(r); }

}  // namespace fp
