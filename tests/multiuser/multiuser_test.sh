#!/usr/bin/env bash
# The hostile multi-user suite (issue #10): two real local users with narrow
# grants, one user with none, a root-only sealed secret, a real cordond; each
# attack replayed as the user (runuser) and the exact refusal or outcome
# asserted, plus: no secret byte reached the attacker (everything it got, and
# every sealed output, unsealed as root and grepped), no root-owned file
# outside the grants changed, and the audit log verifies after every section.
#
#   multiuser_test.sh [--bin BIN_DIR] [SECTION...]     (default: every section)
#   sections: logs_symlink input_swap output_swap image pii_names protocol
#             starvation stageout confused_deputy
# BIN_DIR defaults to build/bin of this tree. Needs root. KEEP=1 keeps the
# temp dir; E2E_VERBOSE=1 prints passing checks too.
set -uo pipefail
SECTIONS_ALL=(logs_symlink input_swap output_swap image pii_names protocol starvation stageout confused_deputy)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/e2e.sh"
e2e_sections multiuser "$@"   # [--bin BIN_DIR] [SECTION...]: sets BIN and sections
e2e_init "$BIN" multiuser
for tool in runuser useradd userdel setpriv; do command -v "$tool" >/dev/null || e2e_skip "$tool missing"; done

# ---------------------------------------------------------------- the world
W="$T/work"            # the test's own files (root 0700; never a victim)
mkdir -m 0700 "$W"
mkdir -m 0755 "$T/specs" "$T/shared" "$T/secret" "$T/home" "$T/victim"
echo "a root-owned file nobody's grant covers" >"$T/victim/keep.txt"

e2e_install || exit 1
for k in datasets models secrets; do "$C" keys create "$k" >/dev/null 2>&1 || { echo "keys create $k failed" >&2; exit 1; }; done
e2e_cfg_set max_concurrent_jobs 2

A="cdm$$a"; M="cdm$$m"; E="cdm$$e"   # alice, mallory (granted, narrowly), eve (no grant)
for u in "$A" "$M" "$E"; do e2e_user_add "$u" || { echo "useradd $u failed" >&2; exit 1; }; done
AUID=$(id -u "$A"); MUID=$(id -u "$M"); EUID_=$(id -u "$E")
for u in "$A" "$M"; do
  h="$T/home/$u"
  mkdir -m 0755 "$h" "$h/out" "$h/img" "$h/in" "$h/elsewhere" "$h/notimg"
  chown -R "$u:$u" "$h"
done
AH="$T/home/$A"; MH="$T/home/$M"
AOUT="$AH/out"; AIMG="$AH/img"; MOUT="$MH/out"; MIMG="$MH/img"   # the granted places
AI="$AIMG/plain"; MI="$MIMG/plain"   # the images ordinary jobs use (inside the grants, never holding a socket)
# Images are published as trees their users cannot change (root-owned here): a
# directory the submitter owns could receive a listening socket after the check.
for d in "$AI" "$MI"; do mkdir -m 0755 "$d"; done

PM=$(e2e_marker PII)      # a "row" of alice's own dataset: legit for her, never a host name
SMARK=$(e2e_marker SEC)   # root's secret dataset: no grant names it
MMARK=$(e2e_marker MAL)   # mallory's private 0600 file
DMARK=$(e2e_marker DEP)   # a granted dataset name in a file alice cannot read
seal() {  # seal DATASET KEY OUT OWNER MODE  (plaintext on stdin)
  "$C" seal --key "kms://local/$2" --name "$1" - "$3" >/dev/null 2>&1 && chown "$4:$4" "$3" && chmod "$5" "$3"
}
printf 'age,spend,note\n30,1.5,%s\n41,2.5,x\n' "$PM" | seal customers datasets "$AH/in/customers.sealed" "$A" 0600
printf 'age,spend,note\n33,3.5,y\n' | seal customers datasets "$MH/in/customers.sealed" "$M" 0600
printf 'ssn,name\n123-45-6789,%s\n' "$SMARK" | seal payroll secrets "$T/secret/payroll.sealed" root 0600
printf 'notes\n%s\n' "$MMARK" | seal mallory-notes secrets "$MH/in/private.sealed" "$M" 0600
printf 'age,spend,note\n50,9.9,%s\n' "$DMARK" | seal customers datasets "$T/shared/customers-rootonly.sealed" root 0600
AIN="$AH/in/customers.sealed"; MIN="$MH/in/customers.sealed"; SECRET="$T/secret/payroll.sealed"

# The grants: places, not just names (issue #10). A build whose policy loader
# does not know `outputs:`/`images:` yet gets the same policy without them, so
# that every attack can still be replayed against it (and this check fails).
write_policy() {  # write_policy with|without
  local places_root="" places_a="" places_m=""
  if [ "$1" = with ]; then
    places_root=$'\n    outputs: ["*"]\n    images: ["*"]'
    places_a=$'\n    outputs: ['"\"$AOUT\""$']\n    images: ['"\"$AIMG\""']'
    places_m=$'\n    outputs: ['"\"$MOUT\""$']\n    images: ['"\"$MIMG\""']'
  fi
  cat >"$INST/policy.yaml" <<POL
admins:
  uids: [0]
users:
  - uids: [0]
    datasets: ["*"]
    keys: ["*"]$places_root
  - uids: [$A]
    datasets: [customers]
    keys: [kms://local/datasets, kms://local/models]$places_a
    max_memory: 1Gi
    max_timeout: 5m
  - uids: [$M]
    datasets: [customers]
    keys: [kms://local/datasets, kms://local/models]$places_m
    max_memory: 1Gi
POL
}
write_policy with
PLACES_ERR=""  # checked in the sections that rely on the places (output_swap, image)
if ! "$bin/cordond" --check-config --config "$CFG" >"$W/policy-check.out" 2>&1; then
  PLACES_ERR=$(grep -o "error: .*" "$W/policy-check.out" | head -n1 | cut -c1-100)
  write_policy without
  "$bin/cordond" --check-config --config "$CFG" >/dev/null 2>&1 || { echo "the policy is invalid even without places" >&2; exit 1; }
fi
# spec.metrics: the metric names a job may report.
e2e_spec "$W/metrics-probe.yaml" image="$AI" out="$AOUT" input="$AIN" 'metrics=[loss, epoch]'
METRICS=()   # checked in pii_names
"$C" validate "$W/metrics-probe.yaml" >/dev/null 2>&1 && METRICS=('metrics=[loss, epoch]')

e2e_daemon_start --grace 3s --request-timeout 10s || exit 1

# ---------------------------------------------------------------- helpers
# submit_as USER SPEC: sets rc, out, err, JOB (the last line of stdout).
submit_as() {
  out=$(as_user "$1" "$C" submit "$2" 2>"$W/submit.err"); rc=$?
  err=$(cat "$W/submit.err"); JOB=$(tail -n1 <<<"$out")
  CLI_OUT+="$out"$'\n'"$err"$'\n'
}
CLI_OUT=""
spool_job() {  # spool_job NAME: the id of alice's job of that name, if any
  local id; id=$(as_user "$A" "$C" status --json 2>/dev/null | jget - "' '.join(j['job_id'] for j in d if j['name'] == '$1')" 2>/dev/null)
  [ -n "$id" ] && echo "$id"
}
not_queued() { [ "$(e2e_state "$1")" != queued ]; }
dir_and_running() { [ -d "$1" ] && e2e_is_running "$2"; }
wait_final() { e2e_wait_for "${2:-30}" e2e_is_final "$1"; }
job_field() { "$C" status "$1" --json 2>/dev/null | jget - "d.get('$2')" 2>/dev/null; }
output_dir_of() {  # the job's output directory as the daemon reports it, else <out>/<job>
  local d; d=$(job_field "$1" output_dir)
  if [ -n "$d" ] && [ "$d" != None ]; then echo "$d"; else echo "$2/$1"; fi
}
# unseal_tree DIR: every sealed regular file under DIR (links not followed), unsealed by root.
unseal_tree() {
  find "$1" -type f -name '*.sealed' -print0 2>/dev/null | while IFS= read -r -d '' f; do "$C" unseal "$f" - 2>/dev/null; done
}
# refused_with RC_EXPECTED WORD: the last submit was refused with that exit status, naming WORD.
refused_with() { [ "$rc" = "$1" ] && has "$err" "$2"; }
# cleanup_job JOB: a job a failed check left behind must not hold a slot.
cleanup_job() { [ -n "$1" ] && ! e2e_is_final "$1" && "$C" cancel "$1" >/dev/null 2>&1 && wait_final "$1" 30; return 0; }
# if_it_ran [WHAT TOKEN [USER]]: for a submission that should have been refused but was
# accepted (rc 0): waits for the job, with WHAT checks that its logs (read as USER, else
# as root) do not hold TOKEN, and cancels it if it still runs.
if_it_ran() {
  [ "$rc" = 0 ] || return 0
  wait_final "$JOB" 30
  if [ $# -ge 2 ]; then
    local logs
    if [ -n "${3:-}" ]; then logs=$(as_user "$3" timeout 20 "$C" logs "$JOB" 2>&1); else logs=$("$C" logs "$JOB" 2>/dev/null); fi
    check "$1" hasnt "$logs" "$2"
  fi
  cleanup_job "$JOB"
}
CONNECT_PY='import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5)
try:
    s.connect(sys.argv[1]); print("REACHED", flush=True); s.sendall(b"{\"op\":\"ping\"}\n"); print("REPLY", s.recv(200))
except Exception as e:
    print("BLOCKED", type(e).__name__)'
connect_argv() { "$PY" -c 'import json,sys; print(json.dumps(["/usr/bin/python3", "-c", sys.argv[1], sys.argv[2]]))' "$CONNECT_PY" "$1"; }

# Root-owned files outside every grant: the installation, the test's own
# scratch and the granted output directories are left out; everything else
# under $T (the victim dir, users' other dirs, the secrets) must not change.
snapshot() {
  find "$T" -xdev \( -path "$INST" -o -path "$W" -o -path "$AOUT" -o -path "$MOUT" -o -path "$T/daemon.log" \) -prune \
    -o -path "$T/specs" -prune -o -user root -printf '%p %y %s %m %T@\n' | sort
}

run_section() {
  local s="$1" before after
  echo "# --- $s"
  before=$(snapshot)
  "sec_$s"
  e2e_daemon_alive || { fail "$s: cordond still running at the end of the section"; DPID=""; e2e_daemon_start --grace 3s --request-timeout 10s; }
  check "$s: audit log verifies" e2e_audit_verify
  after=$(snapshot)
  if [ "$before" = "$after" ]; then pass "$s: no root-owned file outside the grants changed"
  else
    fail "$s: no root-owned file outside the grants changed"
    diff <(echo "$before") <(echo "$after") | head -10 | sed 's/^/#   /' >&2
  fi
}

# ---------------------------------------------------------------- 1. logs through a swapped output dir
sec_logs_symlink() {
  e2e_spec "$T/specs/logsym.yaml" image="$AI" out="$AOUT" input="$AIN" sh='echo hello from the trainer; exit 0'
  submit_as "$A" "$T/specs/logsym.yaml"
  check "logs_symlink: alice may submit within her grant" test "$rc" = 0
  wait_final "$JOB" 30
  check "logs_symlink: the job succeeded" test "$(e2e_state "$JOB")" = succeeded
  [ -n "$JOB" ] || return 0
  local od; od=$(output_dir_of "$JOB" "$AOUT")
  # The attack: the job's output dir becomes one holding trainer.log.sealed -> the secret.
  as_user "$A" sh -c 'mv "$1" "$1.orig" && mkdir "$1" && ln -s "$2" "$1/trainer.log.sealed"' - "$od" "$SECRET" 2>/dev/null
  local got; got=$(as_user "$A" timeout 20 "$C" logs "$JOB" 2>&1)
  check "logs_symlink: cordon logs after the swap does not reveal the secret" hasnt "$got" "$SMARK"
  check "logs_symlink: and no other sealed file either (nothing but the job's own log or a refusal)" hasnt "$got" "123-45-6789"
  # Same through a symlinked directory: out/JOB -> a dir alice made, holding the link.
  case "$od" in "$AOUT"/?*) rm -rf "$od" ;; *) return 0 ;; esac
  as_user "$A" sh -c 'mkdir -p "$1.x" && ln -s "$2" "$1.x/trainer.log.sealed" && ln -s "$1.x" "$1"' - "$od" "$SECRET" 2>/dev/null
  got=$(as_user "$A" timeout 20 "$C" logs "$JOB" 2>&1)
  check "logs_symlink: a symlinked output dir does not reveal the secret either" hasnt "$got" "$SMARK"
}

# ---------------------------------------------------------------- 2. an unpinned input swapped while queued
sec_input_swap() {
  e2e_cfg_set max_concurrent_jobs 1; e2e_reload
  e2e_spec "$T/specs/blocker.yaml" image="$MI" out="$MOUT" input="$MIN" sh='sleep 30'
  submit_as "$M" "$T/specs/blocker.yaml"; local blocker="$JOB"
  e2e_wait_for 20 e2e_is_running "$blocker"
  as_user "$A" cp "$AIN" "$AH/in/swap.sealed"
  e2e_spec "$T/specs/swap.yaml" image="$AI" out="$AOUT" input="$AH/in/swap.sealed" \
    sh='cat /data/customers; cat /data/customers >/out/copy.csv; exit 0'
  submit_as "$A" "$T/specs/swap.yaml"; local job="$JOB"
  check "input_swap: alice's unpinned job accepted" test "$rc" = 0
  check "input_swap: it queues behind the running job" test "$(e2e_state "$job")" = queued
  # The attack: the checked path now names mallory's 0600 sealed file.
  as_user "$A" sh -c 'ln -s "$2" "$1.new" && mv -fT "$1.new" "$1"' - "$AH/in/swap.sealed" "$MH/in/private.sealed"
  check "input_swap: (the swap itself worked)" test -L "$AH/in/swap.sealed"
  as_user "$M" "$C" cancel "$blocker" >/dev/null 2>&1
  wait_final "$job" 40
  check "input_swap: alice's job reached a final state" e2e_is_final "$job"
  local got; got=$(as_user "$A" timeout 20 "$C" logs "$job" 2>&1)
  check "input_swap: mallory's data is not in alice's logs" hasnt "$got" "$MMARK"
  local od; od=$(output_dir_of "$job" "$AOUT")
  check "input_swap: mallory's data is in no output of the job (unsealed as root)" hasnt "$(unseal_tree "$od")" "$MMARK"
  check "input_swap: no data key of kms://local/secrets was unwrapped for alice's job" hasnt \
    "$("$C" audit show --job "$job" --json --action key.unwrap 2>/dev/null)" "kms://local/secrets"
  cleanup_job "$job"; wait_final "$blocker" 30
  e2e_cfg_set max_concurrent_jobs 2; e2e_reload
}

# ---------------------------------------------------------------- 3. the output dir swapped while the trainer runs; output.path outside the grant
places_check() { check "$1: the policy accepts outputs:/images: grants${PLACES_ERR:+ ($PLACES_ERR)}" test -z "$PLACES_ERR"; }
sec_output_swap() {
  places_check output_swap
  local victim_before; victim_before=$(ls -la "$T/victim")
  e2e_spec "$T/specs/outswap.yaml" image="$AI" out="$AOUT" input="$AIN" sh='sleep 3; echo r >/out/result.txt; exit 0'
  submit_as "$A" "$T/specs/outswap.yaml"; local job="$JOB"
  check "output_swap: accepted" test "$rc" = 0
  local od; od="$AOUT/$job"
  e2e_wait_for 20 dir_and_running "$od" "$job"
  as_user "$A" sh -c 'mv "$1" "$1.moved" && ln -s "$2" "$1"' - "$od" "$T/victim" 2>/dev/null
  check "output_swap: (the swap itself worked while the job ran)" test -L "$od"
  wait_final "$job" 30
  check "output_swap: nothing written into the directory the link named" test "$(ls -la "$T/victim")" = "$victim_before"
  check "output_swap: no manifest.json / trainer.log.sealed in the victim dir" test ! -e "$T/victim/manifest.json" -a ! -e "$T/victim/trainer.log.sealed"
  cleanup_job "$job"

  e2e_spec "$T/specs/outside.yaml" image="$AI" out="$AH/elsewhere" input="$AIN" sh='echo r >/out/r.txt; exit 0'
  submit_as "$A" "$T/specs/outside.yaml"
  check "output_swap: output.path outside alice's outputs: grant refused (3, naming outputs)" refused_with 3 outputs
  if_it_ran
  e2e_spec "$T/specs/rootdir.yaml" image="$AI" out="$T/victim/made-by-root" input="$AIN" sh='exit 0'
  submit_as "$A" "$T/specs/rootdir.yaml"
  check "output_swap: output.path in a root-owned dir refused (3, naming outputs)" refused_with 3 outputs
  if_it_ran
  check "output_swap: root created no directory for alice outside her grant" test ! -e "$T/victim/made-by-root"
}

# ---------------------------------------------------------------- 4. the trainer image: runtime dir, outside the grant, sockets
sec_image() {
  local argv
  places_check image
  argv=$(connect_argv /job/"$(basename "$SOCK")")
  e2e_spec "$T/specs/img-run.yaml" image="$RUN_DIR" out="$AOUT" input="$AIN" argv="$argv"
  submit_as "$A" "$T/specs/img-run.yaml"
  check "image: the daemon's runtime dir as image refused (3, naming images)" refused_with 3 images
  if_it_ran "image: the trainer could not reach cordond's socket from inside the sandbox" REACHED
  e2e_spec "$T/specs/img-out.yaml" image="$AH/notimg" out="$AOUT" input="$AIN" sh='exit 0'
  submit_as "$A" "$T/specs/img-out.yaml"
  check "image: a dir outside alice's images: grant refused (3, naming images)" refused_with 3 images
  if_it_ran

  # A user-made unix socket inside a granted image: refused, and never reached.
  as_user "$A" mkdir -m 0755 "$AIMG/sockimg"
  as_user "$A" "$PY" -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(8); s.settimeout(0.1)
open(sys.argv[2] + ".ready", "w").close()
end = time.time() + 60
while time.time() < end and not os.path.exists(sys.argv[2] + ".stop"):
    try:
        c, _ = s.accept(); open(sys.argv[2], "w").write("GOT\n")
    except OSError: pass' "$AIMG/sockimg/s.sock" "$AH/listener.got" &
  local lpid=$!; e2e_track "$lpid"
  e2e_wait_for 10 test -e "$AH/listener.got.ready"
  argv=$(connect_argv /job/s.sock)
  e2e_spec "$T/specs/img-sock.yaml" image="$AIMG/sockimg" out="$AOUT" input="$AIN" argv="$argv"
  submit_as "$A" "$T/specs/img-sock.yaml"
  check "image: an image holding a unix socket refused (2 or 3; got $rc)" test "$rc" = 2 -o "$rc" = 3
  if_it_ran
  check "image: the user's socket was never reached from a sandbox" test ! -e "$AH/listener.got"
  as_user "$A" touch "$AH/listener.got.stop"
  e2e_wait_for 5 e2e_gone "$lpid" || kill "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null
  as_user "$A" rm -rf "$AIMG/sockimg"

  # An image alice owns, empty of sockets now: she could plant one after the
  # check and hear from her job. Refused, naming why.
  as_user "$A" mkdir -m 0755 "$AIMG/own"
  e2e_spec "$T/specs/img-own.yaml" image="$AIMG/own" out="$AOUT" input="$AIN" sh='exit 0'
  submit_as "$A" "$T/specs/img-own.yaml"
  check "image: an image the submitter owns refused (3; got $rc)" test "$rc" = 3
  check "image: the refusal says the submitter could change it" has "$err" "the submitter owns or may write"
  if_it_ran
  as_user "$A" rm -rf "$AIMG/own"

  # cordond's own socket, hard-linked into a granted image (only where fs.protected_hardlinks
  # is 0: with 1, only a socket's owner may link it).
  as_user "$A" mkdir -m 0755 "$AIMG/hl"
  if as_user "$A" ln "$SOCK" "$AIMG/hl/c.sock" 2>/dev/null; then
    argv=$(connect_argv /job/c.sock)
    e2e_spec "$T/specs/img-hl.yaml" image="$AIMG/hl" out="$AOUT" input="$AIN" argv="$argv"
    submit_as "$A" "$T/specs/img-hl.yaml"
    check "image: an image holding a link to cordond's socket refused (2 or 3; got $rc)" test "$rc" = 2 -o "$rc" = 3
    if_it_ran "image: cordond's socket unreachable through the link" REACHED
  else
    echo "# image: alice cannot hard-link cordond's socket here (protected_hardlinks): that variant not run" >&2
  fi
  as_user "$A" rm -rf "$AIMG/hl"

  # Root's own `cordon run` with the runtime dir as image: the sandbox itself
  # must not reach a host socket (refused up front, or connect() fails).
  argv=$(connect_argv /job/"$(basename "$SOCK")")
  e2e_spec "$W/root-run.yaml" image="$RUN_DIR" out="$W/rootout" argv="$argv"
  "$C" run --json "$W/root-run.yaml" >"$W/root-run.json" 2>"$W/root-run.err"
  local log=""; [ -d "$W/rootout" ] && log=$(unseal_tree "$W/rootout")
  check "image: no sandbox (not even root's cordon run) reaches cordond's socket" hasnt "$log" REACHED
}

# ---------------------------------------------------------------- 5. PII through names
sec_pii_names() {
  # The trainer names files, a directory and a metric after a row of its data;
  # the marker is in the data only (not in the spec).
  local sh='n=$(sed -n 2p /data/customers | cut -d, -f3); mkdir -p "/out/$n/sub"; echo v1 >"/out/$n/sub/$n.txt"; echo v2 >"/out/${n}_row.csv"; printf "{\"%s\": 1, \"loss\": 0.5}\n" "$n" >>"$CORDON_METRICS"; exit 0'
  check "pii_names: spec.metrics (the metric names a job may report) is part of the schema" test ${#METRICS[@]} = 1
  e2e_spec "$T/specs/pii.yaml" image="$AI" out="$AOUT" input="$AIN" sh="$sh" "${METRICS[@]}"
  CLI_OUT=""
  submit_as "$A" "$T/specs/pii.yaml"; local job="$JOB"
  check "pii_names: accepted" test "$rc" = 0
  CLI_OUT+=$(as_user "$A" "$C" wait "$job" --json 2>&1)
  check "pii_names: the job succeeded" test "$(e2e_state "$job")" = succeeded
  local od; od=$(output_dir_of "$job" "$AOUT")
  local status_json; status_json=$(as_user "$A" "$C" status --json 2>&1; "$C" status --json 2>&1; "$C" status "$job" --json 2>&1)
  local list_out; list_out=$(as_user "$A" "$C" list 2>&1; as_user "$A" "$C" list --json 2>&1; "$C" list 2>&1; "$C" status 2>&1)
  CLI_OUT+=$(as_user "$A" "$C" status "$job" 2>&1; "$C" audit show --job "$job" 2>&1; "$C" audit show --job "$job" --json 2>&1)
  CLI_OUT+=$(find "$od" -type f -name '*.sealed' -exec "$C" inspect --json {} \; 2>&1)
  local names; names=$(find "$AOUT" "$STATE_DIR" "$SPOOL_DIR" "$AUDIT_DIR" "$RUN_DIR" 2>/dev/null)
  check "pii_names: marker absent from host file names (output, state, spool, audit, runtime)" hasnt "$names" "$PM"
  check "pii_names: marker absent from the audit log" test -z "$(grep -rlaF -- "$PM" "$AUDIT_DIR")"
  check "pii_names: marker absent from the state dir (job records)" test -z "$(grep -rlaF -- "$PM" "$STATE_DIR" "$SPOOL_DIR")"
  check "pii_names: marker absent from the output dir's clear bytes (manifest, sealed headers)" test -z "$(grep -rlaF -- "$PM" "$AOUT")"
  check "pii_names: marker absent from cordon status --json" hasnt "$status_json" "$PM"
  check "pii_names: marker absent from cordon list" hasnt "$list_out" "$PM"
  check "pii_names: marker absent from every other CLI output (submit, wait, status, audit show, inspect)" hasnt "$CLI_OUT" "$PM"
  # The tree is restored only for root, from sealed data.
  "$C" outputs extract "$od" "$W/extract" >"$W/extract.out" 2>&1; local xrc=$?
  check "pii_names: cordon outputs extract JOBDIR DEST exits 0 (as root)" test "$xrc" = 0
  check "pii_names: extract restores the trainer's tree" test "$(cat "$W/extract/$PM/sub/$PM.txt" 2>/dev/null)" = v1
  check "pii_names: extract restores top-level files" test "$(cat "$W/extract/${PM}_row.csv" 2>/dev/null)" = v2
  as_user "$A" "$C" outputs extract "$od" "$AH/extract" >/dev/null 2>&1
  check "pii_names: alice cannot extract (no key access)" test ! -e "$AH/extract/$PM"
}

# ---------------------------------------------------------------- 6. type-confused requests from a user with no grant
refused_count() {
  "$C" audit show --json --action request.refused 2>/dev/null |
    "$PY" -c 'import json,sys; print(sum(json.loads(l).get("actor",{}).get("uid")==int(sys.argv[1]) for l in sys.stdin if l.strip()))' "$EUID_"
}
reply_code() { jget - 'str(d.get("ok")).lower() + "/" + str(d.get("code"))' <<<"$1" 2>/dev/null; }
sec_protocol() {
  "$PY" -c 'import sys; sys.stdout.write("{\"op\":\"status\",\"job\":" + "["*100000 + "]"*100000 + "}\n")' >"$W/deep.json"
  "$PY" -c 'import sys; sys.stdout.write("{\"op\":\"ping\",\"job\":" + "{\"a\":"*50000 + "1" + "}"*50000 + "}\n")' >"$W/deepobj.json"
  local payloads=('{"op":5}' '{"op":"status","job":7}' '{"op":["x"]}' '{"spec":{}}' '{"op":null}'
                  '{"op":"submit","spec":{}}' '{"op":"wait","job":{"$gt":""}}' '{"op":"cancel","job":[1]}'
                  '{"op":"logs","job":true}' '{"op":{"op":"ping"}}' '{"op":"st\\u0000atus"}'
                  '{"op":"ping"\0}' '\0\0\0' '{"op":"\xff\xfe"}' '[]' '"ping"' "@$W/deep.json" "@$W/deepobj.json")
  local p reply n0 n1 label
  for p in "${payloads[@]}"; do
    label=$(printf '%s' "$p" | head -c 40 | tr -c '[:print:]' '?'); [ "${p:0:1}" = @ ] && label="deep nesting ($(basename "${p:1}"))"
    n0=$(refused_count)
    reply=$(e2e_request "$p" "$E" 2>/dev/null)
    check "protocol: $label -> answered \"invalid\" (got: $(head -c 80 <<<"$reply"))" test "$(reply_code "$reply")" = false/invalid
    if e2e_wait_for 3 e2e_ping; then pass "protocol: $label -> cordond still alive (ping)"
    else
      fail "protocol: $label -> cordond still alive (ping)"
      wait "$DPID" 2>/dev/null; DPID=""; e2e_daemon_start --grace 3s --request-timeout 10s || return 1
    fi
    n1=$(refused_count)
    check "protocol: $label -> audited (request.refused, eve's uid)" test "$n1" -gt "$n0"
  done
}

# ---------------------------------------------------------------- 7. one user holding every connection
HOLD_PY='import os, socket, sys, time
path, n, mode, job, ready, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX); s.setblocking(True)
    try:
        s.connect(path)
        if mode == "wait": s.sendall(("{\"op\":\"wait\",\"job\":\"%s\"}\n" % job).encode())
        socks.append(s)
    except OSError: s.close()
open(ready, "w").write("%d\n" % len(socks))
end = time.time() + 40
while time.time() < end and not os.path.exists(stop): time.sleep(0.05)'
daemon_fds() { ls "/proc/$DPID/fd" 2>/dev/null | wc -l; }
settle() {  # until cordond's fd count stops moving (bounded)
  local a b i
  a=$(daemon_fds)
  for i in $(seq 40); do sleep 0.1; b=$(daemon_fds); [ "$a" = "$b" ] && return 0; a=$b; done
}
served_fast() {  # served_fast WHAT CMD...: alice's CMD succeeds within 3 s
  local what="$1" t0 t1 r; shift
  t0=$(date +%s%N); as_user "$A" timeout 10 "$@" >"$W/served.out" 2>&1; r=$?; t1=$(date +%s%N)
  check "starvation: $what: alice served within 3 s (rc $r, $(( (t1 - t0) / 1000000 )) ms)" test "$r" = 0 -a $(( (t1 - t0) / 1000000 )) -lt 3000
}
hold() {  # hold MODE JOB: mallory opens 300 connections; sets hpid
  as_user "$M" rm -f "$MH/hold.ready" "$MH/hold.stop"
  as_user "$M" "$PY" -c "$HOLD_PY" "$SOCK" 300 "$1" "${2:--}" "$MH/hold.ready" "$MH/hold.stop" &
  hpid=$!; e2e_track "$hpid"
  e2e_wait_for 20 test -s "$MH/hold.ready"; settle
  echo "# starvation ($1): mallory holds $(tr -d '\n' <"$MH/hold.ready" 2>/dev/null) connections; cordond has $(daemon_fds) fds" >&2
}
unhold() { as_user "$M" touch "$MH/hold.stop"; e2e_wait_for 5 e2e_gone "$hpid" || kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null; }
sec_starvation() {
  e2e_spec "$T/specs/quick.yaml" image="$AI" out="$AOUT" input="$AIN" sh='exit 0'
  served_fast "baseline, nobody flooding: cordon status" "$C" status
  hold idle
  served_fast "300 idle connections: cordon status" "$C" status
  served_fast "300 idle connections: cordon submit" "$C" submit "$T/specs/quick.yaml"
  unhold
  check "starvation: once mallory's idle connections close, cordond serves within 3 s" e2e_wait_for 3 e2e_ping
  e2e_wait_for 15 e2e_ping
  e2e_spec "$T/specs/long.yaml" image="$MI" out="$MOUT" input="$MIN" sh='sleep 8'
  submit_as "$M" "$T/specs/long.yaml"; local long="$JOB"
  hold wait "$long"
  served_fast "300 wait requests: cordon status" "$C" status
  served_fast "300 wait requests: cordon submit" "$C" submit "$T/specs/quick.yaml"
  unhold
  check "starvation: once mallory's waiting connections close, cordond serves within 3 s" e2e_wait_for 3 e2e_ping
  e2e_wait_for 10 "$C" cancel "$long" >/dev/null 2>&1   # (a starved daemon may refuse even root)
  wait_final "$long" 30
  check "starvation: cordond alive after the flood" e2e_wait_for 10 e2e_ping
}

# ---------------------------------------------------------------- 8. reserved names, and a flood of outputs
sec_stageout() {
  local lm; lm=$(e2e_marker LOG)
  e2e_spec "$T/specs/reserved.yaml" image="$AI" out="$AOUT" input="$AIN" \
    sh="mkdir /out/manifest.json /out/trainer.log.sealed; echo $lm; echo ok >/out/r.txt; exit 0"
  submit_as "$A" "$T/specs/reserved.yaml"; local job="$JOB"
  wait_final "$job" 30
  check "stageout: reserved names in /out: the job still succeeds ($(e2e_state "$job"))" test "$(e2e_state "$job")" = succeeded
  local od; od=$(output_dir_of "$job" "$AOUT")
  check "stageout: manifest.json still written (a regular file, valid JSON)" \
    sh -c '[ -f "$1/manifest.json" ] && [ ! -L "$1/manifest.json" ] && "$2" -m json.tool "$1/manifest.json" >/dev/null 2>&1' - "$od" "$PY"
  check "stageout: the trainer log still reaches alice" has "$(as_user "$A" timeout 20 "$C" logs "$job" 2>/dev/null)" "$lm"

  local argv
  argv=$("$PY" -c 'import json; print(json.dumps(["/usr/bin/python3", "-c", "import os\nfor i in range(30000): os.close(os.open(\"/out/f%05d\" % i, os.O_CREAT | os.O_WRONLY, 0o644))"]))')
  e2e_spec "$T/specs/flood.yaml" image="$AI" out="$AOUT" input="$AIN" argv="$argv" timeout=5s scratch=64Mi memory=512Mi
  submit_as "$A" "$T/specs/flood.yaml"; job="$JOB"
  e2e_wait_for 20 not_queued "$job"
  # timeout (5 s) + a bounded stage-out deadline (here: 40 s on a loaded 2-core machine)
  local t0 t1; t0=$(date +%s)
  if wait_final "$job" 45; then
    t1=$(date +%s)
    pass "stageout: 30,000 files: the job ended within timeout + a bounded stage-out deadline ($((t1 - t0)) s)"
  else
    fail "stageout: 30,000 files: the job ended within timeout + a bounded stage-out deadline (still $(e2e_state "$job") after 45 s)"
    "$C" cancel "$job" >/dev/null 2>&1; wait_final "$job" 40
  fi
  check "stageout: 30,000 files: the job is final, never left running" e2e_is_final "$job"
  local n; n=$("$C" audit show --job "$job" --json 2>/dev/null | wc -l)
  check "stageout: 30,000 files: fewer than 100 audit entries for the job (got $n)" test "$n" -lt 100
}

# ---------------------------------------------------------------- the confused deputy
sec_confused_deputy() {
  e2e_spec "$T/specs/deputy.yaml" image="$AI" out="$AOUT" input="$T/shared/customers-rootonly.sealed" \
    sh='cat /data/customers; exit 0'
  check "confused_deputy: (alice really cannot read the file)" sh -c '! runuser -u "$1" -- cat "$2" >/dev/null 2>&1' - "$A" "$T/shared/customers-rootonly.sealed"
  submit_as "$A" "$T/specs/deputy.yaml"
  check "confused_deputy: a granted dataset in a file alice cannot read is refused (3; got $rc)" test "$rc" = 3
  if_it_ran "confused_deputy: its plaintext never reaches alice" "$DMARK" "$A"
  # Places inside alice's grants that she cannot open herself (root's 0700 dirs):
  # the grant names the place, her own permissions still apply.
  mkdir -m 0700 "$AIMG/rootonly" "$AOUT/rootonly"
  echo "$DMARK" >"$AIMG/rootonly/weights.txt"
  e2e_spec "$T/specs/deputyimg.yaml" image="$AIMG/rootonly" out="$AOUT" input="$AIN" sh='cat /job/weights.txt; exit 0'
  submit_as "$A" "$T/specs/deputyimg.yaml"
  check "confused_deputy: an image inside the grant that alice cannot open is refused (3; got $rc)" test "$rc" = 3
  if_it_ran "confused_deputy: that image's files never reach alice" "$DMARK" "$A"
  e2e_spec "$T/specs/deputyout.yaml" image="$AI" out="$AOUT/rootonly" input="$AIN" sh='exit 0'
  submit_as "$A" "$T/specs/deputyout.yaml"
  check "confused_deputy: an output.path inside the grant that alice cannot open is refused (3; got $rc)" test "$rc" = 3
  if_it_ran
  check "confused_deputy: root wrote nothing there for alice" test -z "$(ls -A "$AOUT/rootonly")"
  rm -rf "$AIMG/rootonly" "$AOUT/rootonly"
  # The same through the spool: the spec file's owner is the submitter.
  e2e_spec "$T/specs/deputyspool.yaml" image="$AI" out="$AOUT" input="$T/shared/customers-rootonly.sealed" \
    sh='cat /data/customers; exit 0'
  as_user "$A" sh -c 'cp "$1" "$2/.deputy.tmp" && mv "$2/.deputy.tmp" "$2/deputy.yaml"' - "$T/specs/deputyspool.yaml" "$SPOOL_DIR/incoming"
  e2e_wait_for 10 spool_job deputyspool >/dev/null
  local sj; sj=$(spool_job deputyspool)
  check "confused_deputy: the spool took alice's spec" test -n "$sj"
  if [ -n "$sj" ]; then
    wait_final "$sj" 30
    check "confused_deputy: via the spool too, refused (state $(e2e_state "$sj"), outcome $(job_field "$sj" outcome))" \
      test "$(e2e_state "$sj")/$(job_field "$sj" outcome)" = rejected/denied
    check "confused_deputy: via the spool, its plaintext never reaches alice" hasnt "$(as_user "$A" timeout 20 "$C" logs "$sj" 2>&1)" "$DMARK"
    cleanup_job "$sj"
  fi
  # Root's own `cordon run` keeps working as before on the same file.
  e2e_spec "$W/deputy-root.yaml" image="$AI" out="$W/rootout" input="$T/shared/customers-rootonly.sealed" sh='exit 0'
  "$C" run --json "$W/deputy-root.yaml" >"$W/deputy-root.json" 2>"$W/deputy-root.err"
  check "confused_deputy: root's cordon run of a root-only input still works" test "$(jget "$W/deputy-root.json" 'd["outcome"]' 2>/dev/null)" = succeeded
}

for s in "${sections[@]}"; do run_section "$s"; done
e2e_daemon_stop
e2e_summary
