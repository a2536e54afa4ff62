#!/usr/bin/env bash
# A failed append leaves no torn line: the audit log on a small tmpfs, in a
# mount namespace of its own, filled until appends fail with ENOSPC. The log
# must still verify while the disk is full (the writer cut the segment back),
# no recovery side file may appear, and appends work again once space returns.
#   audit_enospc_test.sh CORDON AUDIT_APPEND_HELPER      (root; exit 77 otherwise)
set -uo pipefail
cordon="$1"
helper="$2"
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
  echo "SKIP: needs root and unshare (a tmpfs in a private mount namespace)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/fs"
# Everything below runs in a new mount namespace: the tmpfs is never seen outside it.
unshare --mount --propagation private bash -s "$cordon" "$helper" "$work/fs" <<'INNER'
set -uo pipefail
cordon="$1"; helper="$2"; fs="$3"
fails=0
ok()   { echo "ok   $1"; }
bad()  { echo "FAIL $1"; fails=$((fails + 1)); }
mount -t tmpfs -o size=1m,mode=0755 cordon-enospc "$fs" || { echo "FAIL mount tmpfs"; exit 1; }
"$cordon" init "$fs/inst" >/dev/null || { echo "FAIL init"; exit 1; }
config="$fs/inst/cordon.yaml"
audit="$fs/inst/audit"
vkey="$fs/inst/state/audit-verifier.key"
"$helper" "$audit" 20 1 J1 >/dev/null 2>&1 || bad "appends before the disk is full"
# Fill the file system, then append one entry at a time until appends fail.
dd if=/dev/zero of="$fs/filler" bs=4k >/dev/null 2>&1
failed=0
for i in $(seq 1 200); do
  before=$(stat -c %s "$(ls "$audit"/audit-*.jsonl | tail -1)")
  if ! "$helper" "$audit" 1 1 J2 >/dev/null 2>"$fs/../append.err"; then failed=1; break; fi
done
# The failing write had room left in the segment's last page (unless the segment ended exactly on
# a page boundary, a ~1/300 chance): tmpfs took part of the line, then said ENOSPC.
room=$(( (4096 - before % 4096) % 4096 ))
[ "$failed" = 1 ] && ok "appends fail on a full disk after a short write into the $room bytes left in the last page ($(head -c 160 "$fs/../append.err" | tr '\n' ' '))" || bad "no append failed on a full disk"
seg=$(ls "$audit"/audit-*.jsonl | tail -1)
[ "$(tail -c 1 "$seg" | od -An -c | tr -d ' ')" = '\n' ] && ok "the segment ends on a whole line" || bad "torn line left in $seg"
out=$("$cordon" --config "$config" audit verify --verifier-key "$vkey" 2>&1) && ok "verify while the disk is full: ${out%%$'\n'*}" || bad "verify on the full disk: $out"
ls "$audit"/torn-*.bin >/dev/null 2>&1 && bad "a torn side file was needed" || ok "no torn side file"
rm -f "$fs/filler"
"$helper" "$audit" 5 1 J3 >/dev/null 2>&1 && ok "appends work again once space returns" || bad "append after space returned"
out=$("$cordon" --config "$config" audit checkpoint >/dev/null 2>&1 && "$cordon" --config "$config" audit verify --verifier-key "$vkey" 2>&1) \
  && ok "checkpoint and verify after: ${out%%$'\n'*}" || bad "verify after space returned: $out"
umount "$fs"
exit "$fails"
INNER
status=$?
if [ "$status" -ne 0 ]; then
  echo "audit_enospc_test: $status failure(s)"
  exit 1
fi
echo "audit_enospc_test: all passed"
