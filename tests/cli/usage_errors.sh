#!/usr/bin/env bash
# Bad command lines must print usage and exit 2, without needing root or BPF.
set -u
bin=$1
fail=0
expect() {  # expect CODE ARGS...
  local want=$1; shift
  "$bin" "$@" >/tmp/fp_usage_out.$$ 2>&1
  local got=$?
  if [ "$got" != "$want" ]; then
    echo "FAIL: faultprobe $* exited $got, expected $want"; cat /tmp/fp_usage_out.$$; fail=1
  elif [ "$want" = 2 ] && ! grep -qi "usage\|options" /tmp/fp_usage_out.$$; then
    echo "FAIL: faultprobe $* printed no usage"; cat /tmp/fp_usage_out.$$; fail=1
  else
    echo "ok: faultprobe $* -> $got"
  fi
}
expect 2 snapshot --bogus
expect 2 snapshot --interval 10
expect 2 snapshot --interval abc
expect 2 snapshot --interval -1s
expect 2 snapshot --interval 0s
expect 2 snapshot --pid notapid
expect 2 nosuchverb
expect 2
expect 0 --help
expect 0 snapshot --help
expect 2 check-config
out=$("$bin" check-config /nonexistent/faultprobe.toml 2>&1); got=$?
if [ "$got" != 2 ] || ! grep -q "No such file" <<<"$out"; then
  echo "FAIL: missing config exited $got with: $out"; fail=1
else
  echo "ok: missing config -> 2: $out"
fi
cfg=$(mktemp /tmp/fp_cfg_XXXXXX.toml)
printf '[rules.cpu_runaway]\nthreshold = 0.95\n' >"$cfg"
expect 0 check-config "$cfg"
printf '[rules.cpu_runaway]\nfor = 10\n' >"$cfg"
out=$("$bin" check-config "$cfg" 2>&1); got=$?
if [ "$got" != 2 ] || ! grep -q "$cfg:2:" <<<"$out"; then
  echo "FAIL: bad config exited $got with: $out"; fail=1
else
  echo "ok: bad config -> 2: $out"
fi
rm -f "$cfg"

# Without privileges: one line saying what is missing, exit 1.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  # a copy nobody can reach, wherever the checkout lives (e.g. under /root)
  nobody_dir=$(mktemp -d /tmp/fp_nobody_XXXXXX)
  cp "$bin" "$nobody_dir/faultprobe"
  chmod 755 "$nobody_dir" "$nobody_dir/faultprobe"
  out=$(cd / && setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$nobody_dir/faultprobe" snapshot 2>&1)
  got=$?
  if [ "$got" != 1 ] || ! grep -q "needs root" <<<"$out"; then
    echo "FAIL: unprivileged snapshot exited $got with: $out"; fail=1
  else
    echo "ok: unprivileged snapshot -> 1: $out"
  fi
  rm -rf "$nobody_dir"
fi
rm -f /tmp/fp_usage_out.$$
exit $fail
