#include "util/keepalive.h"

#include <atomic>
#include <thread>

namespace fp {
namespace {
std::atomic<KeepaliveFn> g_keepalive{nullptr};
std::atomic<std::thread::id> g_owner{};
}  // namespace

void set_keepalive(KeepaliveFn fn) {
  g_owner.store(std::this_thread::get_id());
  g_keepalive.store(fn);
}

void keepalive() {
  if (std::this_thread::get_id() != g_owner.load()) return;
  if (KeepaliveFn fn = g_keepalive.load()) fn();
}

}  // namespace fp
