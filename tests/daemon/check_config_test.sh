#!/usr/bin/env bash
# `cordond --check-config` (the unit's ExecReload= runs it before SIGHUP, so `systemctl reload`
# fails on a policy the daemon would refuse): exit 0 when config and policy load, 2 otherwise,
# every error on stderr as FILE:LINE:COL.
#   check_config_test.sh BIN_DIR
set -uo pipefail
bin=$(cd "$1" && pwd)
T=$(mktemp -d /tmp/cordon-check-config-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { local name="$1"; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name" >&2; fi; }
cfg=$("$bin/cordon" init "$T/inst" 2>/dev/null | tail -n1)
cc() { "$bin/cordond" --config "$cfg" --check-config 2>"$T/err"; }

cc; check "a fresh installation is valid (0)" test $? = 0
check "it says both files are valid" grep -q "policy $T/inst/policy.yaml is valid" "$T/err"

cp "$T/inst/policy.yaml" "$T/policy.good"
printf 'admins:\n  uids: [0]\nusers:\n  - uids: [0]\n    datasets: ["*"]\n    bogus: 1\n' >"$T/inst/policy.yaml"
cc; check "an unknown policy key: exit 2" test $? = 2
check "the error names policy.yaml:6:5" grep -q "$T/inst/policy.yaml:6:5: error: unknown field 'bogus'" "$T/err"

printf 'admins:\n  uids: [0]\nusers:\n  - uids: [no-such-account-xyz]\n' >"$T/inst/policy.yaml"
cc; check "an unknown account: exit 2" test $? = 2
check "the error names policy.yaml:4 and the account" grep -q "policy.yaml:4:[0-9]*: error: .*no-such-account-xyz" "$T/err"

rm "$T/inst/policy.yaml"
cc; check "a missing policy: exit 2" test $? = 2
check "the error names the policy file" grep -q "$T/inst/policy.yaml" "$T/err"
cp "$T/policy.good" "$T/inst/policy.yaml"

sed -i 's/^  max_concurrent_jobs: .*/  max_concurrent_jobs: lots/' "$cfg"
cc; check "an invalid config: exit 2" test $? = 2
check "the error names cordon.yaml:LINE:COL" grep -qE "$cfg:[0-9]+:[0-9]+: error" "$T/err"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
