#!/usr/bin/env bash
# End-to-end tests of cordond with the real daemon process: submission by the
# socket and the spool from several uids, the access policy, hostile clients,
# cancel, logs, SIGHUP, fairness, the 100-job load test, kill -9 recovery,
# SIGTERM, sd_notify, scripts/install.
#
#   daemon_test.sh [--bin BIN_DIR] [SECTION...]     (default: every section)
#   sections: startup submit uids policy hostile spool cancel sighup fairness
#             load kill9 sigterm sd_notify install metrics
# Each section starts from its own fresh installation and daemon (fresh), so
# any one runs alone: ctest -R '^daemon\.cancel$', or daemon_test.sh cancel.
# Other uids are plain numbers (no accounts): files are chown'd to them and
# clients run under setpriv (as_uid). BIN_DIR defaults to build/bin of this
# tree. Needs root. KEEP=1 keeps the temp dir; E2E_VERBOSE=1 prints passes.
set -uo pipefail
SECTIONS_ALL=(startup submit uids policy hostile spool cancel sighup fairness load kill9 sigterm sd_notify install metrics)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/e2e.sh"
e2e_sections daemon "$@"   # [--bin BIN_DIR] [SECTION...]: sets BIN and sections
e2e_init "$BIN" daemon
command -v setpriv >/dev/null || e2e_skip "setpriv missing"
img="$src/tests/runner/trainers/sh"
DFLAGS=(--grace 3s --request-timeout 2s)

# ---------------------------------------------------------------- the world
# fresh SECTION [--no-daemon]: a new installation under $T/SECTION (W) with
# keys datasets/models/other, two sealed datasets, the policy below and, unless
# --no-daemon, a running cordond. MARK: in trainer output; DMARK: only ever in
# the plaintext input.
fresh() {
  W="$T/$1"
  mkdir -m 0755 "$W" "$W/sealed" "$W/specs" && mkdir -m 0777 "$W/out" || return 1
  e2e_install "$W/inst" || return 1
  INIT_POLICY=$(cat "$INST/policy.yaml" 2>/dev/null)  # what init wrote, checked by startup
  INIT_POLICY_FILE=0; [ -f "$INST/policy.yaml" ] && INIT_POLICY_FILE=1
  e2e_sealed_world "$W/sealed" datasets models other || return 1
  cat >"$INST/policy.yaml" <<POL
admins:
  uids: [0]
users:
  - uids: [0]
    datasets: ["*"]
    keys: ["*"]
    outputs: ["*"]
    images: ["*"]
  - uids: [4001, 4002]
    datasets: [customers]
    keys: [kms://local/datasets, kms://local/models]
    outputs: [$W/out]
    images: [$src/tests/runner/trainers]
    max_memory: 1Gi
POL
  [ "${2:-}" = --no-daemon ] || e2e_daemon_start "${DFLAGS[@]}"
}
grant_4003() { printf '  - uids: [4003]\n    datasets: [customers]\n    keys: ["*"]\n    outputs: ["*"]\n    images: ["*"]\n' >>"$INST/policy.yaml"; }

# spec NAME SHELL [input=PATH] [key=REF] [memory=M]: writes $W/specs/NAME.yaml (0644)
spec() {
  local name="$1" sh="$2"; shift 2
  case "$*" in *input=*) ;; *) set -- input="$W/sealed/customers.sealed" "$@" ;; esac
  e2e_spec "$W/specs/$name.yaml" image="$img" sh="$sh" out="$W/out" "$@"
}
as() { as_uid "$@"; }
state() { e2e_state "$1"; }
submit() { "$C" submit "$1" 2>/dev/null | tail -n1; }            # submit SPEC: the job id
submit_as() { as "$1" "$C" submit "$2" 2>/dev/null | tail -n1; }  # submit_as UID SPEC
drop() {  # drop SPEC_NAME UID: write a temp name, chown, rename into incoming/
  local tmp="$SPOOL_DIR/incoming/.$1.$2.tmp"
  cp "$W/specs/$1.yaml" "$tmp" && chown "$2:$2" "$tmp" && mv "$tmp" "$SPOOL_DIR/incoming/$1-$2-$RANDOM.yaml"
}
trainer_running() { pgrep -f "$1" >/dev/null; }
trainers_running() { [ "$(pgrep -fc "$1")" -ge "$2" ]; }
no_trainer() { ! pgrep -f "$1" >/dev/null; }

# ---------------------------------------------------------------- sections
# startup: what init wrote; a second cordond on the same state refuses.
sec_startup() {
  fresh startup || return 1
  check "init wrote a policy" test "$INIT_POLICY_FILE" = 1
  check "init policy names the invoking uid" grep -q "uids: \[$(id -u)\]" <<<"$INIT_POLICY"
  "$bin/cordond" --config "$CFG" 2>"$W/second.err"; local rc=$?
  check "a second cordond on the same state refuses (1)" test "$rc" = 1
  check "a second cordond says why" grep -q "another cordond" "$W/second.err"
  check "the first still serves" "$C" status >/dev/null
}

# submit: a job through the socket, end to end; a big log to a slow reader.
sec_submit() {
  fresh submit || return 1
  spec hello "cat /data/customers; echo $MARK; exit 0"
  local id idb logs rc
  id=$(submit "$W/specs/hello.yaml")
  check "submit prints a job id" has "$id" "hello-"
  "$C" wait "$id" >/dev/null; rc=$?
  check "wait: succeeded exit 0" test "$rc" = 0
  check "status: succeeded" test "$(state "$id")" = succeeded
  logs=$("$C" logs "$id" 2>/dev/null)
  check "logs unseals the trainer log" has "$logs" "$MARK"
  check "status --json is an array with the fields" "$PY" -c '
import json,subprocess,sys
a=json.loads(subprocess.run([sys.argv[1],"status","--json"],capture_output=True).stdout)
assert isinstance(a,list) and a and all({"job_id","name","state","outcome","submitter"} <= set(j) for j in a)' "$C"
  spec biglog "yes x | head -c 3000000; exit 0"
  idb=$(submit "$W/specs/biglog.yaml")
  "$C" wait "$idb" >/dev/null
  check "logs: a 3 MB log reaches a slow reader whole" test "$("$C" logs "$idb" 2>/dev/null | (sleep 1; wc -c))" = 3000000
}

# metrics: `cordon status JOB` shows a running job's latest accepted metrics.
sec_metrics() {
  fresh metrics || return 1
  e2e_spec "$W/specs/live.yaml" image="$img" out="$W/out" metrics='[epoch, loss]' \
    sh='echo "{\"epoch\": 3, \"loss\": 0.25, \"row\": 7}" >>$CORDON_METRICS; sleep 5'
  local id; id=$(submit "$W/specs/live.yaml")
  shows() { has "$("$C" status "$id" 2>/dev/null)" "metrics: epoch=3 loss=0.25"; }
  check "status: a running job's latest metrics (declared names only)" e2e_wait_for 20 shows
  check "status --json: metrics" test "$("$C" status "$id" --json 2>/dev/null | jget - 'sorted(d["metrics"].items())')" = "[('epoch', 3), ('loss', 0.25)]"
  check "status: the job is still running" test "$(state "$id")" = running
  e2e_wait_for 30 e2e_is_final "$id"
  check "status: a finished job's memory and scratch use" has "$("$C" status "$id" 2>/dev/null)" "limit 272 MiB; scratch: peak "
  check "status --json: resources" test "$("$C" status "$id" --json 2>/dev/null | jget - 'd["resources"]["scratch"]["size_bytes"]')" = $((16 << 20))
}

# uids: identity from SO_PEERCRED; visibility; logs.
sec_uids() {
  fresh uids || return 1
  spec hello "cat /data/customers; echo $MARK; exit 0"
  local id1 rc
  id1=$(submit_as 4001 "$W/specs/hello.yaml")
  check "uid 4001 may submit" has "$id1" "hello-"
  "$C" wait "$id1" >/dev/null
  check "submitter recorded from SO_PEERCRED" test "$("$C" status "$id1" --json | jget - 'd["submitter"]')" = 4001
  as 4002 "$C" status "$id1" >/dev/null 2>&1; rc=$?
  check "uid 4002 cannot see 4001's job (4)" test "$rc" = 4
  as 4002 "$C" logs "$id1" >/dev/null 2>&1; rc=$?
  check "uid 4002 cannot read 4001's logs (4)" test "$rc" = 4
  check "uid 4001 reads its own logs" has "$(as 4001 "$C" logs "$id1" 2>/dev/null)" "$MARK"
  check "uid 4001's list holds only its jobs" test "$(as 4001 "$C" status --json | jget - 'sorted({j["submitter"] for j in d})')" = "[4001]"
  check "accepted submission audited with the caller's uid" "$PY" -c '
import json,subprocess,sys
sub={(e["actor"]["uid"],e["outcome"]) for e in map(json.loads,subprocess.run([sys.argv[1],"audit","show","--json","--action","job.submitted"],capture_output=True,text=True).stdout.splitlines())}
assert (4001,"accepted") in sub, sub' "$C"
}

# policy: refusals of a malformed spec, a dataset, a key, a size, a uid.
sec_policy() {
  fresh policy || return 1
  spec hello "exit 0"
  local rc
  printf 'apiVersion: cordon/v1\nkind: TrainingJob\nmetadata: {name: bad}\nspec: {bogus: 1}\n' >"$W/specs/malformed.yaml"; chmod 0644 "$W/specs/malformed.yaml"
  as 4001 "$C" submit "$W/specs/malformed.yaml" >/dev/null 2>"$W/err"; rc=$?
  check "malformed spec refused (2)" test "$rc" = 2
  check "malformed spec error names the problem" grep -q bogus "$W/err"
  spec payroll "exit 0" input="$W/sealed/payroll.sealed"
  as 4001 "$C" submit "$W/specs/payroll.yaml" >/dev/null 2>"$W/err"; rc=$?
  check "forbidden dataset refused (3)" test "$rc" = 3
  check "forbidden dataset error names it" grep -q payroll "$W/err"
  spec otherkey "exit 0" key=kms://local/other
  as 4002 "$C" submit "$W/specs/otherkey.yaml" >/dev/null 2>&1; rc=$?
  check "forbidden output key refused (3)" test "$rc" = 3
  spec big "exit 0" memory=2Gi
  as 4002 "$C" submit "$W/specs/big.yaml" >/dev/null 2>&1; rc=$?
  check "memory over the ceiling refused (3)" test "$rc" = 3
  as 4003 "$C" submit "$W/specs/hello.yaml" >/dev/null 2>"$W/err"; rc=$?
  check "uid with no policy refused (3)" test "$rc" = 3
  check "refusal names the uid" grep -q "uid 4003" "$W/err"
  check "refused submissions audited with the caller's uid" "$PY" -c '
import json,subprocess,sys
sub={(e["actor"]["uid"],e["outcome"]) for e in map(json.loads,subprocess.run([sys.argv[1],"audit","show","--json","--action","job.submitted"],capture_output=True,text=True).stdout.splitlines())}
assert {(4001,"invalid_spec"),(4001,"denied"),(4002,"denied"),(4003,"denied")} <= sub, sub' "$C"
}

# hostile: forged identity, a 10 MiB line, a silent client.
client() {  # client UID MODE [READY_FILE]: raw protocol client; prints the reply line
  as "$1" "$PY" - "$SOCK" "$2" "${3:-}" <<'PYC'
import json, os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); mode = sys.argv[2]
if sys.argv[3]: os.close(os.open(sys.argv[3], os.O_CREAT | os.O_WRONLY, 0o644))  # connected
if mode == "forged": s.sendall(b'{"op":"submit","spec":"x","uid":0}\n')
elif mode == "forged-submitter": s.sendall(b'{"op":"status","submitter":0}\n')
elif mode == "huge":
    try: s.sendall(b"A" * (10 << 20))
    except OSError: pass
s.settimeout(10)  # "silent" sends nothing and only waits for the daemon's answer
data = b""
try:
    while not data.endswith(b"\n"):
        c = s.recv(65536)
        if not c: break
        data += c
except OSError: pass
print(data.decode(errors="replace").strip())
PYC
}
sec_hostile() {
  fresh hostile || return 1
  spec hello "exit 0"
  local r spid id2
  r=$(client 4001 forged)
  check "forged uid field refused" has "$r" '"code":"denied"'
  check "forged uid field says why" has "$r" "SO_PEERCRED"
  r=$(client 4001 forged-submitter)
  check "forged submitter field refused" has "$r" '"code":"denied"'
  r=$(client 4001 huge)
  check "10 MiB request line refused" has "$r" "over 1 MiB"
  mkdir -m 0777 "$W/silent"
  client 4002 silent "$W/silent/connected" >"$W/silent.out" &
  spid=$!; e2e_track "$spid"
  e2e_wait_for 5 test -e "$W/silent/connected"
  id2=$(submit_as 4002 "$W/specs/hello.yaml")
  check "others served while a client is silent" has "$id2" "hello-"
  wait "$spid"
  check "silent client dropped with a timeout" grep -q '"code":"timeout"' "$W/silent.out"
  check "daemon alive after hostile clients" kill -0 "$DPID"
  check "refusals audited with the caller's uid" "$PY" -c '
import json,subprocess,sys
show=lambda a: [json.loads(l) for l in subprocess.run([sys.argv[1],"audit","show","--json","--action",a],capture_output=True,text=True).stdout.splitlines()]
ref=[(e["actor"]["uid"],e["details"]["reason"]) for e in show("request.refused")]
assert sum(u==4001 and "forged" in r for u,r in ref)==2 and any(u==4001 and "1 MiB" in r for u,r in ref) and any(u==4002 and "timeout" in r for u,r in ref), ref
sub={(e["actor"]["uid"],e["outcome"]) for e in show("job.submitted")}
assert (4002,"accepted") in sub, sub' "$C"
}

# spool: the owner is the submitter; malformed and links go to rejected/.
spool_empty() { [ -z "$(ls "$SPOOL_DIR/incoming")" ]; }
n_errors() { ls "$SPOOL_DIR/rejected" | grep -c '\.error$'; }
errors_ge() { [ "$(n_errors)" -ge "$1" ]; }
rejected_says() { grep -qs -- "$1" "$SPOOL_DIR/rejected/"*.error; }  # the glob expands at each call
spool_jobs_of() { as "$1" "$C" status --json 2>/dev/null | jget - 'sum(j["via"]=="spool" for j in d)' 2>/dev/null; }
spool_jobs_are() { [ "$(spool_jobs_of "$1")" = "$2" ]; }
sec_spool() {
  fresh spool || return 1
  spec hello "exit 0"
  printf 'apiVersion: cordon/v1\nkind: TrainingJob\nmetadata: {name: bad}\nspec: {bogus: 1}\n' >"$W/specs/malformed.yaml"; chmod 0644 "$W/specs/malformed.yaml"
  drop hello 4002
  cp "$W/specs/malformed.yaml" "$SPOOL_DIR/incoming/.m.tmp" && chown 4001 "$SPOOL_DIR/incoming/.m.tmp" &&
    mv "$SPOOL_DIR/incoming/.m.tmp" "$SPOOL_DIR/incoming/malformed.yaml"
  ln -s /etc/shadow "$SPOOL_DIR/incoming/.link" && mv "$SPOOL_DIR/incoming/.link" "$SPOOL_DIR/incoming/link.yaml"
  e2e_wait_for 5 spool_empty
  e2e_wait_for 5 errors_ge 2
  check "spool emptied" spool_empty
  check "malformed spool spec in rejected/ with .error" errors_ge 2
  drop hello 4005
  e2e_wait_for 5 rejected_says "uid 4005 is not in the policy"
  check "spool file of a uid with no policy: rejected with the reason" rejected_says "denied: uid 4005 is not in the policy"
  e2e_wait_for 5 spool_jobs_are 4002 1
  check "spool job's submitter is the file owner" spool_jobs_are 4002 1
}

# cancel: only the submitter (or an admin) cancels; no trainer survives.
sec_cancel() {
  fresh cancel || return 1
  spec sleeper "echo $MARK-sleeper; sleep 30"
  local ids rc st
  ids=$(submit "$W/specs/sleeper.yaml")
  e2e_wait_for 10 trainer_running "$MARK-sleeper"
  as 4001 "$C" cancel "$ids" >/dev/null 2>&1; rc=$?
  check "another uid cannot cancel (4)" test "$rc" = 4
  "$C" cancel "$ids" >/dev/null
  "$C" wait "$ids" >/dev/null; rc=$?
  check "cancelled job: wait exits 16 (got $rc)" test "$rc" = 16
  st=$(state "$ids")
  check "cancelled job state (got $st)" test "$st" = cancelled
  check "cancelled: no trainer left" no_trainer "$MARK-sleeper"
}

# sighup: SIGHUP reloads the policy; a broken one keeps the old.
sec_sighup() {
  fresh sighup || return 1
  spec hello "exit 0"
  local id3 id4
  grant_4003
  check "SIGHUP: the reload is audited and the daemon answers" e2e_reload
  id3=$(submit_as 4003 "$W/specs/hello.yaml")
  check "SIGHUP: uid 4003 granted" has "$id3" "hello-"
  cp "$INST/policy.yaml" "$W/policy.good"; echo "users: [" >"$INST/policy.yaml"
  check "SIGHUP: a broken policy's reload is audited and the daemon answers" e2e_reload
  check "SIGHUP: the broken policy's reload is audited as failed" test "$("$C" audit show --json --action policy.reloaded | tail -n1 | jget - 'd["outcome"]')" = failed
  id4=$(submit_as 4003 "$W/specs/hello.yaml")
  check "SIGHUP: a broken policy keeps the old one" has "$id4" "hello-"
  cp "$W/policy.good" "$INST/policy.yaml"
  e2e_wait_for 30 e2e_all_final
}

# fairness: with one slot, uid 4002's single job overtakes uid 4001's backlog.
sec_fairness() {
  fresh fairness || return 1
  e2e_cfg_set max_concurrent_jobs 1
  check "fair queue: max_concurrent_jobs 1 reloaded" e2e_reload
  spec nap "sleep 0.3"
  local fair=() late before=0 f
  for _ in $(seq 5); do fair+=("$(submit_as 4001 "$W/specs/nap.yaml")"); done
  late=$(submit_as 4002 "$W/specs/nap.yaml")
  "$C" wait "$late" >/dev/null
  for f in "${fair[@]}"; do [ "$(state "$f")" = succeeded ] && before=$((before + 1)); done
  check "fair queue: 4002 ran after at most 2 of 4001's 5 jobs (ran $before)" test "$before" -le 2
  for f in "${fair[@]}"; do "$C" wait "$f" >/dev/null; done
}

# load: 100 specs at once, by spool and socket, from four uids.
ntiny() { "$C" status --json | jget - '"%d %d" % (len([j for j in d if j["name"]=="tiny"]), sum(j["state"] in ("succeeded","failed","cancelled","interrupted","rejected") for j in d if j["name"]=="tiny"))'; }
tiny_done() { local total final; read -r total final <<<"$(ntiny)"; [ "$final" -ge 100 ] && [ "$final" = "$total" ]; }
sec_load() {
  fresh load --no-daemon || return 1
  grant_4003
  e2e_daemon_start "${DFLAGS[@]}" || return 1
  spec tiny "exit 0"
  local t0 t1 i u pids=() total final
  t0=$(date +%s.%N)
  for i in $(seq 25); do drop tiny 4001; drop tiny 4002; done
  for i in $(seq 16); do
    for u in 0 4001 4002; do as "$u" "$C" submit "$W/specs/tiny.yaml" >/dev/null 2>&1 & pids+=($!); done
  done
  as 4003 "$C" submit "$W/specs/tiny.yaml" >/dev/null 2>&1 & pids+=($!)
  as 4003 "$C" submit "$W/specs/tiny.yaml" >/dev/null 2>&1 & pids+=($!)
  wait "${pids[@]}"  # not the daemon
  e2e_wait_for 60 tiny_done
  t1=$(date +%s.%N)
  read -r total final <<<"$(ntiny)"
  check "load: 100 tiny jobs recorded, no duplicates" test "$total" = 100
  check "load: every job final" test "$final" = 100
  check "load: all succeeded" test "$("$C" status --json | jget - 'sum(j["state"]=="succeeded" for j in d if j["name"]=="tiny")')" = 100
  echo "load: 100 jobs in $(echo "$t1 - $t0" | bc) s" >&2
  check "load: audit log verifies" e2e_audit_verify
  check "load: status agrees with the audit log" "$PY" -c '
import json,subprocess,sys
jobs={j["job_id"]:j["state"] for j in json.loads(subprocess.run([sys.argv[1],"status","--json"],capture_output=True).stdout)}
audit={}
for line in subprocess.run([sys.argv[1],"audit","show","--json","--action","job.completed"],capture_output=True,text=True).stdout.splitlines():
    e=json.loads(line); audit.setdefault(e["job"],[]).append(e["outcome"])
ran={k:v for k,v in jobs.items() if v in ("succeeded","failed","cancelled")}
assert all(len(audit.get(k,[]))==1 and audit[k][0]==v for k,v in ran.items()), [(k,v,audit.get(k)) for k,v in ran.items() if audit.get(k)!=[v]]
assert set(audit) <= set(jobs)' "$C"
}

# kill9: cordond killed while two jobs run and one waits; the restart recovers.
victims_running() { [ "$(state "$1")" = running ] && trainers_running "$MARK-victim" 2; }
sec_kill9() {
  fresh kill9 || return 1
  spec victim "cat /data/customers >/dev/null; echo $MARK-victim; sleep 60"
  spec tiny "exit 0"
  local v1 v2 q1 rc
  v1=$(submit "$W/specs/victim.yaml")
  v2=$(submit_as 4001 "$W/specs/victim.yaml")
  q1=$(submit "$W/specs/tiny.yaml")
  e2e_wait_for 10 victims_running "$v2"
  check "kill -9: victims running" test "$(state "$v1")/$(state "$v2")/$(state "$q1")" = running/running/queued
  kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=""
  e2e_wait_for 5 no_trainer "$MARK-victim"
  check "kill -9: no trainer left alive" no_trainer "$MARK-victim"
  check "kill -9: no runner left alive" test -z "$(pgrep -f -- "--job-id $v1")$(pgrep -f -- "--job-id $v2")"
  check "kill -9: no plaintext left (/tmp, /dev/shm, /var/tmp, the installation)" test -z "$(grep -rlaF "$DMARK" /tmp /dev/shm /var/tmp "$T" 2>/dev/null)"
  e2e_daemon_start "${DFLAGS[@]}"
  check "restart: running jobs interrupted" test "$(state "$v1")/$(state "$v2")" = interrupted/interrupted
  "$C" wait "$q1" >/dev/null
  check "restart: the queued job ran" test "$(state "$q1")" = succeeded
  "$C" wait "$v1" >/dev/null; rc=$?
  check "wait on an interrupted job exits 17" test "$rc" = 17
  check "restart: audit records the interruption" has "$("$C" audit show --job "$v1" 2>/dev/null)" "interrupted"
  check "kill -9: audit log verifies" e2e_audit_verify
  check "no job duplicated" test "$("$C" status --json | jget - '(lambda a: len(a)==len(set(a)))([j["job_id"] for j in d])')" = True
}

# sigterm: a short job finishes within the grace; a long one is cancelled.
sec_sigterm() {
  fresh sigterm || return 1
  spec short "sleep 1; exit 0"
  spec sleeper "echo $MARK-sleeper; sleep 30"
  spec tiny "exit 0"
  local s1 l1 q2 cps rc
  s1=$(submit "$W/specs/short.yaml")
  l1=$(submit "$W/specs/sleeper.yaml")
  q2=$(submit "$W/specs/tiny.yaml")
  e2e_wait_for 10 e2e_is_running "$l1"
  cps=$(wc -l <"$AUDIT_DIR/checkpoints" 2>/dev/null || echo 0)
  kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=""
  check "SIGTERM: clean exit 0" test "$rc" = 0
  check "SIGTERM: final checkpoint written" test "$(wc -l <"$AUDIT_DIR/checkpoints")" -gt "$cps"
  check "SIGTERM: socket removed" test ! -e "$SOCK"
  check "SIGTERM: no trainer left" no_trainer "$MARK-sleeper"
  e2e_daemon_start "${DFLAGS[@]}"
  check "SIGTERM: short job finished in the grace period" test "$(state "$s1")" = succeeded
  check "SIGTERM: long job cancelled after the grace period" test "$(state "$l1")" = cancelled
  "$C" wait "$q2" >/dev/null
  check "SIGTERM: queued job kept and run after restart" test "$(state "$q2")" = succeeded
  check "SIGTERM: audit log verifies" e2e_audit_verify
}

# sd_notify: READY, STATUS, WATCHDOG, RELOADING, STOPPING on a fake NOTIFY_SOCKET.
notified() { grep -qF -- "$1" "$W/notify.out" 2>/dev/null; }
watchdogs_ge() { [ "$(grep -c WATCHDOG=1 "$W/notify.out" 2>/dev/null)" -ge "$1" ]; }
up_and_watched() { notified READY=1 && notified "STATUS=" && watchdogs_ge 3; }
sec_sd_notify() {
  fresh sd_notify --no-daemon || return 1
  local npid n
  "$PY" - "$W/notify.sock" "$W/notify.out" "$W/notify.stop" <<'PYN' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(0.05)
end = time.time() + 30
with open(sys.argv[2], "w") as out:
    while time.time() < end and not os.path.exists(sys.argv[3]):
        try: out.write(s.recv(4096).decode() + "\n"); out.flush()
        except socket.timeout: pass
    s.setblocking(False)
    while True:  # what is already queued
        try: out.write(s.recv(4096).decode() + "\n")
        except OSError: break
PYN
  npid=$!; e2e_track "$npid"
  e2e_wait_for 5 test -S "$W/notify.sock"
  NOTIFY_SOCKET="$W/notify.sock" WATCHDOG_USEC=200000 bash -c 'export WATCHDOG_PID=$$; exec "$0" --config "$1" 2>>"$2"' \
    "$bin/cordond" "$CFG" "$T/daemon.log" &
  DPID=$!
  e2e_wait_for 10 up_and_watched
  kill -HUP "$DPID"; e2e_wait_for 5 notified RELOADING=1
  kill -TERM "$DPID"; wait "$DPID"; DPID=""
  touch "$W/notify.stop"; e2e_wait_for 5 e2e_gone "$npid" || kill "$npid" 2>/dev/null; wait "$npid" 2>/dev/null
  n=$(cat "$W/notify.out")
  check "sd_notify READY=1" has "$n" "READY=1"
  check "sd_notify STATUS=" has "$n" "STATUS=0 running, 0 queued"
  check "sd_notify WATCHDOG=1 repeatedly" test "$(grep -c WATCHDOG=1 <<<"$n")" -ge 3
  check "sd_notify RELOADING=1" has "$n" "RELOADING=1"
  check "sd_notify STOPPING=1" has "$n" "STOPPING=1"
}

# install: scripts/install into a staged tree; the installed unit verifies.
sec_install() {
  command -v systemd-analyze >/dev/null || { echo "# install: systemd-analyze missing, nothing checked"; return 0; }
  W="$T/install"; mkdir -m 0755 "$W"
  "$src/scripts/install" --build "$(dirname "$bin")" --prefix "$W/prefix" --root "$W/root" --etc "$W/etc" >"$W/install.out" 2>&1
  check "install: exit 0" test "$?" = 0
  check "install: binaries" test -x "$W/prefix/bin/cordond" -a -x "$W/prefix/bin/cordon"
  check "install: config link, policy, socket" test "$(sed -n 's/^ *socket: *//p' "$W/etc/cordon/cordon.yaml")" = /run/cordon/cordon.sock -a -f "$W/root/policy.yaml"
  check "install: unit points at the staged binary" grep -q "ExecStart=$W/prefix/bin/cordond --config $W/etc/cordon/cordon.yaml" "$W/etc/systemd/system/cordond.service"
  check "install: systemd-analyze verify" systemd-analyze verify "$W/etc/systemd/system/cordond.service"
  check "install: policy valid" "$W/prefix/bin/cordond" --check-config --config "$W/etc/cordon/cordon.yaml"
  echo "$(systemd-analyze security --offline=yes "$W/etc/systemd/system/cordond.service" 2>/dev/null | tail -n1)" >&2
}

# run_section S: the section, then its daemon (if still up) is stopped once its jobs are final.
run_section() {
  local s="$1" n0=$((E2E_PASS + E2E_FAIL)) t0; t0=$(date +%s%N)
  echo "# --- $s"
  "sec_$s" || fail "$s: set-up failed"
  if [ -n "$DPID" ]; then
    check "$s: cordond still running at the end of the section" e2e_daemon_alive
    e2e_wait_for 30 e2e_all_final
    e2e_daemon_stop
  fi
  [ $((E2E_PASS + E2E_FAIL)) -gt "$n0" ] || SKIPPED+=("$s")
  echo "# $s: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}
SKIPPED=()
for s in "${sections[@]}"; do run_section "$s"; done
e2e_summary; rc=$?
[ "$rc" = 0 ] && [ ${#SKIPPED[@]} = ${#sections[@]} ] && e2e_skip "nothing checked in: ${SKIPPED[*]}"
exit "$rc"
