#include "detect/host_pressure.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace fp {
namespace {

uint64_t grew(uint64_t now, uint64_t before) { return now > before ? now - before : 0; }

nlohmann::json line_json(const PsiLine& l) {
  return {{"avg10", l.avg10}, {"avg60", l.avg60}, {"avg300", l.avg300}, {"total_us", l.total_us}};
}

}  // namespace

HostUtil host_util(double cpu_pct, uint64_t mem_total_bytes, uint64_t mem_available_bytes, double io_read_bps,
                   double io_write_bps) {
  HostUtil u;
  u.cpu_pct = std::clamp(cpu_pct, 0.0, 100.0);
  if (mem_total_bytes > 0)
    u.mem_used_pct =
        100.0 * (1.0 - double(std::min(mem_available_bytes, mem_total_bytes)) / double(mem_total_bytes));
  u.io_bps = std::max(0.0, io_read_bps) + std::max(0.0, io_write_bps);
  return u;
}

nlohmann::json pressure_json(const ResourcePressure& p) {
  nlohmann::json j = nlohmann::json::object();
  if (!p.ok) {
    j["error"] = p.error;
    return j;
  }
  j["some"] = line_json(p.psi.some);
  if (p.psi.full) j["full"] = line_json(*p.psi.full);
  j["some_stall_us"] = p.some_delta_us;
  j["full_stall_us"] = p.full_delta_us;
  return j;
}

void PressureInputs::arm() {
  triggers_.clear();
  for (PsiResource r : kPsiResources) {
    auto fd = files_.open_trigger(r, trigger_);
    if (fd) {
      triggers_.emplace_back(r, std::move(fd).value());
      continue;
    }
    if (reported_.insert(fd.error().message).second)
      spdlog::warn("host_pressure: {}; {} pressure is read at every tick only", fd.error().message,
                   psi_resource_name(r));
  }
}

std::vector<int> PressureInputs::trigger_fds() const {
  std::vector<int> out;
  for (const auto& [r, fd] : triggers_) out.push_back(fd.get());
  return out;
}

void PressureInputs::fired(int fd, bool error) {
  wakeups_ += error ? 0 : 1;
  if (!error) return;
  for (auto it = triggers_.begin(); it != triggers_.end(); ++it)
    if (it->second.get() == fd) {
      spdlog::warn("host_pressure: the trigger on {} failed; reading it at every tick only",
                   files_.path(it->first));
      triggers_.erase(it);
      return;
    }
}

void PressureInputs::read(uint64_t now_ns) {
  now_.read_ns = now_ns;
  for (PsiResource r : kPsiResources) {
    const size_t i = static_cast<size_t>(r);
    ResourcePressure& p = now_.psi[i];
    auto psi = files_.read(r);
    if (!psi) {
      p = ResourcePressure{};
      p.error = psi.error().message;
      last_[i].reset();
      if (reported_.insert(p.error).second)
        spdlog::error("host_pressure: {} (a kernel without PSI, or booted with psi=0): rules on {} pressure see "
                      "nothing; the rest of the daemon runs on",
                      p.error, psi_resource_name(r));
      continue;
    }
    p.ok = true;
    p.error.clear();
    p.psi = *psi;
    p.some_delta_us = last_[i] ? grew(psi->some.total_us, last_[i]->some.total_us) : 0;
    p.full_delta_us = last_[i] && psi->full && last_[i]->full ? grew(psi->full->total_us, last_[i]->full->total_us) : 0;
    last_[i] = *psi;
  }
  if (reported_.size() > 100) reported_.clear();  // bounded; a repeat is harmless
}

nlohmann::json PressureInputs::status() const {
  nlohmann::json j = nlohmann::json::object();
  for (PsiResource r : kPsiResources) j[psi_resource_name(r)] = pressure_json(now_.of(r));
  j["triggers"] = triggers_.size();
  j["trigger_wakeups"] = wakeups_;
  j["trigger"] = psi_trigger_text(trigger_);
  if (now_.util)
    j["util"] = {{"cpu_pct", now_.util->cpu_pct}, {"mem_used_pct", now_.util->mem_used_pct},
                 {"io_bps", now_.util->io_bps}};
  return j;
}

}  // namespace fp
