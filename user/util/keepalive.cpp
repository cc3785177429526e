#include "util/keepalive.h"

#include <atomic>

namespace fp {
namespace {
std::atomic<KeepaliveFn> g_keepalive{nullptr};
}  // namespace

void set_keepalive(KeepaliveFn fn) { g_keepalive.store(fn); }

void keepalive() {
  if (KeepaliveFn fn = g_keepalive.load()) fn();
}

}  // namespace fp
