// Hardware detectors: hw_mce, hw_memory_error, hw_pcie_error, hw_disk_error
// (probe events), hw_thermal (thermal zone events and hwmon temperatures),
// hw_voltage (hwmon voltages). The culprit of a hardware fault is the device
// (Finding::subject, evidence.device), not a process: culprit {0, 0}; the
// processes it hurt are the victims.
//
// Events are graded by the decoder (probe/hw_decode.cpp):
//  - uncorrected: critical at once (one fault per device, kept open while
//    more come, resolved after the rule's clear time without any);
//  - corrected: counted per device over rule.window; `count` (or threshold
//    when count is 0) of them in the window open a warning -- a burst of
//    corrected errors is a leading indicator.
#include <algorithm>
#include <csignal>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <string>

#include "detect/detectors.h"
#include "detect/rate_window.h"
#include "probe/hwmon.h"

namespace fp {
namespace {

constexpr size_t kMaxDevices = 1024;
constexpr size_t kMaxVictims = 64;
constexpr int kBusMceErrAr = 4, kBusMceErrAo = 5;  // si_code of a SIGBUS for poisoned memory

uint64_t ns_of(std::chrono::nanoseconds d) { return d.count() > 0 ? static_cast<uint64_t>(d.count()) : 0; }

HwEvent::Source source_of(FaultClass c) {
  switch (c) {
    case FaultClass::HwMemoryError: return HwEvent::Source::Memory;
    case FaultClass::HwPcieError: return HwEvent::Source::Pcie;
    case FaultClass::HwDiskError: return HwEvent::Source::Disk;
    case FaultClass::HwThermal: return HwEvent::Source::Thermal;
    default: return HwEvent::Source::Mce;
  }
}

struct Victims {
  std::vector<ProcKey> keys;
  void add(const ProcKey& k) {
    if (k.tgid == 0 || std::find(keys.begin(), keys.end(), k) != keys.end()) return;
    if (keys.size() >= kMaxVictims) keys.erase(keys.begin());
    keys.push_back(k);
  }
  void fill(Finding& f) const {
    f.victim_keys = keys;
    for (const ProcKey& k : keys) f.victims.push_back(k.tgid);
  }
};

Finding hw_finding(const std::string& subject) {
  Finding f;
  f.culprit = ProcKey{};
  f.subject = subject;
  f.strong = true;
  f.immediate = true;
  return f;
}

// ---- event classes: mce, memory, pcie, disk --------------------------------

class HwEventDetector : public Detector {
 public:
  explicit HwEventDetector(const RuleConfig& r) : rule_(r), src_(source_of(r.cls)) {}
  const RuleConfig& rule() const override { return rule_; }

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t window = std::max<uint64_t>(ns_of(rule_.window), 1);
    const uint64_t needed = rule_.count > 0 ? rule_.count : static_cast<uint64_t>(std::max(1.0, rule_.threshold));
    if (w.events != nullptr) {
      // Poisoned memory: the kernel signals every process that maps the page.
      if (src_ == HwEvent::Source::Mce || src_ == HwEvent::Source::Memory)
        for (const SignalRecord& s : w.events->signals)
          if (s.sig == SIGBUS && (s.code == kBusMceErrAr || s.code == kBusMceErrAo))
            poisoned_.push_back({w.now_ns, s.target});
      for (const HwEvent& e : w.events->hw) {
        if (e.source != src_ || e.grade == HwEvent::Grade::Info) continue;
        auto it = devices_.find(e.device);
        if (it == devices_.end()) {
          if (devices_.size() >= kMaxDevices) continue;  // a storm of distinct devices: bounded memory
          it = devices_.emplace(e.device, Device{}).first;
        }
        Device& d = it->second;
        d.last_ns = w.now_ns;
        d.last = e.fields;
        d.victims.add(e.proc);
        if (e.grade == HwEvent::Grade::Uncorrected) {
          d.uncorrected += e.count;
          Finding f = hw_finding(e.device + "#uncorrected");
          f.severity = Severity::Critical;
          f.evidence = evidence(e.device, e.fields);
          f.evidence["uncorrected"] = true;
          f.evidence["errors"] = d.uncorrected;
          Victims v = d.victims;
          add_poisoned(v, w.now_ns, window);
          v.fill(f);
          out.push_back(std::move(f));
        } else {
          d.corrected.add(w.now_ns, e.count);
        }
      }
    }
    while (!poisoned_.empty() && poisoned_.front().first + window < w.now_ns) poisoned_.pop_front();
    for (auto it = devices_.begin(); it != devices_.end();) {
      Device& d = it->second;
      const uint64_t n = d.corrected.count(w.now_ns, window);
      if (n >= needed) {
        Finding f = hw_finding(it->first);
        f.evidence = evidence(it->first, d.last);
        f.evidence["uncorrected"] = false;
        f.evidence["corrected_in_window"] = n;
        f.evidence["window_s"] = double(window) / 1e9;
        f.evidence["burst_threshold"] = needed;
        Victims v = d.victims;
        add_poisoned(v, w.now_ns, window);
        v.fill(f);
        out.push_back(std::move(f));
      }
      if (d.corrected.empty() && d.last_ns + window < w.now_ns)
        it = devices_.erase(it);
      else
        ++it;
    }
  }

 private:
  struct Device {
    RateWindow corrected;
    uint64_t uncorrected = 0;
    uint64_t last_ns = 0;
    nlohmann::json last = nlohmann::json::object();
    Victims victims;
  };
  static nlohmann::json evidence(const std::string& device, const nlohmann::json& fields) {
    nlohmann::json ev = fields;
    ev["device"] = device;
    return ev;
  }
  void add_poisoned(Victims& v, uint64_t now, uint64_t window) const {
    for (const auto& [ts, k] : poisoned_)
      if (ts + window >= now) v.add(k);
  }

  RuleConfig rule_;
  HwEvent::Source src_;
  std::map<std::string, Device> devices_;
  std::deque<std::pair<uint64_t, ProcKey>> poisoned_;
};

// ---- sensors: hwmon limits (thermal, voltage) and thermal zones ------------

class HwSensorDetector : public Detector {
 public:
  explicit HwSensorDetector(const RuleConfig& r)
      : rule_(r),
        kind_(r.cls == FaultClass::HwVoltage ? SensorReading::Kind::Voltage : SensorReading::Kind::Temperature) {}
  const RuleConfig& rule() const override { return rule_; }

  void evaluate(const World& w, std::vector<Finding>& out) override {
    if (w.events != nullptr) {
      if (w.events->sensors_scanned) rescan(w.events->sensors);
      if (rule_.cls == FaultClass::HwThermal) zone_events(w, out);
    }
    // A limit crossed at the last scan holds until the next scan says otherwise.
    for (const auto& [sensor, v] : crossed_) {
      Finding f = hw_finding(sensor);
      f.immediate = false;  // the rule's `for` applies
      f.severity = v.critical ? Severity::Critical : Severity::Warning;
      f.evidence = v.evidence;
      out.push_back(std::move(f));
    }
    // Thermal zones above the rule's threshold (degrees C), hysteresis down to `resolve`.
    for (const auto& [zone, z] : zones_) {
      const bool strong = z.temp_c >= rule_.threshold;
      if (!strong && z.temp_c < rule_.resolve) continue;
      Finding f = hw_finding(zone);
      f.immediate = false;
      f.strong = strong;
      f.evidence = z.evidence;
      f.evidence["threshold_c"] = rule_.threshold;
      out.push_back(std::move(f));
    }
  }

 private:
  struct Crossed {
    bool critical = false;
    nlohmann::json evidence;
  };
  struct Zone {
    double temp_c = 0;
    nlohmann::json evidence;
  };

  void rescan(const std::vector<SensorReading>& readings) {
    crossed_.clear();  // a sensor that vanished or read garbage no longer holds a fault open
    for (const SensorReading& r : readings) {
      if (r.kind != kind_) continue;
      auto c = limit_crossed(r);
      if (!c) continue;
      Crossed x;
      x.critical = c->critical;
      nlohmann::json& ev = x.evidence;
      ev["device"] = r.sensor;
      ev["sensor"] = r.sensor;
      ev["label"] = r.label;
      ev["path"] = r.path;
      ev["value"] = r.value;
      ev["unit"] = kind_ == SensorReading::Kind::Voltage ? "V" : "C";
      ev["limit"] = c->limit;
      ev["limit_value"] = c->limit_value;
      ev["source"] = "hwmon";
      crossed_[r.sensor] = std::move(x);
    }
  }

  void zone_events(const World& w, std::vector<Finding>& out) {
    for (const HwEvent& e : w.events->hw) {
      if (e.source != HwEvent::Source::Thermal) continue;
      if (e.grade == HwEvent::Grade::Info) {
        if (!e.fields.contains("temp_c")) continue;
        if (zones_.size() >= kMaxDevices && zones_.count(e.device) == 0) continue;
        Zone& z = zones_[e.device];
        z.temp_c = e.fields["temp_c"].get<double>();
        z.evidence = e.fields;
        z.evidence["device"] = e.device;
        z.evidence["source"] = "thermal_zone";
        continue;
      }
      // A trip point crossed: hot/critical ones are critical at once.
      Finding f = hw_finding(e.device + "#trip");
      f.severity = e.grade == HwEvent::Grade::Uncorrected ? Severity::Critical : Severity::Warning;
      f.evidence = e.fields;
      f.evidence["device"] = e.device;
      f.evidence["source"] = "thermal_trip";
      out.push_back(std::move(f));
    }
  }

  RuleConfig rule_;
  SensorReading::Kind kind_;
  std::map<std::string, Crossed> crossed_;
  std::map<std::string, Zone> zones_;
};

}  // namespace

std::unique_ptr<Detector> make_hw_event(const RuleConfig& r) { return std::make_unique<HwEventDetector>(r); }
std::unique_ptr<Detector> make_hw_sensor(const RuleConfig& r) { return std::make_unique<HwSensorDetector>(r); }

}  // namespace fp
