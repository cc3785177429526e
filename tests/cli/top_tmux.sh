#!/usr/bin/env bash
# `faultprobe top` on a real terminal: in a detached tmux session it must show
# the header and the injected CPU hog's pid with STATE cpu_runaway; then a
# sort key, the name filter, the evidence panel and q are exercised.
# Needs root (it loads the probe) and tmux. Usage: top_tmux.sh FAULTPROBE FAULTGEN
# Exit: 0 pass, 1 fail, 77 skipped (not root / no tmux).
set -u
fp=$1
fg=$2
if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root (loads the probe)"; exit 77; fi
if ! command -v tmux >/dev/null; then echo "SKIP: tmux is not installed"; exit 77; fi

dir=$(mktemp -d /tmp/fp_top_tmux_XXXXXX)
session="fp_top_$$"
hog_pid=""
cleanup() {
  tmux kill-session -t "$session" 2>/dev/null
  if [ -n "$hog_pid" ]; then kill "$hog_pid" 2>/dev/null; wait "$hog_pid" 2>/dev/null; fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
  echo "FAIL: $*"
  echo "---- last screen ----"
  tmux capture-pane -p -t "$session" 2>/dev/null
  echo "---- top's stderr ----"
  cat "$dir/stderr" 2>/dev/null
  exit 1
}
screen() { tmux capture-pane -p -t "$session"; }
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND (given the screen on stdin) until it succeeds.
# SECONDS are scaled by FP_TEST_TIME_SCALE (scripts/vmtest sets 3: loading
# the probe and drawing the first screen under emulation takes that much longer).
wait_for() {
  local secs=$(($1 * ${FP_TEST_TIME_SCALE:-1})) what=$2; shift 2
  local deadline=$((SECONDS + secs))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if screen | "$@"; then return 0; fi
    sleep 0.2
  done
  fail "timed out after ${secs}s waiting for $what"
}

# A quick cpu_runaway: one spinning thread, over a low bar held for 2 s (the
# default holds 30 s at 0.9 cores, and this machine may be shared).
cat >"$dir/top.toml" <<'EOF'
[rules.cpu_runaway]
threshold = 0.3
resolve = 0.1
for = "2s"
EOF

"$fg" cpu --threads 1 --duration 120s >"$dir/hog.out" 2>"$dir/hog.err" &
hog_pid=$!
deadline=$((SECONDS + 10))
culprit=""
while [ -z "$culprit" ] && [ "$SECONDS" -lt "$deadline" ]; do
  culprit=$(head -n1 "$dir/hog.out" 2>/dev/null | sed -n 's/.*"culprit":\([0-9]*\).*/\1/p')
  [ -z "$culprit" ] && sleep 0.1
done
[ -n "$culprit" ] || fail "faultgen printed no culprit: $(cat "$dir/hog.out" "$dir/hog.err")"
comm=$(cat "/proc/$culprit/comm")
echo "hog: pid $culprit comm $comm"

tmux new-session -d -s "$session" -x 200 -y 50 \
  "'$fp' top --local --config '$dir/top.toml' -d 500ms 2>'$dir/stderr'; echo \$? >'$dir/exit'; sleep 60"

# The header, and the hog's row with its fault class.
wait_for 20 "the header" grep -q "^faults: [0-9]* open"
wait_for 20 "the probe line" grep -q "source: local probe ($dir/top.toml)"
wait_for 40 "pid $culprit with STATE cpu_runaway" grep -Eq "^ *$culprit .* cpu_runaway *\$"
wait_for 10 "the open fault in the header" grep -Eq "^  cpu_runaway +pid $culprit "
echo "ok: header and pid $culprit cpu_runaway"

# Sort by pid: the header says so and the pid column ascends.
tmux send-keys -t "$session" p
pids_ascend() {
  awk 'f && /^ *[0-9]+ / {print $1} /^ *PID +USER/ {f=1}' | awk 'NR>1 && $1<prev {bad=1} {prev=$1} END {exit bad}'
}
wait_for 10 "sort: pid" grep -q "sort: pid"
screen | pids_ascend || fail "rows are not in pid order"
echo "ok: sort by pid"

# The name filter: only the hog's processes remain.
tmux send-keys -t "$session" / "$comm" Enter
only_filtered() {
  local s; s=$(cat)
  grep -q "filter: $comm" <<<"$s" || return 1
  local rows; rows=$(awk 'f && /^ *[0-9]+ / {print} /^ *PID +USER/ {f=1}' <<<"$s")
  [ -n "$rows" ] && ! grep -v -- "$comm" <<<"$rows" | grep -q . && grep -Eq "^ *$culprit " <<<"$rows"
}
wait_for 10 "only $comm rows after /$comm" only_filtered
echo "ok: filter /$comm"

# Back to faults first; the hog is the first row; Enter shows its evidence.
tmux send-keys -t "$session" s g Enter
wait_for 10 "the evidence panel of $culprit" grep -q "fault evidence of $culprit ($comm)"
wait_for 10 "the evidence JSON" grep -q '"class": "cpu_runaway"'
echo "ok: evidence panel"

# Esc closes the panel, Esc again clears the filter.
tmux send-keys -t "$session" Escape
no_panel() { ! grep -q "fault evidence of"; }
wait_for 10 "the evidence panel closed" no_panel
tmux send-keys -t "$session" Escape
no_filter() { ! grep -q "filter: "; }
wait_for 10 "the filter cleared" no_filter

tmux send-keys -t "$session" q
deadline=$((SECONDS + 10))
while [ ! -s "$dir/exit" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
[ -s "$dir/exit" ] || fail "top did not exit after q"
[ "$(cat "$dir/exit")" = 0 ] || fail "top exited $(cat "$dir/exit") after q"
echo "ok: q exits 0"

# Batch mode (stdout not a terminal): -n frames of plain text, then exit 0.
out=$("$fp" top --local --config "$dir/top.toml" -d 300ms -n 2 --rows 5 2>"$dir/batch.err")
rc=$?
[ "$rc" = 0 ] || fail "batch mode exited $rc: $(cat "$dir/batch.err")"
[ "$(grep -c '^faults: ' <<<"$out")" = 2 ] || fail "batch mode did not print 2 frames: $out"
echo "ok: batch mode"
echo PASS
