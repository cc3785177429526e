#include "detect/net_drop_reasons.h"

#include <algorithm>

namespace fp {

std::string drop_reason_text(const NetDropReason& r) {
  std::string out;
  for (char c : r.name) {
    if (out.size() >= 64) break;
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (ok) out += c;
  }
  return out.empty() ? "reason " + std::to_string(r.reason) : out;
}

nlohmann::json top_drop_reasons(const std::vector<NetDropReason>& reasons, size_t n) {
  std::vector<const NetDropReason*> sorted;
  for (const auto& r : reasons)
    if (r.count > 0) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(), [](const NetDropReason* a, const NetDropReason* b) {
    if (a->count != b->count) return a->count > b->count;
    return a->reason < b->reason;
  });
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < sorted.size() && i < n; ++i)
    out.push_back({{"reason", drop_reason_text(*sorted[i])}, {"drops", sorted[i]->count}});
  return out;
}

}  // namespace fp
