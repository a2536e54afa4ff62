#!/usr/bin/env bash
# The audit log checked by Go's golang.org/x/mod/sumdb/tlog and .../note
# (tests/audit/go/tlogcheck.go): a real log made by `cordon init` and real
# appends, a checkpoint signed by `cordon audit checkpoint`, the tiles of
# `cordon audit tiles`, and proofs of `cordon audit prove|consistency --json`
# for edge sizes (1, 2, powers of two and +-1) and many indexes.
#   tlog_go_test.sh CORDON AUDIT_APPEND_HELPER
# Exit 77 (skipped) without Go and golang-golang-x-mod-dev (scripts/setup installs both).
set -euo pipefail
cordon="$1"
helper="$2"
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog ]; then
  echo "SKIP: needs go and golang-golang-x-mod-dev (scripts/setup)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GO111MODULE=off GOPATH=/usr/share/gocode
export GOCACHE="${GOCACHE:-$work/gocache}"
go build -o "$work/tlogcheck" "$here/go/tlogcheck.go" &  # compiles while the log is made
build=$!

"$cordon" init "$work/inst" >/dev/null
config="$work/inst/cordon.yaml"
audit="$work/inst/audit"
"$helper" "$audit" 560 1 >/dev/null     # 561 entries: 2 full level-0 tiles and a partial one
"$cordon" --config "$config" audit checkpoint >/dev/null
"$cordon" --config "$config" audit tiles "$work/tiles" >/dev/null
size=$("$cordon" --config "$config" audit checkpoint --latest | sed -n 2p)
[ "$size" = 561 ] || { echo "FAIL: checkpoint size $size, want 561"; exit 1; }

proofs="$work/proofs.jsonl"
for n in 1 2 3 4 5 7 8 9 15 16 17 255 256 257 511 512 513 560 561; do
  for i in 0 1 $((n / 2)) $((n - 2)) $((n - 1)); do
    [ "$i" -ge 0 ] && [ "$i" -lt "$n" ] || continue
    "$cordon" --config "$config" audit prove "$i" --size "$n" --json >> "$proofs"
  done
  for m in 1 2 3 4 7 8 9 16 17 255 256 257 512; do
    [ "$m" -le "$n" ] || continue
    "$cordon" --config "$config" audit consistency "$m" "$n" --json >> "$proofs"
  done
done
"$cordon" --config "$config" audit prove 100 --json >> "$proofs"    # default size: now
wait "$build"
"$work/tlogcheck" "$audit" "$work/tiles" "$proofs"
