#!/usr/bin/env bash
# Black-box tests of the `cordon` binary: exit codes, stdout/stderr contracts.
#   cli_test.sh CORDON EXAMPLES_DIR BAD_SPECS_DIR
set -uo pipefail
cordon="$1"; examples="$2"; bad="$3"
tmp=$(mktemp -d /tmp/cordon-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0

check() {  # check NAME CONDITION...
  local name="$1"; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name" >&2; fi
}
run() {  # run ARGS... -> $rc, $out, $err
  "$cordon" "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
  out=$(cat "$tmp/out"); err=$(cat "$tmp/err")
}
has() { grep -qF -- "$2" <<<"$1"; }

# validate: examples are valid
run validate "$examples"/*.yaml
check "examples exit 0" test "$rc" = 0
check "examples print ok" has "$out" "$examples/churn-baseline.yaml: ok"
check "examples stderr empty" test -z "$err"

# validate: the three spec faults the issue names, with line and column
run validate "$bad/unknown-key.yaml"
check "unknown key exit 2" test "$rc" = 2
check "unknown key line:col" has "$err" "$bad/unknown-key.yaml:9:5: error: unknown field 'gpu' in spec.trainer"
run validate "$bad/relative-path.yaml"
check "relative path exit 2" test "$rc" = 2
check "relative path line:col" has "$err" "$bad/relative-path.yaml:7:12: error: spec.trainer.image: path 'trainers/x' is relative"
run validate "$bad/network-bridge.yaml"
check "bridge exit 2" test "$rc" = 2
check "bridge line:col" has "$err" "$bad/network-bridge.yaml:10:12: error: spec.network: 'bridge' is not supported"
check "bad spec prints nothing on stdout" test -z "$out"

# validate: a mix of good and bad reports both, exits 2
run validate "$examples/minimal.yaml" "$bad/unknown-key.yaml" /nonexistent.yaml
check "mixed exit 2" test "$rc" = 2
check "mixed good file ok" has "$out" "$examples/minimal.yaml: ok"
check "missing file named" has "$err" "/nonexistent.yaml:1:1: error: "

# validate --json: normalised spec with defaults
run validate --json "$examples/minimal.yaml"
check "json exit 0" test "$rc" = 0
check "json has default memory" has "$out" '"memory": "1Gi"'
check "json has default timeout" has "$out" '"timeout": "1h"'
check "json parses" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["spec"]["resources"]["pids"]==256' "$tmp/out"
run validate --json "$examples/minimal.yaml" "$examples/churn-baseline.yaml"
check "json several files is an array" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [x["metadata"]["name"] for x in d]==["hello","churn-baseline"]' "$tmp/out"

# usage errors exit 2 and say what is wrong
run validate
check "validate without files exit 2" test "$rc" = 2
run frobnicate
check "unknown command exit 2" test "$rc" = 2
run --help
check "help exit 0" test "$rc" = 0
check "help lists validate" has "$out" "validate"
# The --help footers are built from the exit-code table and the outcomes: every outcome is listed.
run run --help
for o in "0 succeeded" "10 trainer_failed" "15 setup_error" "16 cancelled" "18 halted"; do
  check "run --help lists exit status $o" has "$(tr '\n' ' ' <<<"$out")" "$o"
done
run wait --help
check "wait --help lists 17 interrupted and 18 halted" has "$out" "17 interrupted, 18 halted"
run --version
check "version" has "$out" "cordon 0."

# init: creates, prints the config path last, second run changes nothing
run init "$tmp/inst"
check "init exit 0" test "$rc" = 0
check "init prints config path last" test "$(tail -n1 "$tmp/out")" = "$tmp/inst/cordon.yaml"
check "init reports created" has "$err" "created  $tmp/inst/keys"
check "keyring 0700" test "$(stat -c %a "$tmp/inst/keys")" = 700
check "state 0700" test "$(stat -c %a "$tmp/inst/state")" = 700
cp "$tmp/inst/cordon.yaml" "$tmp/before.yaml"
run init "$tmp/inst"
check "init again exit 0" test "$rc" = 0
check "init again says so" has "$err" "nothing changed"
check "init again leaves config" cmp -s "$tmp/inst/cordon.yaml" "$tmp/before.yaml"

# the config (and policy) written by init are valid
cordond="$(dirname "$cordon")/cordond"
"$cordond" --check-config --config "$tmp/inst/cordon.yaml" >/dev/null 2>"$tmp/err"; rc=$?
check "cordond accepts the init config" has "$(cat "$tmp/err")" "is valid"
printf 'state_dir: relative\n' > "$tmp/bad.yaml"
CORDON_CONFIG="$tmp/bad.yaml" "$cordond" >/dev/null 2>"$tmp/err"; rc=$?
check "cordond honours CORDON_CONFIG, exit 2" test "$rc" = 2
check "cordond names the config line" has "$(cat "$tmp/err")" "$tmp/bad.yaml:1:12: error: state_dir"

echo "$pass passed, $fail failed"
test "$fail" = 0
