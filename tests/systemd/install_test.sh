#!/usr/bin/env bash
# scripts/install as a staged install (--etc, --prefix, --root in a temp dir): the unit as
# shipped (paths adjusted, ReadWritePaths= untouched), the drop-in cordon-paths.conf from the
# config's directories and the output roots, /etc/cordon 0750, no unused run/ directory, and
# `systemd-analyze verify` where it exists. Needs root (install chowns/chmods as root would).
#   install_test.sh BIN_DIR SOURCE_DIR
set -uo pipefail
bin=$(cd "$1" && pwd); src=$(cd "$2" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: scripts/install needs root"; exit 77; }
T=$(mktemp -d /tmp/cordon-install-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { local n="$1"; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $n" >&2; fi; }
build=$(dirname "$bin")
"$src/scripts/install" --build "$build" --etc "$T/etc" --prefix "$T/usr" --root "$T/srv" \
  --output-root "$T/models" --output-root "$T/out2" >"$T/log" 2>&1
check "install succeeds" test $? = 0 || cat "$T/log"
unit="$T/etc/systemd/system/cordond.service"; dropin="$T/etc/systemd/system/cordond.service.d/cordon-paths.conf"
check "the unit's ExecStart uses the prefix" grep -q "^ExecStart=$T/usr/bin/cordond --config $T/etc/cordon/cordon.yaml" "$unit"
check "ExecReload checks the config before SIGHUP" bash -c "grep '^ExecReload=' '$unit' | head -n1 | grep -q -- '--check-config'"
check "the unit's ReadWritePaths line is as shipped" test "$(grep '^ReadWritePaths=' "$unit")" = "$(grep '^ReadWritePaths=' "$src/scripts/systemd/cordond.service")"
check "the drop-in lists state, spool, audit and both output roots" \
  grep -qx "ReadWritePaths=-$T/srv/state -$T/srv/spool -$T/srv/audit -$T/models -$T/out2" "$dropin"
check "/etc/cordon is 0750" test "$(stat -c %a "$T/etc/cordon")" = 750
check "output roots are sticky and world-writable" test "$(stat -c %a "$T/models")" = 1777
check "no unused run/ directory under the root" test ! -e "$T/srv/run"
check "the config's socket is the service's" grep -q '^  socket: /run/cordon/cordon.sock' "$T/srv/cordon.yaml"
# A second run keeps the config and policy and rewrites only its own drop-in.
printf '[Service]\nReadWritePaths=-/data/mine\n' >"$T/etc/systemd/system/cordond.service.d/override.conf"
sed -i 's/^  max_concurrent_jobs: .*/  max_concurrent_jobs: 5/' "$T/srv/cordon.yaml"
"$src/scripts/install" --build "$build" --etc "$T/etc" --prefix "$T/usr" --root "$T/srv" >"$T/log2" 2>&1
check "a second install succeeds" test $? = 0
check "it kept the config" grep -q 'max_concurrent_jobs: 5' "$T/srv/cordon.yaml"
check "it left the operator's drop-in alone" grep -q /data/mine "$T/etc/systemd/system/cordond.service.d/override.conf"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
