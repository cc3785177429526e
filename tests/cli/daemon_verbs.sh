#!/usr/bin/env bash
# `faultprobe status` and `events` against no daemon, bad usage, and a fake
# daemon (python3; skipped without it) that speaks the socket protocol.
set -u
bin=$1
fail=0
tmp=$(mktemp -d /tmp/fp_verbs_XXXXXX)
trap 'kill $fake_pid 2>/dev/null; rm -rf "$tmp"' EXIT
fake_pid=
sock=$tmp/fp.sock

check() {  # check NAME WANT_CODE GOT_CODE OUTPUT PATTERN
  if [ "$3" != "$2" ] || ! grep -q -- "$5" <<<"$4"; then
    echo "FAIL: $1: exited $3 (want $2), output: $4"; fail=1
  else
    echo "ok: $1 -> $3"
  fi
}

for verb in status events "events --follow"; do
  out=$("$bin" $verb --socket "$sock" 2>&1); got=$?
  check "$verb without a daemon" 1 $got "$out" "faultprobed is not running (no answer on $sock)"
done
out=$("$bin" events --backlog abc 2>&1); got=$?
check "events --backlog abc" 2 $got "$out" "Usage\|usage\|OPTIONS"
out=$("$bin" status --bogus 2>&1); got=$?
check "status --bogus" 2 $got "$out" "Usage\|usage\|OPTIONS"

if ! command -v python3 >/dev/null; then
  echo "skip: no python3 for the fake daemon"; exit $fail
fi

# The fake daemon: MODE stay keeps a follower open, vanish hangs up on it.
start_fake() {
  rm -f "$sock"
  python3 - "$sock" "$1" <<'PY' &
import json, socket, sys, time
path, mode = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(4)
ev = lambda i: json.dumps({"time": "2026-11-26T08:00:0%d.000Z" % i, "kind": "fault", "class": "crash",
                           "pid": 100 + i, "comm": "victim", "evidence": {"signal": "SEGV"}}) + "\n"
while True:
    c, _ = srv.accept()
    req = json.loads(c.makefile().readline())
    if req["cmd"] == "status":
        c.sendall((json.dumps({"ok": True, "status": {"probe": {"attach": "tp_btf"},
                   "criu": {"available": False, "reason": "vdso"}}}) + "\n").encode())
    elif req["cmd"] == "events":
        out = json.dumps({"ok": True}) + "\n" + "".join(ev(i) for i in range(min(req.get("backlog", 0), 2)))
        c.sendall(out.encode())
        if req.get("follow"):
            time.sleep(0.2)
            c.sendall(ev(5).encode())
            if mode == "stay":
                time.sleep(30)
    c.close()
PY
  fake_pid=$!
  for _ in $(seq 50); do [ -S "$sock" ] && return; sleep 0.1; done
  echo "FAIL: the fake daemon did not start"; exit 1
}

start_fake stay
out=$("$bin" status --socket "$sock" 2>&1); got=$?
check "status (human)" 0 $got "$out" "reason: vdso"
out=$("$bin" status --json --socket "$sock" 2>&1); got=$?
check "status --json" 0 $got "$out" '"criu":{"available":false'
out=$("$bin" events --socket "$sock" 2>&1); got=$?
check "events (backlog)" 0 $got "$out" "crash.*101.*victim.*signal=SEGV"
out=$("$bin" events --json --backlog 1 --socket "$sock" 2>&1); got=$?
check "events --json --backlog 1" 0 $got "$out" '"pid":100'
"$bin" events --follow --socket "$sock" >"$tmp/follow.out" 2>&1 &
cli=$!
sleep 1
kill -INT $cli
wait $cli; got=$?
check "events --follow, then SIGINT" 0 $got "$(cat "$tmp/follow.out")" "105"
# A user outside the socket's group cannot connect (mode 0660, as the daemon sets it).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  chmod 0755 "$tmp"; chmod 0660 "$sock"
  nobody_bin=$tmp/faultprobe
  cp "$bin" "$nobody_bin"; chmod 755 "$nobody_bin"
  out=$(cd / && setpriv --reuid=65534 --regid=65534 --clear-groups "$nobody_bin" status --socket "$sock" 2>&1)
  got=$?
  check "status as nobody" 1 $got "$out" "permission denied on $sock"
fi
kill $fake_pid; wait $fake_pid 2>/dev/null

start_fake vanish
out=$(timeout 10 "$bin" events --follow --socket "$sock" 2>&1); got=$?
check "events --follow, daemon goes away" 1 $got "$out" "closed the event stream"
exit $fail
