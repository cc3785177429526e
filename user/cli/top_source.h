// Where `faultprobe top` gets its view: the daemon's socket, or the probe
// and a detection engine run inside the CLI when no daemon runs.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "config/config.h"
#include "detect/engine.h"
#include "probe/probe.h"
#include "probe/loader/kernel_error_names.h"
#include "probe/loader/runq_blame.h"
#include "report/view.h"
#include "server/client.h"
#include "util/result.h"

namespace fp {

class TopSource {
 public:
  virtual ~TopSource() = default;
  // The view now. An error is worth showing and retrying, not fatal.
  virtual Result<DaemonView> fetch() = 0;
  // For the header: "daemon /run/faultprobe/faultprobe.sock", "local probe (built-in config)".
  virtual std::string describe() const = 0;
};

// Asks the daemon for its view over the UNIX socket, reconnecting after a failure.
class DaemonSource : public TopSource {
 public:
  // Connects and asks for one view, so that "no daemon" shows up here.
  static Result<std::unique_ptr<DaemonSource>> open(const std::string& path, std::chrono::milliseconds timeout);
  Result<DaemonView> fetch() override;
  std::string describe() const override { return "daemon " + path_; }

 private:
  DaemonSource(std::string path, std::chrono::milliseconds timeout) : path_(std::move(path)), timeout_(timeout) {}
  std::string path_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Client> client_;
};

// Loads the probe and runs the engine on a background thread at the config's
// sample interval, as the daemon does, so faults open (and show in STATE)
// with no daemon. fetch() builds the view under the engine's lock.
class LocalSource : public TopSource {
 public:
  static Result<std::unique_ptr<LocalSource>> start(Config cfg, std::string config_name, bool force_raw_tp);
  ~LocalSource() override;
  Result<DaemonView> fetch() override;
  std::string describe() const override { return "local probe (" + config_name_ + ")"; }

 private:
  // ProcInfoCache behind the engine's interface.
  class Infos : public ProcInfoSource {
   public:
    const ProcInfo& info(const ProcKey& k) override { return cache_.get(k); }
    void prune() { cache_.prune(); }

   private:
    ProcInfoCache cache_;
  };

  LocalSource() = default;
  void run();
  void tick(uint64_t now, EventBatch& events);

  Config cfg_;
  std::string config_name_;
  std::unique_ptr<Probe> probe_;
  HostSampler host_;
  std::string hostname_;

  std::mutex mu_;  // guards everything below
  Infos infos_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<RunqBlameReader> runq_blame_;  // null when the probe does not charge waits per CPU
  ErrorDetectorNames error_detectors_;            // kernel_error's detector names, from the kernel's BTF
  uint64_t ticks_ = 0, last_prune_ns_ = 0, malformed_ = 0;
  std::vector<double> tick_us_;  // the sampler's CPU time of the last ticks (a ring)
  size_t tick_us_next_ = 0;
  uint64_t fetch_ticks_ = 0, fetch_ns_ = 0;  // at the previous fetch (for the achieved rate)

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Picks the source the options ask for. Auto: the daemon if its socket
// answers, else the local probe. Errors carry the exit code to use.
struct SourceError {
  int exit_code;
  std::string message;
};
std::unique_ptr<TopSource> open_top_source(const TopOptions& opts, SourceError* err);

}  // namespace fp
