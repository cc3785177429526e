// The daemon's sampling loop: probe -> engine -> event stream.
#pragma once

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "config/config.h"
#include "detect/detector.h"
#include "detect/engine.h"
#include "probe/probe.h"
#include "procinfo.h"

namespace fp {

// ProcInfoCache behind the detectors' interface.
class CachedProcInfo : public ProcInfoSource {
 public:
  const ProcInfo& info(const ProcKey& k) override { return cache_.get(k); }
  void prune() { cache_.prune(); }

 private:
  ProcInfoCache cache_;
};

struct ServiceOptions {
  std::string config_path;       // "" = built-in defaults
  std::string events_json;       // "" = none, "-" = stdout, else a file appended to
  bool dry_run = false;
  bool force_raw_tp = false;
  std::string pin_dir;           // bpffs dir the probe is pinned in / taken over from ("" = none)
};

class Service {
 public:
  // Loads the config and the probe. Errors: config (exit 2) or probe (exit 1).
  static Result<std::unique_ptr<Service>> create(const ServiceOptions& opts, int* exit_code);
  ~Service();

  // Runs until `stop` is set. `reload` set by SIGHUP is consumed here.
  int run(std::atomic<bool>& stop, std::atomic<bool>& reload);

 private:
  Service() = default;
  void tick(uint64_t now);
  void emit(const FaultRecord& r);
  void do_reload();

  ServiceOptions opts_;
  Config config_;
  std::unique_ptr<Probe> probe_;
  CachedProcInfo infos_;
  std::unique_ptr<Engine> engine_;
  EventBatch events_;
  std::vector<const fp_proc*> changed_;
  FILE* events_out_ = nullptr;
  bool own_events_out_ = false;
  uint64_t ticks_ = 0, faults_ = 0, last_prune_ns_ = 0, last_health_ns_ = 0;
};

}  // namespace fp
