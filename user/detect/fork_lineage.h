// Fork lineage for fork_bomb: which processes are replicas of which, across
// reparenting, so a bomb whose generations reparent to init is one group.
//
// A child that has not exec'd since its fork runs its parent's program: it is
// a *replica* and joins its parent's *family* (the replicas descending from
// one origin, the process that exec'd last). The probe records the parent at
// fork (fp_proc.ppid is never updated), and the ledger keeps exited members a
// while, so a generation whose parent has exited and was reparented still
// joins the family. A child that exec'd is a *spawn* (a shell loop running
// /bin/true, make running the compiler): counted on its parent, so spawning
// is never taken for self-replication.
//
// Only processes that forked, and replicas of those, get an entry: a host's
// idle processes cost nothing here.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "detect/process_table.h"

namespace fp {

class ForkLineage {
 public:
  struct Entry {
    ProcKey key;
    ProcKey parent;            // {0, 0}: not known to the ledger
    ProcKey family;            // the origin of its family (itself for an origin)
    uint32_t gen = 0;          // replica generations below the family's origin
    uint64_t exited_ns = 0;    // 0: alive
    bool exec_seen = false;    // exec'd since its fork: an origin
    bool qualified = false;    // forked fast enough to belong to a forking tree (fork_bomb's ancestor rule)
    bool in_group = false;     // qualified, or a replica descendant of a qualified process
  };

  // The live part of a family that takes part in its forking: the processes
  // that qualified and their replica descendants (not the launchers above
  // them: the shell that started a bomb).
  struct Group {
    std::vector<const Entry*> live;  // oldest first
    uint32_t generations = 0;        // its lineage's depth: generations from its first qualified member down
    uint64_t last_birth_ns = 0;      // start of its youngest member
  };

  // `keep_ns`: how long exited entries and spawn times are kept (the rule's
  // window, at least 2 s: a child may be seen a tick after its parent's exit).
  explicit ForkLineage(uint64_t keep_ns) : keep_ns_(keep_ns) {}

  // A process the table recorded at this tick (new, changed or exited).
  // Within one tick call it in start order: parents before children.
  void observe(const ProcState& s, uint64_t now_ns);
  // Forgets what no window needs any more; marks the processes the table
  // removed as exited. Once per tick, before observe().
  void expire(const std::vector<ProcKey>& removed, uint64_t now_ns);

  // Children of `parent` born at or after `since_ns` that exec'd.
  uint64_t spawns_since(const ProcKey& parent, uint64_t since_ns) const;
  // Marks a process as a member of a forking tree (its replica descendants join the group).
  void qualify(const ProcKey& k, uint64_t now_ns);

  const Entry* find(const ProcKey& k) const;
  // Whether a process is in its family's group (qualified, or below a qualified one).
  bool member(const ProcKey& k);
  // The family of a process (itself when it has no entry).
  ProcKey family_of(const ProcKey& k) const;
  // The families that had a group member born or qualified in the last `within_ns`.
  std::vector<ProcKey> active_families(uint64_t now_ns, uint64_t within_ns) const;
  // Replicas born into the family per second over `window_ns` (over the
  // family's life when it is younger, but no less than `min_span_ns`): its
  // self-replication, whether or not the parents are still there to count.
  double birth_rate(const ProcKey& family, uint64_t now_ns, uint64_t window_ns, uint64_t min_span_ns) const;
  // The family's group now.
  Group group_of(const ProcKey& family);

  size_t size() const { return entries_.size(); }

 private:
  const Entry* parent_of(const ProcState& s) const;
  void add_spawn(const ProcKey& parent, const ProcKey& child);
  // Whether a member descends from a qualified process (resolved lazily, cached when true).
  bool resolve_in_group(Entry& e);
  void erase(const ProcKey& k);

  uint64_t keep_ns_;
  std::unordered_map<ProcKey, Entry, ProcKeyHash> entries_;
  std::unordered_map<uint32_t, ProcKey> by_pid_;  // the newest entry of a pid
  struct Family {
    std::unordered_set<ProcKey, ProcKeyHash> members;  // entries (live or kept exited) of the family
    std::vector<uint64_t> births;  // replicas' start times, sorted, kept keep_ns
    uint64_t since_ns = 0;         // its origin's start
    uint64_t active_ns = 0;        // last group member birth or qualification (0: none)
    uint32_t max_gen = 0;          // the deepest replica generation seen
    uint32_t min_qualified_gen = UINT32_MAX;  // the highest generation that qualified
  };
  Family& family(const ProcKey& origin);
  std::unordered_map<ProcKey, Family, ProcKeyHash> families_;
  // Per parent: the spawns' (start_ns, tgid), in start order.
  std::unordered_map<ProcKey, std::vector<std::pair<uint64_t, uint32_t>>, ProcKeyHash> spawns_;
  std::deque<std::pair<uint64_t, ProcKey>> exited_;  // (exit time, key) in time order
  uint64_t next_trim_ns_ = 0;
};

}  // namespace fp
