#!/usr/bin/env bash
# The audit log through the real `cordon` binary: init creates the keys and
# the first entry, a real process appends, verify/show/checkpoint read it, and
# verify names each tamper class.
#   audit_cli_test.sh CORDON AUDIT_APPEND_HELPER
set -uo pipefail
cordon="$1"
helper="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
check() {  # check NAME EXPECTED_STATUS PATTERN -- command...
  local name="$1" want="$2" pattern="$3"
  shift 4
  local out status
  out=$("$@" 2>&1)
  status=$?
  if [ "$status" != "$want" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL $name: status $status (want $want), output:"
    echo "$out" | head -20
    fails=$((fails + 1))
  else
    echo "ok   $name"
  fi
}

init_out=$("$cordon" init "$work/inst" 2>&1)
config="$work/inst/cordon.yaml"
audit="$work/inst/audit"
vkey="$work/inst/state/audit-verifier.key"
grep -q "audit-verifier.key.*OFF this host" <<<"$init_out" || { echo "FAIL init does not point at the verifier key"; fails=$((fails + 1)); }
check "fresh log verifies" 0 "^ok: 1 entries, head [0-9a-f]{64}" -- "$cordon" --config "$config" audit verify --verifier-key "$vkey"
# One writer: the timeline below is in append order (two threads would interleave it).
"$helper" "$audit" 40 1 J42 || { echo "FAIL helper"; exit 1; }
check "verify with key" 0 "^ok: 41 entries" -- "$cordon" --config "$config" audit verify --verifier-key "$vkey"
check "verify without key warns" 0 "MACs NOT checked" -- "$cordon" --config "$config" audit verify
check "verify --json" 0 '"ok":true' -- "$cordon" --config "$config" audit verify --verifier-key "$vkey" --json
check "show timeline" 0 "job J42: job.accepted -> job.inputs_verified -> key.unwrapped" -- "$cordon" --config "$config" audit show --job J42
check "show --json" 0 '^\{"action":"key.unwrapped"' -- "$cordon" --config "$config" audit show --json --action 'key.*'
check "show --since future" 0 "^\(0 entries" -- "$cordon" --config "$config" audit show --since 2200-01-01T00:00:00Z
check "checkpoint" 0 "^cordon.audit/" -- "$cordon" --config "$config" audit checkpoint
"$cordon" --config "$config" audit checkpoint > "$work/saved.cp"
check "checkpoint signs the current head" 0 "^41$" -- sed -n 2p "$work/saved.cp"
check "checkpoint --latest prints it" 0 "^41$" -- bash -c "\"$cordon\" --config \"$config\" audit checkpoint --latest | sed -n 2p"
check "prove --json" 0 '^\{"index":5,"proof":\[("[A-Za-z0-9+/=]{44}",?){6}\],"root":"[A-Za-z0-9+/=]{44}","size":41\}$' -- "$cordon" --config "$config" audit prove 5 --json
check "prove beyond the log" 2 "the log has 41 entries" -- "$cordon" --config "$config" audit prove 3 --size 42
check "consistency --json" 0 '^\{"new_root":"[^"]+","new_size":41,"old_root":"[^"]+","old_size":7,"proof":\[' -- "$cordon" --config "$config" audit consistency 7 --json
check "tiles" 0 "tree size 41: 1 hash tile" -- "$cordon" --config "$config" audit tiles "$work/tiles"
[ -f "$work/tiles/tile/0/000.p/41" ] && [ -f "$work/tiles/tile/entries/000.p/41" ] && cmp -s "$work/tiles/checkpoint" "$work/saved.cp" \
  || { echo "FAIL tiles layout"; fails=$((fails + 1)); }


pyverify="$(dirname "$0")/verify_audit.py"
check "independent Python verifier agrees" 0 "^ok: 41 entries, head $("$cordon" --config "$config" audit verify 2>/dev/null | awk '{print $5}')" -- python3 "$pyverify" "$audit" --verifier-key "$vkey" --checkpoint "$work/saved.cp"

seg="$audit/audit-00000000000000000000.jsonl"
cp "$seg" "$work/seg.orig"
cp "$audit/checkpoints" "$work/cps.orig"
restore() { cp "$work/seg.orig" "$seg"; cp "$work/cps.orig" "$audit/checkpoints"; }

sed -i '6s/J42/J43/' "$seg"
check "edit one byte" 1 "audit-00000000000000000000.jsonl:6: seq 5: modified" -- "$cordon" --config "$config" audit verify --verifier-key "$vkey"
check "edit one byte (Python verifier)" 1 "jsonl:6: modified" -- python3 "$pyverify" "$audit" --verifier-key "$vkey"
restore; sed -i '8d' "$seg"
check "delete an entry" 1 ":8: seq 8: deleted" -- "$cordon" --config "$config" audit verify --verifier-key "$vkey"
restore; awk 'NR==10 {held=$0; next} NR==11 {print; print held; next} {print}' "$work/seg.orig" > "$seg"
check "swap two" 1 ":10: seq 10: reordered" -- "$cordon" --config "$config" audit verify --verifier-key "$vkey"
restore; python3 "$(dirname "$0")/forge_audit.py" insert "$seg" 12
check "insert a forged entry with a correct hash" 1 ":13: seq 12: inserted" -- "$cordon" --config "$config" audit verify --verifier-key "$vkey"
restore; python3 "$(dirname "$0")/forge_audit.py" rewrite "$seg" 9; : > "$audit/checkpoints"
check "rewrite the chain with correct hashes (no key: undetectable)" 0 "^ok: 41 entries" -- "$cordon" --config "$config" audit verify
check "rewrite the chain with correct hashes (MACs)" 1 ":10: seq 9: MAC mismatch" -- "$cordon" --config "$config" audit verify --verifier-key "$vkey"
restore; head -n 37 "$work/seg.orig" > "$seg"; : > "$audit/checkpoints"
check "truncate tail (no checkpoint: undetectable)" 0 "^ok: 37 entries" -- "$cordon" --config "$config" audit verify --verifier-key "$vkey"
check "truncate tail vs saved checkpoint" 1 "saved.cp:1: seq 40: truncated before checkpoint" -- "$cordon" --config "$config" audit verify --verifier-key "$vkey" --checkpoint "$work/saved.cp"
restore; sig=$(grep -n '^— ' "$audit/checkpoints" | tail -1 | cut -d: -f1)
sed -i "${sig}s/.\{12\}\$/AAAAAAAAAAAA/" "$audit/checkpoints"
check "replace a checkpoint signature" 1 "checkpoints:[0-9]+: bad signature" -- "$cordon" --config "$config" audit verify
restore
check "restored log verifies" 0 "^ok: 41 entries" -- "$cordon" --config "$config" audit verify --verifier-key "$vkey" --checkpoint "$work/saved.cp"
check "usage error" 2 "" -- "$cordon" --config "$config" audit verify --no-such-flag

# A witness off the host: first checkpoint, growth with a proof, rollback refused, cosignature checked by verify.
wvkey=$("$cordon" audit witness-key create "$work/witness.key" --name witness.example/w1)
witness() { "$cordon" audit witness --log-key "$audit/log.identity" --state "$work/wstate" --key "$work/witness.key" "$@"; }
check "witness-key create prints a vkey" 0 '^witness.example/w1\+[0-9a-f]{8}\+' -- echo "$wvkey"
check "witness: first checkpoint" 0 "^— witness.example/w1 " -- witness "$work/saved.cp"
"$helper" "$audit" 5 1 J44 >/dev/null
"$cordon" --config "$config" audit checkpoint > "$work/grown.cp"
check "witness: growth without a proof" 1 "REFUSED \(proof needed\)" -- witness "$work/grown.cp"
"$cordon" --config "$config" audit consistency 41 "$(sed -n 2p "$work/grown.cp")" --json > "$work/proof.json"
witness --proof "$work/proof.json" "$work/grown.cp" > "$work/cosig" 2>/dev/null || { echo "FAIL witness: growth with a proof"; fails=$((fails + 1)); }
cat "$work/grown.cp" "$work/cosig" > "$work/cosigned.cp"
# The cosignature checked independently (C2SP tlog-cosignature, with python3-cryptography).
check "cosignature verifies with python3-cryptography" 0 "^cosignature ok" -- python3 - "$wvkey" "$work/grown.cp" "$work/cosig" <<'PY'
import base64, hashlib, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
vkey, note, line = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read().rstrip("\n")
name, kid, pub = vkey.split("+", 2)
raw = base64.b64decode(pub)
assert raw[0] == 4 and hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == kid
dash, signer, b64 = line.split(" ")
blob = base64.b64decode(b64)
assert dash == "\u2014" and signer == name and len(blob) == 76 and blob[:4].hex() == kid
timestamp = int.from_bytes(blob[4:12], "big")
body = note.split("\n\n")[0] + "\n"
Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[12:], b"cosignature/v1\ntime %d\n" % timestamp + body.encode())
print("cosignature ok, time", timestamp)
PY
check "witness: rollback" 1 "REFUSED \(rollback\)" -- witness "$work/saved.cp"
check "verify --witnesses 1" 0 "^ok: 4[0-9] entries" -- "$cordon" --config "$config" audit verify --checkpoint "$work/cosigned.cp" --witness-key "$wvkey" --witnesses 1
check "verify --witnesses 1 on a plain note" 1 "bad signature: .*0 valid witness cosignature" -- "$cordon" --config "$config" audit verify --checkpoint "$work/grown.cp" --witness-key "$wvkey" --witnesses 1
check "verify --witnesses 2 with one key" 2 "2 witnesses required but 1" -- "$cordon" --config "$config" audit verify --checkpoint "$work/cosigned.cp" --witness-key "$wvkey" --witnesses 2

if [ "$fails" -ne 0 ]; then
  echo "audit_cli_test: $fails failure(s)"
  exit 1
fi
echo "audit_cli_test: all passed"
