// The socket-owner resolver's user side (probe/net_resolve.h): runs the
// iter/task_file walk (bpf/net.bpf.c net_resolve) that charges waiting
// events to the process holding their socket, on a thread of its own, then
// sweeps what it left: entries older than the walk's start belong to
// sockets nobody has open (closed meanwhile, or the kernel's own) and are
// counted, then deleted; younger ones wait for the next walk.
#include <bpf/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "probe/probe.h"

namespace fp {

uint64_t Probe::net_pending_events() const { return net_pending_events_ ? *net_pending_events_ : 0; }

void Probe::resolve_net_owners_if_due(uint64_t now_ns) {
  if (net_walker_.joinable()) {
    if (!net_walk_done_.load(std::memory_order_acquire)) return;
    finish_net_walk();
    return;
  }
  if (net_resolve_pacer_.due(net_pending_events(), now_ns)) start_net_walk();
}

void Probe::resolve_net_owners() {
  if (net_walker_.joinable()) finish_net_walk();
  start_net_walk();
  finish_net_walk();
}

void Probe::start_net_walk() {
  NetWalk& w = net_walk_;
  w = NetWalk{};
  w.start_ns = monotonic_now_ns();
  w.pending_before = net_pending_events();
  if (net_resolve_stats_) {
    w.charged_before = net_resolve_stats_->charged;
    w.found_before = net_resolve_stats_->found;
    w.events_before = net_resolve_stats_->events;
  }
  net_walk_done_.store(false, std::memory_order_relaxed);
  const int link = net_resolve_.walk ? net_resolve_link_ : -1;
  net_walker_ = std::thread([this, link] {
    if (link >= 0) {
      int fd = bpf_iter_create(link);
      if (fd < 0) {
        net_walk_.error = std::string("cannot start the socket-owner resolver: ") + std::strerror(errno);
      } else {
        char buf[256];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0) {
        }
        if (n < 0) net_walk_.error = std::string("the socket-owner resolver's walk failed: ") + std::strerror(errno);
        close(fd);
      }
    }
    net_walk_done_.store(true, std::memory_order_release);
  });
}

void Probe::finish_net_walk() {
  if (net_walker_.joinable()) net_walker_.join();
  const NetWalk& w = net_walk_;
  if (!w.error.empty()) spdlog::warn("{}", w.error);
  uint64_t charged = 0;
  if (net_resolve_stats_) {
    charged = net_resolve_stats_->charged - w.charged_before;
    net_resolve_.charged += charged;
    net_resolve_.found += net_resolve_stats_->found - w.found_before;
    net_resolve_.events += net_resolve_stats_->events - w.events_before;
  }

  // The sweep: what waited since before the walk and is still here had no owner to find.
  std::vector<uint64_t> gone;
  uint64_t key = 0, next = 0;
  const void* prev = nullptr;
  size_t guard = 0;
  while (bpf_map_get_next_key(fds_.net_pending, prev, &next) == 0 && guard++ < 4 * FP_DEFAULT_NET_PENDING) {
    key = next;
    prev = &key;
    fp_net_pending pe{};
    if (bpf_map_lookup_elem(fds_.net_pending, &key, &pe) != 0 || pe.first_ns >= w.start_ns) continue;
    gone.push_back(key);
    net_resolve_.unresolved_sockets++;
    net_resolve_.unresolved_events += uint64_t(pe.retransmits) + pe.resets_received + pe.rcvq_overflows;
    net_resolve_.unresolved_drops += uint64_t(pe.drops) + pe.drops_other;
  }
  for (uint64_t k : gone) bpf_map_delete_elem(fds_.net_pending, &k);

  const uint64_t end_ns = monotonic_now_ns();
  net_resolve_pacer_.walked(w.pending_before, w.start_ns, charged > 0);
  net_resolve_.walks++;
  net_resolve_.last_at_ns = w.start_ns;
  net_resolve_.last_ms = double(end_ns - w.start_ns) / 1e6;
  net_resolve_.max_ms = std::max(net_resolve_.max_ms, net_resolve_.last_ms);
  net_resolve_.interval_ns = net_resolve_pacer_.interval_ns();
  spdlog::debug("socket-owner resolver: {} charged, {} left unowned, {:.2f} ms", charged, gone.size(),
                net_resolve_.last_ms);
}

}  // namespace fp
