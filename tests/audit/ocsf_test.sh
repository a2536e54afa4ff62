#!/usr/bin/env bash
# `cordon audit show --format ocsf`: a real log (init, keys, seal, unseal and, as root, a job run
# by `cordon run`) as OCSF 1.1 events, validated with jsonschema against the class fields
# (tests/audit/ocsf-1.1-subset.schema.json) and checked entry by entry (check_ocsf.py).
#   ocsf_test.sh BIN_DIR SOURCE_DIR
set -uo pipefail
bin=$(cd "$1" && pwd); src=$(cd "$2" && pwd)
python3 -c 'import jsonschema' 2>/dev/null || { echo "SKIP: python3-jsonschema missing (scripts/setup)"; exit 77; }
T=$(mktemp -d /tmp/cordon-ocsf-XXXXXX)
trap 'rm -rf "$T"' EXIT
C="$bin/cordon"
export CORDON_CONFIG=$("$C" init "$T/inst" 2>/dev/null | tail -n1)
"$C" keys create datasets >/dev/null && "$C" keys create models >/dev/null
printf 'a,b\n1,2\n' | "$C" seal --key kms://local/datasets --name toy - "$T/toy.sealed" >/dev/null 2>&1
"$C" unseal "$T/toy.sealed" - >/dev/null 2>&1
want=(log.created=6003:99 key.created=6003:1 dataset.sealed=6003:1 dataset.unsealed=6003:2)
if [ "$(id -u)" = 0 ]; then
  chmod 0755 "$T"; mkdir -p "$T/out"; chmod 0644 "$T/toy.sealed"
  cat >"$T/job.yaml" <<SPEC
apiVersion: cordon/v1
kind: TrainingJob
metadata:
  name: toy
spec:
  trainer:
    image: $src/tests/runner/trainers/sh
    command: [/bin/sh, -c, "cat /data/toy > /out/copy.csv"]
  inputs:
    - name: toy
      path: $T/toy.sealed
  output:
    path: $T/out
    key: kms://local/models
  resources: {memory: 256Mi, timeout: 30s, scratch: 16Mi, pids: 32}
SPEC
  "$C" run --json "$T/job.yaml" >"$T/run.json" 2>"$T/run.err" || { cat "$T/run.err"; echo "FAIL: cordon run"; exit 1; }
  want+=(sandbox.start=1007:1 job.finished=1007:2)
else
  echo "note: not root: no job run, so no Process Activity events checked"
fi
"$C" audit show --format json >"$T/entries.jsonl" 2>/dev/null
"$C" audit show --format ocsf 2>/dev/null | python3 "$src/tests/audit/check_ocsf.py" \
  "$src/tests/audit/ocsf-1.1-subset.schema.json" "$T/entries.jsonl" "${want[@]}" || { echo "FAIL: OCSF events"; exit 1; }
"$C" audit show --format yaml >/dev/null 2>&1 && { echo "FAIL: an unknown --format was accepted"; exit 1; }
echo "2 passed, 0 failed"
