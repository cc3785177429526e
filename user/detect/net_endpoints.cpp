#include "detect/net_endpoints.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cmath>

namespace fp {

namespace {

constexpr uint16_t kAfInet = 2, kAfInet6 = 10;

bool v4_mapped(const std::array<uint8_t, 16>& a) {
  for (int i = 0; i < 10; ++i)
    if (a[i] != 0) return false;
  return a[10] == 0xff && a[11] == 0xff;
}

uint64_t count_of(const NetEndpoint& e, NetMetric what) {
  switch (what) {
    case NetMetric::Retransmits: return e.retransmits;
    case NetMetric::ConnectFailures: return e.connect_failures;
    case NetMetric::Drops: return e.drops;
  }
  return 0;
}

double round4(double v) { return std::round(v * 1e4) / 1e4; }

}  // namespace

std::string endpoint_text(const NetEndpoint& e) {
  char buf[INET6_ADDRSTRLEN] = {};
  std::string host;
  if (e.family == kAfInet6 && !v4_mapped(e.addr)) {
    if (inet_ntop(AF_INET6, e.addr.data(), buf, sizeof buf)) host = "[" + std::string(buf) + "]";
  } else if (e.family == kAfInet || e.family == kAfInet6) {
    const uint8_t* v4 = e.family == kAfInet ? e.addr.data() : e.addr.data() + 12;
    if (inet_ntop(AF_INET, v4, buf, sizeof buf)) host = buf;
  }
  if (host.empty()) host = "?";
  return host + ":" + std::to_string(e.port);
}

std::string errno_name(int32_t err) {
  switch (err) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case ECONNRESET: return "ECONNRESET";
    case ECONNABORTED: return "ECONNABORTED";
    case EPROTO: return "EPROTO";
    default: return std::to_string(err);
  }
}

nlohmann::json top_endpoints(const std::vector<NetEndpoint>& eps, NetMetric what, size_t n) {
  std::vector<const NetEndpoint*> sorted;
  for (const auto& e : eps)
    if (count_of(e, what) > 0) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [&](const NetEndpoint* a, const NetEndpoint* b) {
    if (count_of(*a, what) != count_of(*b, what)) return count_of(*a, what) > count_of(*b, what);
    return a->last_ns > b->last_ns;
  });
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < sorted.size() && i < n; ++i) {
    const NetEndpoint& e = *sorted[i];
    nlohmann::json j = {{"endpoint", endpoint_text(e)}};
    if (what == NetMetric::Retransmits) {
      j["retransmits"] = e.retransmits;
      j["segments_out"] = e.segs_out;
      if (e.segs_out > 0) j["retransmit_share"] = round4(std::min(1.0, double(e.retransmits) / double(e.segs_out)));
    } else if (what == NetMetric::Drops) {
      j["drops"] = e.drops;
    } else {
      j["connect_failures"] = e.connect_failures;
      if (e.last_err != 0) j["last_error"] = errno_name(e.last_err);
    }
    if (e.resets_received) j["resets_received"] = e.resets_received;
    if (e.resets_sent) j["resets_sent"] = e.resets_sent;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace fp
