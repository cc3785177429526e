#include "detect/locate.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "detect/detectors.h"
#include "probe/hist.h"

namespace fp {
namespace {

constexpr double kNsPerMs = 1e6;
constexpr double kNsPerS = 1e9;

// Keeps evidence readable: 0.123456789 -> 0.1235.
double round4(double v) { return std::round(v * 1e4) / 1e4; }

bool blameable(const ProcState& s, const World& w) { return !s.exited && may_blame(s, w); }

}  // namespace

const char* resource_name(Resource r) {
  switch (r) {
    case Resource::Cpu: return "cpu_ns";
    case Resource::IoBytes: return "io_bytes";
    case Resource::MemoryGrowth: return "rss_growth_bytes";
    case Resource::PageFaults: return "page_faults";
    case Resource::MemoryChurn: return "memory_churn_pages";
  }
  return "?";
}

uint64_t resource_amount(const WindowDelta& d, Resource r) {
  switch (r) {
    case Resource::Cpu: return d.delta.cpu_ns;
    case Resource::IoBytes: return d.delta.io_read_bytes + d.delta.io_write_bytes;
    case Resource::MemoryGrowth: return d.rss_end > d.rss_start ? d.rss_end - d.rss_start : 0;
    case Resource::PageFaults: return d.delta.page_faults;
    case Resource::MemoryChurn: return d.delta.page_faults + d.delta.io_read_bytes / 4096;
  }
  return 0;
}

double Culprit::rate() const {
  if (span_ns == 0) return 0;
  double per_ns = static_cast<double>(amount) / static_cast<double>(span_ns);
  return resource == Resource::Cpu ? per_ns : per_ns * kNsPerS;
}

std::optional<Culprit> top_consumer(const World& w, Resource r, uint64_t window_ns,
                                    const std::set<ProcKey>& exclude) {
  struct Use {
    const ProcState* s;
    uint64_t amount, span_ns;
  };
  std::vector<Use> uses;
  uint64_t total = 0, max_amount = 0;
  w.procs->for_each([&](const ProcState& s) {
    if (idle_in_window(s, w.now_ns, window_ns)) return;
    WindowDelta d = w.procs->window(s, w.now_ns, window_ns);
    uint64_t a = resource_amount(d, r);
    if (a == 0) return;
    total += a;
    max_amount = std::max(max_amount, a);
    uses.push_back({&s, a, d.span_ns});
  });
  // Largest first; ties go to the lower key so the choice is stable tick to tick.
  std::sort(uses.begin(), uses.end(), [](const Use& a, const Use& b) {
    return a.amount != b.amount ? a.amount > b.amount : a.s->key < b.s->key;
  });

  auto share_of = [&](uint64_t a) { return total > 0 ? static_cast<double>(a) / static_cast<double>(total) : 0; };
  const Use* culprit = nullptr;
  for (const Use& u : uses) {
    if (exclude.count(u.s->key) == 0 && blameable(*u.s, w)) {
      culprit = &u;
      break;
    }
  }
  if (culprit == nullptr) return std::nullopt;

  Culprit c;
  c.resource = r;
  c.window_ns = window_ns;
  c.key = culprit->s->key;
  c.comm = culprit->s->comm;
  c.span_ns = culprit->span_ns;
  c.amount = culprit->amount;
  c.share = share_of(culprit->amount);
  c.total = total;
  c.consumers = uses.size();
  c.largest = culprit->amount >= max_amount;
  for (const Use& u : uses) {
    if (&u == culprit || exclude.count(u.s->key) != 0) continue;
    c.runner_up = Consumer{u.s->key, u.s->comm, u.amount, share_of(u.amount), blameable(*u.s, w)};
    break;
  }
  return c;
}

void ConsumerIndex::set(const ProcKey& k, uint64_t amount) {
  auto it = amount_.find(k);
  if (it != amount_.end()) {
    if (it->second == amount) return;
    total_ -= it->second;
    if (amount == 0) {
      order_.erase({it->second, k});
      amount_.erase(it);
      return;
    }
    // Moves the node to its new place: no free and malloc per change.
    auto node = order_.extract({it->second, k});
    node.value().first = amount;
    order_.insert(std::move(node));
    it->second = amount;
    total_ += amount;
    return;
  } else {
    if (amount == 0) return;
    amount_.emplace(k, amount);
  }
  order_.insert({amount, k});
  total_ += amount;
}

void ConsumerIndex::refresh(const World& w) {
  const ProcessTable& t = *w.procs;
  for (const ProcKey& k : t.removed()) set(k, 0);
  // Exited processes count in the total too (their last tick's work was real).
  t.for_each_dirty(window_ns_, w.now_ns, !primed_, [&](const ProcState& s) {
    uint64_t a = 0;
    if (!idle_in_window(s, w.now_ns, window_ns_)) {
      WindowDelta d = t.window(s, w.now_ns, window_ns_);
      t.schedule_window(window_ns_, s.key, d.stable_until_ns);
      a = resource_amount(d, r_);
    }
    set(s.key, a);
  });
  primed_ = true;
}

std::optional<Culprit> ConsumerIndex::top(const World& w, const std::set<ProcKey>& exclude) const {
  const ProcessTable& t = *w.procs;
  auto share_of = [&](uint64_t a) { return total_ > 0 ? static_cast<double>(a) / static_cast<double>(total_) : 0; };
  const ProcState* culprit = nullptr;
  uint64_t culprit_amount = 0;
  for (const auto& [a, k] : order_) {
    const ProcState* s = t.find(k);
    if (s != nullptr && exclude.count(k) == 0 && blameable(*s, w)) {
      culprit = s;
      culprit_amount = a;
      break;
    }
  }
  if (culprit == nullptr) return std::nullopt;

  Culprit c;
  c.resource = r_;
  c.window_ns = window_ns_;
  c.key = culprit->key;
  c.comm = culprit->comm;
  c.span_ns = t.window(*culprit, w.now_ns, window_ns_).span_ns;
  c.amount = culprit_amount;
  c.share = share_of(culprit_amount);
  c.total = total_;
  c.consumers = order_.size();
  c.largest = culprit_amount >= order_.begin()->first;
  for (const auto& [a, k] : order_) {
    if (k == culprit->key || exclude.count(k) != 0) continue;
    const ProcState* s = t.find(k);
    if (s == nullptr) continue;
    c.runner_up = Consumer{k, s->comm, a, share_of(a), blameable(*s, w)};
    break;
  }
  return c;
}

std::vector<uint32_t> victim_pids(const std::vector<Victim>& v) {
  std::vector<uint32_t> out;
  out.reserve(v.size());
  for (const Victim& x : v) out.push_back(x.key.tgid);
  return out;
}

std::set<ProcKey> victim_keys(const std::vector<Victim>& v) {
  std::set<ProcKey> out;
  for (const Victim& x : v) out.insert(x.key);
  return out;
}

double runq_p99_ms(const WindowDelta& d) {
  return static_cast<double>(hist_quantile_ns(d.runq_hist, 0.99)) / kNsPerMs;
}

double io_p99_ms(const WindowDelta& d) {
  return static_cast<double>(hist_quantile_ns(d.io_lat_hist, 0.99)) / kNsPerMs;
}

double reclaim_share(const WindowDelta& d, uint64_t window_ns) {
  if (window_ns == 0) return 0;
  return static_cast<double>(d.delta.reclaim_ns) / static_cast<double>(window_ns);
}

nlohmann::json culprit_evidence(const Culprit& c) {
  nlohmann::json j = nlohmann::json::object();
  j["resource"] = resource_name(c.resource);
  j["window_ms"] = c.window_ns / 1'000'000;
  j["culprit"] = {{"pid", c.key.tgid},
                  {"comm", c.comm},
                  {"amount", c.amount},
                  {"share", round4(c.share)},
                  {"rate", round4(c.rate())}};
  j["total"] = c.total;
  j["consumers"] = c.consumers;
  j["largest"] = c.largest;
  if (c.runner_up) {
    j["runner_up"] = {{"pid", c.runner_up->key.tgid},
                      {"comm", c.runner_up->comm},
                      {"amount", c.runner_up->amount},
                      {"share", round4(c.runner_up->share)},
                      {"blameable", c.runner_up->blameable}};
  } else {
    j["runner_up"] = nullptr;
  }
  return j;
}

nlohmann::json victims_evidence(const std::vector<Victim>& v, std::string_view value_name,
                                std::string_view count_name) {
  nlohmann::json arr = nlohmann::json::array();
  for (const Victim& x : v) {
    nlohmann::json j = {{"pid", x.key.tgid}, {"comm", x.comm}};
    j[std::string(value_name)] = round4(x.value);
    if (!count_name.empty()) j[std::string(count_name)] = x.count;
    arr.push_back(std::move(j));
  }
  return arr;
}

nlohmann::json io_device_evidence(uint32_t kernel_dev, const std::string& sysfs_root) {
  nlohmann::json ev = nlohmann::json::object();
  if (kernel_dev == 0) return ev;
  const std::string dev = std::to_string(kernel_dev >> 20) + ":" + std::to_string(kernel_dev & 0xfffff);
  ev["device"] = dev;
  std::ifstream uevent(sysfs_root + "/dev/block/" + dev + "/uevent");
  for (std::string line; std::getline(uevent, line);)
    if (line.rfind("DEVNAME=", 0) == 0) ev["device_name"] = line.substr(8);
  return ev;
}

}  // namespace fp
