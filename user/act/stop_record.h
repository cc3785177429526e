// The processes the daemon stops with SIGSTOP outside a throttle's own table:
// kill_tree freezes a tree before it kills it. Each is written down (pid and
// start time) before it is stopped and forgotten once it was killed, so a
// daemon killed in between leaves a record, and the next one continues
// (SIGCONT) every recorded process that is still the same process. (The
// SIGSTOP/SIGCONT throttle keeps its own record: throttles.json.)
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "probe/sample.h"
#include "util/result.h"

namespace fp {

class StopRecord {
 public:
  // The JSON file ({"stopped": [{"tgid": N, "start_ns": N}, ...]}); "" = not
  // persisted (nothing survives a crash then).
  explicit StopRecord(std::string path) : path_(std::move(path)) {}

  // Before the SIGSTOP: the file holds these keys (with the earlier ones) once it returns.
  Result<void> add(const std::vector<ProcKey>& keys);
  // After the SIGKILL (or SIGCONT): nothing of ours is stopped any more.
  void clear();
  const std::vector<ProcKey>& keys() const { return keys_; }

  // At start-up, before anything is stopped: SIGCONT through `send` (which
  // checks the start time: a reused pid is left alone) to every process a
  // predecessor recorded, then an empty record. Returns how many were continued.
  using SendFn = std::function<Result<void>(const ProcKey&, int sig)>;
  size_t continue_recorded(const SendFn& send);

 private:
  std::string path_;
  std::vector<ProcKey> keys_;
};

}  // namespace fp
