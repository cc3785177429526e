// Network rules, per process: TCP retransmits (net_retransmits), failed
// connects (net_connect_failures) and packets dropped with a reason
// (net_drops), charged by the probe to the process that owns the socket
// (bpf/net.bpf.c), so the culprit is that process. The evidence names the
// remote endpoints that account for most of it, and net_drops the kernel's
// drop reasons.
#include <cinttypes>
#include <cstdio>
#include <functional>
#include <map>

#include "detect/detectors.h"
#include "detect/net_drop_reasons.h"
#include "detect/net_endpoints.h"
#include "detect/threshold.h"
#include "util/text.h"

namespace fp {
namespace {

constexpr size_t kTopEndpoints = 3;
constexpr size_t kTopDropReasons = 3;
// Reading the probe's endpoint (or drop reason) map walks it (up to 4096
// entries): a process with a finding has its entries read at most once a
// second, not at every tick its window moves.
constexpr uint64_t kEndpointsEveryNs = 1'000'000'000;

// What one of the probe's per-process maps says about a process with a
// finding (an array, most first), read at most every kEndpointsEveryNs.
class EvidenceCache {
 public:
  // The array for one process; empty without a source or when it cannot be read.
  using Reader = std::function<nlohmann::json(const World&, const ProcKey&)>;
  explicit EvidenceCache(Reader read) : read_(std::move(read)) {}
  nlohmann::json get(const World& w, const ProcState& s) {
    Entry& e = cache_[s.key];
    if (e.read_ns == 0 || w.now_ns - e.read_ns >= kEndpointsEveryNs) {
      e.top = read_(w, s.key);
      e.read_ns = w.now_ns;
    }
    e.used_ns = w.now_ns;
    return e.top;
  }
  // Forgets processes whose endpoints nobody asked for lately.
  void prune(uint64_t now_ns) {
    std::erase_if(cache_, [&](const auto& kv) { return now_ns - kv.second.used_ns > 10 * kEndpointsEveryNs; });
  }

 private:
  struct Entry {
    uint64_t read_ns = 0, used_ns = 0;
    nlohmann::json top;
  };
  Reader read_;
  std::map<ProcKey, Entry> cache_;
};

// The endpoints with the most `what`.
EvidenceCache::Reader endpoints_by(NetMetric what) {
  return [what](const World& w, const ProcKey& k) {
    std::vector<NetEndpoint> eps;
    if (w.net_endpoints == nullptr || !w.net_endpoints->read(k, eps)) return nlohmann::json::array();
    return top_endpoints(eps, what, kTopEndpoints);
  };
}

// The drop reasons with the most drops.
nlohmann::json top_reasons_of(const World& w, const ProcKey& k) {
  std::vector<NetDropReason> reasons;
  if (w.net_drop_reasons == nullptr || !w.net_drop_reasons->read(k, reasons)) return nlohmann::json::array();
  return top_drop_reasons(reasons, kTopDropReasons);
}

// "pid 812 postgres: 40 % of segments to 10.0.0.7:5432 retransmitted": the
// comm made printable (it is the process's to choose).
std::string pid_comm(const ProcState& s) {
  return "pid " + std::to_string(s.key.tgid) + " " + display_text(s.comm);
}

std::string percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, share < 0.1 ? "%.1f" : "%.0f", share * 100.0);
  return buf;
}

// Metric: TCP packets retransmitted per second over the window, with at
// least `count` of them and at least `min_share` of the segments sent.
class NetRetransmitsDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    cache_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Finding> f;
      const Metrics& m = d.delta;
      if (m.net_retransmits == 0 || m.net_retransmits < rule_.count) return f;
      const double rate = per_sec(m.net_retransmits, d.span_ns);
      const double share = m.net_segs_out ? std::min(1.0, double(m.net_retransmits) / double(m.net_segs_out)) : 1.0;
      Level level = level_of(rate, rule_);
      if (level == Level::None) return f;
      // Below the share: a busy sender's ordinary losses; an open fault stays open on the rate alone.
      if (share < rule_.min_share && level == Level::Strong) level = Level::Weak;
      if (share < rule_.min_share / 2) return f;
      if (!may_accuse(rule_, s, w)) return f;
      nlohmann::json ev = rule_evidence(rule_, "retransmits_per_s", rate);
      ev["retransmits"] = m.net_retransmits;
      ev["segments_out"] = m.net_segs_out;
      ev["retransmit_share"] = round4(share);
      ev["min_share"] = rule_.min_share;
      ev["min_retransmits"] = rule_.count;
      ev["resets_sent"] = m.net_resets_sent;
      ev["resets_received"] = m.net_resets_received;
      nlohmann::json eps = endpoints_.get(w, s);
      std::string summary = pid_comm(s) + ": " + percent(share) + " % of segments";
      if (!eps.empty()) {
        const nlohmann::json& top = eps[0];
        if (top.contains("retransmit_share"))
          summary = pid_comm(s) + ": " + percent(top["retransmit_share"].get<double>()) + " % of segments to " +
                    top["endpoint"].get<std::string>();
        else
          summary += " (most to " + top["endpoint"].get<std::string>() + ")";
      }
      ev["endpoints"] = std::move(eps);
      ev["summary"] = summary + " retransmitted";
      f = make_finding(rule_, s.key, level, std::move(ev));
      return f;
    });
    cache_.emit(out);
    endpoints_.prune(w.now_ns);
  }

 private:
  FindingCache cache_;
  EvidenceCache endpoints_{endpoints_by(NetMetric::Retransmits)};
};

// Metric: failed TCP connects (SYN_SENT -> CLOSE with an error: refused,
// timed out, unreachable) per second over the window, at least `count` of them.
class NetConnectFailuresDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    cache_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Finding> f;
      const Metrics& m = d.delta;
      if (m.net_connect_failures == 0 || m.net_connect_failures < rule_.count) return f;
      const double rate = per_sec(m.net_connect_failures, d.span_ns);
      Level level = level_of(rate, rule_);
      if (level == Level::None || !may_accuse(rule_, s, w)) return f;
      nlohmann::json ev = rule_evidence(rule_, "connect_failures_per_s", rate);
      ev["connect_failures"] = m.net_connect_failures;
      ev["connects"] = m.net_connects;
      if (m.net_connects > 0)
        ev["failure_share"] = round4(std::min(1.0, double(m.net_connect_failures) / double(m.net_connects)));
      ev["min_failures"] = rule_.count;
      ev["resets_received"] = m.net_resets_received;
      nlohmann::json eps = endpoints_.get(w, s);
      char buf[160];
      std::snprintf(buf, sizeof buf, "%" PRIu64 " failed connects in %.0f s", m.net_connect_failures,
                    double(d.span_ns) / kNsPerSec);
      std::string summary = pid_comm(s) + ": " + buf;
      if (!eps.empty()) {
        summary += ", most to " + eps[0]["endpoint"].get<std::string>();
        if (eps[0].contains("last_error")) summary += " (" + eps[0]["last_error"].get<std::string>() + ")";
      }
      ev["endpoints"] = std::move(eps);
      ev["summary"] = std::move(summary);
      f = make_finding(rule_, s.key, level, std::move(ev));
      return f;
    });
    cache_.emit(out);
    endpoints_.prune(w.now_ns);
  }

 private:
  FindingCache cache_;
  EvidenceCache endpoints_{endpoints_by(NetMetric::ConnectFailures)};
};

// Metric: packets dropped per second over the window on the process's
// sockets with a kernel drop reason (skb:kfree_skb; a neighbour that never
// resolves, a full receive buffer, a firewall), at least `count` of them.
// The evidence names the reasons as the kernel does, with how many each
// (counted since the probe first saw one for the process), and the peers
// the drops went to where the probe keeps them.
class NetDropsDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    cache_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Finding> f;
      const Metrics& m = d.delta;
      if (m.net_drops == 0 || m.net_drops < rule_.count) return f;
      const double rate = per_sec(m.net_drops, d.span_ns);
      Level level = level_of(rate, rule_);
      if (level == Level::None || !may_accuse(rule_, s, w)) return f;
      nlohmann::json ev = rule_evidence(rule_, "drops_per_s", rate);
      ev["drops"] = m.net_drops;
      ev["min_drops"] = rule_.count;
      ev["rcvq_overflows"] = m.net_rcvq_overflows;
      nlohmann::json reasons = reasons_.get(w, s);
      nlohmann::json eps = endpoints_.get(w, s);
      char buf[160];
      std::snprintf(buf, sizeof buf, "%" PRIu64 " packets dropped in %.0f s", m.net_drops,
                    double(d.span_ns) / kNsPerSec);
      std::string summary = pid_comm(s) + ": " + buf;
      if (!reasons.empty()) {
        summary += ", most " + reasons[0]["reason"].get<std::string>();
        if (reasons.size() > 1) summary += " (then " + reasons[1]["reason"].get<std::string>() + ")";
      }
      if (!eps.empty()) summary += ", most to " + eps[0]["endpoint"].get<std::string>();
      ev["reasons"] = std::move(reasons);
      ev["endpoints"] = std::move(eps);
      ev["summary"] = std::move(summary);
      f = make_finding(rule_, s.key, level, std::move(ev));
      return f;
    });
    cache_.emit(out);
    reasons_.prune(w.now_ns);
    endpoints_.prune(w.now_ns);
  }

 private:
  FindingCache cache_;
  EvidenceCache reasons_{top_reasons_of};
  EvidenceCache endpoints_{endpoints_by(NetMetric::Drops)};
};

}  // namespace

std::unique_ptr<Detector> make_net_retransmits(const RuleConfig& r) {
  return std::make_unique<NetRetransmitsDetector>(r);
}
std::unique_ptr<Detector> make_net_connect_failures(const RuleConfig& r) {
  return std::make_unique<NetConnectFailuresDetector>(r);
}
std::unique_ptr<Detector> make_net_drops(const RuleConfig& r) { return std::make_unique<NetDropsDetector>(r); }

}  // namespace fp
