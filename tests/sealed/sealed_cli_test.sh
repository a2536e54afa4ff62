#!/usr/bin/env bash
# Sealed files and keys through the real `cordon` binary: round trips, the
# sha256 pin line, inspect, rewrap, every documented exit status, the
# "any single-byte change fails and leaves no output" sweep, PKCS#11 (SoftHSM2).
#   sealed_cli_test.sh PATH/TO/cordon
set -uo pipefail
CORDON=$1
T=$(mktemp -d /tmp/cordon-sealed-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
# expect STATUS CMD...: runs CMD, checks its exit status.
expect() {
  local want=$1; shift
  "$@" >"$T/stdout" 2>"$T/stderr"
  local got=$?
  if [ "$got" != "$want" ]; then fail "exit $got (want $want): $* :: $(head -c 300 "$T/stderr")"; fi
}
no_leftovers() {  # DIR: nothing named like a temp file
  if ls -A "$1" | grep -q 'cordon-tmp'; then fail "temp files left in $1"; fi
}

"$CORDON" init "$T/inst" >/dev/null 2>&1 || { echo "cordon init failed"; exit 1; }
export CORDON_CONFIG=$T/inst/cordon.yaml
mkdir -p "$T/w"; W=$T/w

# --- keys ---
expect 0 "$CORDON" keys create train
grep -q 'kms://local/train  version 1' "$T/stdout" || fail "keys create output: $(cat "$T/stdout")"
expect 1 "$CORDON" keys create train          # exists
expect 2 "$CORDON" keys create '../x'
expect 0 "$CORDON" keys rotate kms://local/train
expect 0 "$CORDON" keys list --json
python3 -c 'import json,sys; k=json.load(open(sys.argv[1])); assert k[0]["key"]=="kms://local/train" and k[0]["versions"]==[1,2], k' "$T/stdout" \
  || fail "keys list --json"
[ "$(stat -c %a "$T/inst/keys")" = 700 ] || fail "keyring mode"
[ "$(stat -c %a "$T/inst/keys/train.key")" = 600 ] || fail "key file mode"

# --- seal / inspect / unseal ---
head -c 1000 /dev/urandom > "$W/p.bin"
expect 0 "$CORDON" seal --key kms://local/train --name customers --chunk-size 64 "$W/p.bin" "$W/p.sealed"
pin=$(tail -n1 "$T/stdout")
[ "$pin" = "sha256:$(sha256sum "$W/p.sealed" | cut -d' ' -f1)" ] || fail "seal pin line '$pin'"
grep -q $'\r' "$T/stderr" && fail "progress printed although stderr is not a terminal"
expect 1 "$CORDON" seal --key kms://local/train --name customers "$W/p.bin" "$W/p.sealed"  # OUT exists
expect 0 "$CORDON" inspect --json "$W/p.sealed"
python3 - "$T/stdout" <<'PY' || fail "inspect --json fields"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["key"] == "kms://local/train" and j["key_version"] == 2, j
assert j["dataset"] == "customers" and j["plaintext_bytes"] == 1000 and j["chunk_bytes"] == 64, j
assert j["header_bytes"] > 0, j
PY
expect 0 "$CORDON" unseal "$W/p.sealed" "$W/p.out"
cmp -s "$W/p.bin" "$W/p.out" || fail "unseal differs"
expect 1 "$CORDON" unseal "$W/p.sealed" "$W/p.out"   # OUT exists
expect 0 "$CORDON" unseal --force "$W/p.sealed" "$W/p.out"
"$CORDON" unseal "$W/p.sealed" - 2>/dev/null | cmp -s - "$W/p.bin" || fail "unseal to stdout"
head -c 70000 /dev/urandom > "$W/s.bin"
"$CORDON" seal --key kms://local/train --name from-stdin - "$W/s.sealed" < "$W/s.bin" >/dev/null 2>&1 || fail "seal from stdin"
"$CORDON" unseal "$W/s.sealed" - 2>/dev/null | cmp -s - "$W/s.bin" || fail "stdin round trip"
# On a terminal (a pty from script(1)) progress is shown: bytes, rate.
if command -v script >/dev/null; then
  script -qec "$CORDON seal --key kms://local/train --name tty $W/s.bin $W/tty.sealed" /dev/null > "$T/tty.out" 2>&1 \
    || fail "seal on a pty"
  grep -q 'sealing .*/s' "$T/tty.out" || fail "no progress on a terminal: $(head -c 200 "$T/tty.out")"
fi

# --- rewrap ---
expect 0 "$CORDON" keys rotate train
expect 0 "$CORDON" rewrap "$W/p.sealed"
[ "$(tail -n1 "$T/stdout")" = "sha256:$(sha256sum "$W/p.sealed" | cut -d' ' -f1)" ] || fail "rewrap pin line"
"$CORDON" inspect "$W/p.sealed" | grep -q '^key_version: 3$' || fail "rewrap did not move to v3"
rm -f "$W/p.out"; expect 0 "$CORDON" unseal "$W/p.sealed" "$W/p.out"
cmp -s "$W/p.bin" "$W/p.out" || fail "unseal after rewrap differs"
no_leftovers "$W"

# --- exit statuses ---
record=80; hb=$("$CORDON" inspect --json "$W/p.sealed" | python3 -c 'import json,sys; print(json.load(sys.stdin)["header_bytes"])')
size=$(stat -c %s "$W/p.sealed")
cp "$W/p.bin" "$W/plain.txt";           expect 10 "$CORDON" unseal "$W/plain.txt" "$W/o10"
cp "$W/p.sealed" "$W/v.sealed"; printf '\x09' | dd of="$W/v.sealed" bs=1 seek=9 conv=notrunc status=none
expect 11 "$CORDON" unseal "$W/v.sealed" "$W/o11"
expect 12 "$CORDON" seal --key kms://local/nope --name d "$W/p.bin" "$W/o12"
expect 12 "$CORDON" seal --key kms://vault/x --name d "$W/p.bin" "$W/o12"
expect 19 "$CORDON" seal --key kms://pkcs11/x --name d "$W/p.bin" "$W/o19"   # pkcs11 not configured
cp "$W/p.sealed" "$W/h.sealed"; printf '\x00' | dd of="$W/h.sealed" bs=1 seek=20 conv=notrunc status=none
expect 15 "$CORDON" unseal "$W/h.sealed" "$W/o15"
cp "$W/p.sealed" "$W/c.sealed"; printf '\x00\x00' | dd of="$W/c.sealed" bs=1 seek=$((hb + 3 * record + 5)) conv=notrunc status=none
expect 16 "$CORDON" unseal "$W/c.sealed" "$W/o16"
grep -q 'chunk 3 failed authentication' "$T/stderr" || fail "chunk number not named: $(cat "$T/stderr")"
head -c $((hb + 12 * record)) "$W/p.sealed" > "$W/t.sealed"
expect 17 "$CORDON" unseal "$W/t.sealed" "$W/o17"
{ cat "$W/p.sealed"; head -c $((hb + record)) "$W/p.sealed" | tail -c $record; } > "$W/a.sealed"
expect 18 "$CORDON" unseal "$W/a.sealed" "$W/o18"
# wrong key: the same key name in another installation
"$CORDON" init "$T/other" >/dev/null 2>&1
CORDON_CONFIG=$T/other/cordon.yaml "$CORDON" keys create train >/dev/null
CORDON_CONFIG=$T/other/cordon.yaml "$CORDON" keys rotate train >/dev/null
CORDON_CONFIG=$T/other/cordon.yaml "$CORDON" keys rotate train >/dev/null
expect 14 env CORDON_CONFIG="$T/other/cordon.yaml" "$CORDON" unseal "$W/p.sealed" "$W/o14"
expect 2 env CORDON_CONFIG="$T/nope.yaml" "$CORDON" unseal "$W/p.sealed" "$W/o2"
cp "$W/p.sealed" "$W/d.sealed"
expect 0 "$CORDON" keys disable train
expect 13 "$CORDON" unseal "$W/d.sealed" "$W/o13"
expect 13 "$CORDON" rewrap "$W/d.sealed"
# The registry's hash key was sealed under train (the first seal): with train disabled (and no
# `rewrap --all` first) a seal cannot be registered: exit 1, the reason named, no file left.
expect 0 "$CORDON" keys create after
expect 1 "$CORDON" seal --key kms://local/after --name after "$W/p.bin" "$W/o-unregistered"
grep -q "registry" "$T/stderr" && grep -q "disabled" "$T/stderr" || fail "registry failure message: $(cat "$T/stderr")"
[ -e "$W/o-unregistered" ] && fail "a seal the registry could not record was left behind"
# The rest seals without the registry.
for o in o10 o11 o12 o13 o14 o15 o16 o17 o18 o19 o2; do [ -e "$W/$o" ] && fail "$o left behind"; done
no_leftovers "$W"

# --- kill -9 in the middle of a seal leaves nothing behind (O_TMPFILE) ---
mkdir -p "$T/k9"; mkfifo "$T/k9/in"
expect 0 "$CORDON" keys create k9
"$CORDON" seal --no-register --key kms://local/k9 --name k9 "$T/k9/in" "$T/k9/out.sealed" >/dev/null 2>&1 &
pid=$!
exec 7>"$T/k9/in"; head -c 3000000 /dev/urandom >&7
sleep 0.3; kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exec 7>&-
[ "$(ls -A "$T/k9")" = "in" ] || fail "kill -9 during seal left: $(ls -A "$T/k9" | tr '\n' ' ')"

# --- any single-byte change anywhere: non-zero exit, no output, no temp file ---
expect 0 "$CORDON" keys create sweep
"$CORDON" seal --no-register --key kms://local/sweep --name sweep --chunk-size 64 - "$W/sweep.sealed" >/dev/null 2>&1 < <(head -c 200 /dev/urandom)
[ -s "$W/sweep.sealed" ] || fail "sweep: the seal failed"
n=$(stat -c %s "$W/sweep.sealed")
for ((i = 0; i < n; i++)); do
  cp "$W/sweep.sealed" "$W/flip.sealed"
  b=$(od -An -tu1 -j "$i" -N1 "$W/flip.sealed" | tr -d ' ')
  printf "\\x$(printf %02x $((b ^ 0x5a)))" | dd of="$W/flip.sealed" bs=1 seek="$i" conv=notrunc status=none
  "$CORDON" unseal "$W/flip.sealed" "$W/flip.out" >/dev/null 2>&1
  rc=$?  # must be one of the documented sealed-file failures, not a crash (134) or success
  if [ "$rc" -lt 10 ] || [ "$rc" -gt 19 ]; then fail "byte $i changed: exit $rc"; fi
  [ -e "$W/flip.out" ] && { fail "byte $i: output left behind"; rm -f "$W/flip.out"; }
done
no_leftovers "$W"
echo "single-byte sweep: $n positions"

# --- PKCS#11 through the CLI (SoftHSM2) ---
if [ -r /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null; then
  mkdir -p "$T/hsm/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$T/hsm/tokens" > "$T/hsm/softhsm2.conf"
  export SOFTHSM2_CONF=$T/hsm/softhsm2.conf
  softhsm2-util --init-token --free --label cordon-cli --pin 4321 --so-pin 8765 >/dev/null
  (umask 077; echo 4321 > "$T/hsm/pin")
  sed -i "s|^  # pkcs11:.*|  pkcs11:|; s|^  #   module: .*|    module: \"/usr/lib/softhsm/libsofthsm2.so\"|; s|^  #   token_label: .*|    token_label: \"cordon-cli\"|; s|^  #   pin_file: .*|    pin_file: \"$T/hsm/pin\"|" "$CORDON_CONFIG"
  expect 0 "$CORDON" keys create hsmkey --adapter pkcs11
  expect 0 "$CORDON" seal --no-register --key kms://pkcs11/hsmkey --name hsm-data "$W/p.bin" "$W/hsm.sealed"
  expect 0 "$CORDON" unseal "$W/hsm.sealed" "$W/hsm.out"
  cmp -s "$W/p.bin" "$W/hsm.out" || fail "pkcs11 round trip"
  expect 0 "$CORDON" keys rotate kms://pkcs11/hsmkey
  expect 0 "$CORDON" rewrap "$W/hsm.sealed"
  expect 0 "$CORDON" keys list --json
  grep -q '"kms://pkcs11/hsmkey"' "$T/stdout" || fail "keys list shows the HSM key"
  echo 0000 > "$T/hsm/pin"
  expect 19 "$CORDON" unseal "$W/hsm.sealed" "$W/hsm2.out"
  grep -q 'wrong PIN' "$T/stderr" || fail "wrong PIN message: $(cat "$T/stderr")"
  echo 4321 > "$T/hsm/pin"
  expect 0 "$CORDON" keys disable hsmkey --adapter pkcs11
  expect 13 "$CORDON" unseal "$W/hsm.sealed" "$W/hsm3.out"
else
  echo "SKIP: PKCS#11 CLI checks (SoftHSM2 not installed)"
fi

if [ "$failures" -gt 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "sealed CLI: all checks passed"
