// A hook for long waits on the daemon's loop thread (a helper command such as
// criu or systemctl, a shutdown grace period): they call keepalive() while
// they wait, so the service manager's watchdog keeps being pinged. The daemon
// installs the ping (daemon/notify.h); elsewhere (tests, the CLI) it is a no-op.
#pragma once

namespace fp {

using KeepaliveFn = void (*)();
// Installs fn (nullptr: none). Call before the loop's thread starts waiting.
void set_keepalive(KeepaliveFn fn);
// Runs the installed hook, if any. Cheap: the hook rate-limits itself.
void keepalive();

}  // namespace fp
