// Throttling a process of a systemd unit through systemd: `systemctl
// set-property --runtime UNIT CPUQuota=... MemoryHigh=... TasksMax=...
// IOReadBandwidthMax=... IOWriteBandwidthMax=...` (for a user unit through
// its user manager, `systemctl --user -M UID@`).
//
// Why not the cgroup backends: systemd owns every cgroup it made. A limit
// written into a unit's cgroup behind its back is lost at the next
// daemon-reload (systemd recomputes the slice's cgroup.subtree_control and
// drops +cpu), and a child group in a unit without Delegate= is as fragile.
// A property systemd holds survives reloads; --runtime keeps it to this
// boot. The limit is unit-wide: it also holds the unit's other processes.
//
// Mapping of ThrottleLimits (the v2 backend's files, as systemd writes them):
//   cpu_share    -> CPUQuota=N%                  (cpu.max)
//   memory_bytes -> MemoryHigh=BYTES             (memory.high; MemoryMax, the OOM line, is not
//                                                 touched: a throttle reclaims, it does not kill)
//   io_bps       -> IOReadBandwidthMax= and IOWriteBandwidthMax=/dev/block/MAJ:MIN BPS per device
//   pids         -> TasksMax=N                   (pids.max)
// Every limit ThrottleLimits holds can be expressed.
//
// Before the first write the unit's values are read (`systemctl show`) and
// kept, with how to put each back, in a JSON state file (written before the
// set-property, so a crash in between still leaves the way back on record);
// release writes them back: CPUQuota= (empty) where there was none, the old
// value otherwise. Two throttled processes in one unit share the values from
// before the first; the last release restores them.
//
// Thread-safe: the blocking calls (apply, release) run on the action worker
// while the loop asks throttled().
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "act/systemd.h"
#include "config/config.h"
#include "probe/sample.h"
#include "util/result.h"

namespace fp {

struct UnitThrottleEntry {
  ProcKey key;
  std::string unit;
  std::optional<uint32_t> user;  // a unit of this uid's user manager
  ThrottleLimits limits;
  std::vector<std::string> applied;  // the assignments written
  // Per property as `systemctl show` names it ("CPUQuotaPerSecUSec"): the
  // assignments that put back what was there before any throttle of ours.
  std::map<std::string, std::vector<std::string>> restore;
  bool operator==(const UnitThrottleEntry&) const = default;
};

class UnitThrottle {
 public:
  // state_path "" = not persisted; io_devices: the "MAJ:MIN" an io limit is for.
  UnitThrottle(SystemdControl& systemd, std::string state_path, std::vector<std::string> io_devices);

  // The set-property assignments for l.
  static std::vector<std::string> assignments(const ThrottleLimits& l, const std::vector<std::string>& io_devices);
  // The `systemctl show` properties l's assignments change.
  static std::vector<std::string> properties_for(const ThrottleLimits& l);
  // How to put back one property from what `show` printed for it (no line:
  // unset). EINVAL for a value that cannot be read back.
  static Result<std::vector<std::string>> restore_of(const std::string& property,
                                                     const std::vector<std::string>& shown);

  // Loop side. throttled: applied, or claimed by a queued apply.
  bool throttled(const ProcKey& k) const;
  std::vector<ProcKey> keys() const;
  std::optional<UnitThrottleEntry> entry(const ProcKey& k) const;
  // Marks k throttled before its apply runs, so an unthrottle in between is
  // queued behind it instead of skipped.
  void claim(const ProcKey& k);
  // A claimed apply that will not run (refused by the worker, or cancelled).
  void unclaim(const ProcKey& k);
  const std::vector<std::string>& io_devices() const { return io_devices_; }

  // Blocking (the worker): reads what it replaces, records it, sets l. On a
  // failure nothing of it is left on record (or in the unit).
  Result<std::string> apply(const ProcKey& k, const std::string& unit, std::optional<uint32_t> user,
                            const ThrottleLimits& l);
  // Writes back what was there (the last throttle of its unit), forgets k.
  Result<std::string> release(const ProcKey& k);

 private:
  // Loads the state file (a malformed one is logged and left as it is).
  void load();
  void save_locked() const;
  // The restore map of another entry of the same unit, if any.
  const UnitThrottleEntry* sibling_locked(const UnitThrottleEntry& e) const;

  SystemdControl& systemd_;
  std::string state_path_;
  std::vector<std::string> io_devices_;
  mutable std::mutex mu_;
  std::map<ProcKey, UnitThrottleEntry> entries_;
  std::set<ProcKey> claimed_;
};

}  // namespace fp
