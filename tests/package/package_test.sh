#!/usr/bin/env bash
# The Debian package (label package): builds it with scripts/package, then
# checks lintian's verdict, the files, the control fields (Depends from
# dpkg-shlibdeps, the conffile), what the maintainer scripts call, and that the packaged
# binaries run (unpacked into a scratch directory: this host's root is never
# touched, other tests run the build tree's binaries).
# usage: package_test.sh SOURCE_DIR VERSION
set -uo pipefail
src=$1 version=$2
scratch=$(mktemp -d /tmp/fp_pkg_test.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

"$src/scripts/package" >"$scratch/out" 2>"$scratch/err"
rc=$?
cat "$scratch/err"
[ $rc -eq 0 ] || { echo "FAIL: scripts/package exited $rc"; exit 1; }
deb=$(tail -n 1 "$scratch/out")
[ -f "$deb" ] || { echo "FAIL: scripts/package printed no .deb path (got '$deb')"; exit 1; }
echo "package: $deb"
if grep -E '^E: ' "$scratch/err"; then bad "lintian reports errors"; fi
echo "lintian warnings: $(grep -c '^W: ' "$scratch/err")"

# The files.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$scratch/files"
for f in /usr/sbin/faultprobed /usr/bin/faultprobe /lib/systemd/system/faultprobed.service \
         /etc/faultprobe/faultprobe.toml \
         /usr/share/man/man8/faultprobe.8.gz /usr/share/man/man8/faultprobed.8.gz \
         /usr/share/man/man5/faultprobe.toml.5.gz \
         /usr/share/doc/faultprobe/README.md /usr/share/doc/faultprobe/config.md \
         /usr/share/doc/faultprobe/rules.md /usr/share/doc/faultprobe/socket-api.md \
         /usr/share/doc/faultprobe/copyright /usr/share/doc/faultprobe/changelog.Debian.gz \
         /usr/share/faultprobe/prometheus/faultprobe.rules.yml; do
  grep -qxF "$f" "$scratch/files" || bad "the package lacks $f"
done

# The control fields.
dpkg-deb -I "$deb" >"$scratch/info"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libbpf1 libc6 libstdc++6; do
  [[ ",$depends" == *", $lib "* || ",$depends" == *",$lib "* || ",$depends" == *", $lib,"* ]] \
    || bad "Depends lacks $lib"
done
[ "$(dpkg-deb -f "$deb" Version)" = "$version-1" ] || bad "Version is not $version-1"
for field in Section Priority Maintainer Description; do
  [ -n "$(dpkg-deb -f "$deb" $field)" ] || bad "no $field"
done
dpkg-deb -e "$deb" "$scratch/control"
grep -qxF /etc/faultprobe/faultprobe.toml "$scratch/control/conffiles" || bad "the config is no conffile"
for s in postinst prerm postrm; do
  [ -x "$scratch/control/$s" ] || { bad "no executable $s"; continue; }
  sh -n "$scratch/control/$s" || bad "$s: syntax error"
done

# The maintainer scripts' calls, in order, with and without systemd running:
# deb-systemd-helper, deb-systemd-invoke, systemctl and faultprobed are stubs
# that log their arguments; /run is a tmpfs of a private mount namespace, so
# /run/systemd/system exists only in the "systemd" case. (purge is not run:
# it removes /var/lib/faultprobe.)
mkdir -p "$scratch/stubs"
for cmd in deb-systemd-helper deb-systemd-invoke systemctl faultprobed; do
  printf '#!/bin/sh\necho "%s $*" >>"$FP_STUB_LOG"\n' "$cmd" >"$scratch/stubs/$cmd"
  chmod 755 "$scratch/stubs/$cmd"
done
calls() {  # calls SYSTEMD(yes|no) SCRIPT ARGS...: the stubs' log of one run
  local systemd=$1; shift
  : >"$scratch/calls"
  FP_STUB_LOG="$scratch/calls" PATH="$scratch/stubs:/usr/bin:/bin" unshare -m sh -c '
    mount -t tmpfs tmpfs /run && { [ "$0" = no ] || mkdir -p /run/systemd/system; } && exec "$@"' \
    "$systemd" "$@" >/dev/null 2>&1 || echo "exit $?" >>"$scratch/calls"
  tr '\n' ';' <"$scratch/calls"
}
expect_calls() {  # expect_calls WHAT GOT WANT
  [ "$2" = "$3" ] || bad "$1: the maintainer script called '$2', expected '$3'"
}
c=$scratch/control
expect_calls "postinst configure (install, systemd)" "$(calls yes "$c/postinst" configure)" \
  "deb-systemd-helper unmask faultprobed.service;deb-systemd-helper --quiet was-enabled faultprobed.service;deb-systemd-helper enable faultprobed.service;systemctl --system daemon-reload;deb-systemd-invoke start faultprobed.service;"
expect_calls "postinst configure (upgrade, systemd)" "$(calls yes "$c/postinst" configure 0.0.9-1)" \
  "deb-systemd-helper unmask faultprobed.service;deb-systemd-helper --quiet was-enabled faultprobed.service;deb-systemd-helper enable faultprobed.service;systemctl --system daemon-reload;deb-systemd-invoke restart faultprobed.service;"
expect_calls "postinst configure (no systemd)" "$(calls no "$c/postinst" configure)" \
  "deb-systemd-helper unmask faultprobed.service;deb-systemd-helper --quiet was-enabled faultprobed.service;deb-systemd-helper enable faultprobed.service;"
expect_calls "prerm remove (systemd)" "$(calls yes "$c/prerm" remove)" \
  "deb-systemd-invoke stop faultprobed.service;faultprobed --detach-probe;"
expect_calls "prerm remove (no systemd)" "$(calls no "$c/prerm" remove)" "faultprobed --detach-probe;"
expect_calls "prerm upgrade" "$(calls yes "$c/prerm" upgrade 0.1.1-1)" ""
expect_calls "postrm remove (systemd)" "$(calls yes "$c/postrm" remove)" \
  "systemctl --system daemon-reload;deb-systemd-helper mask faultprobed.service;"

# The packaged binaries and config.
dpkg-deb -x "$deb" "$scratch/root"
for bin in usr/sbin/faultprobed usr/bin/faultprobe; do
  got=$("$scratch/root/$bin" --version 2>&1)
  [ "$got" = "$version" ] || bad "$bin --version printed '$got', expected '$version'"
  file "$scratch/root/$bin" | grep -q 'not stripped' && bad "$bin is not stripped"
done
"$scratch/root/usr/bin/faultprobe" check-config "$scratch/root/etc/faultprobe/faultprobe.toml" >/dev/null \
  || bad "check-config refuses the packaged config"
promtool check rules "$scratch/root/usr/share/faultprobe/prometheus/faultprobe.rules.yml" >/dev/null \
  || bad "promtool refuses the packaged Prometheus rules"
for page in "$scratch"/root/usr/share/man/man*/*.gz; do
  gzip -t "$page" || bad "$page is not gzip"
done

[ $fail -eq 0 ] && echo "package: all checks passed"
exit $fail
