// A hook for long waits on the daemon's loop thread (a shutdown grace, a
// helper command run on the loop): they call keepalive() while they wait, so
// the service manager's watchdog keeps being pinged. Only the thread that
// installed the hook pings: a wait on another thread (the action worker's
// criu dump) must not keep a wedged loop alive. The daemon installs the ping
// (daemon/notify.h); elsewhere (tests, the CLI) it is a no-op.
#pragma once

namespace fp {

using KeepaliveFn = void (*)();
// Installs fn (nullptr: none) for the calling thread. Call before that
// thread starts waiting.
void set_keepalive(KeepaliveFn fn);
// Runs the installed hook when called on the installing thread. Cheap: the
// hook rate-limits itself.
void keepalive();

}  // namespace fp
