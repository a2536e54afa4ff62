#!/usr/bin/env bash
# End-to-end tests of cordond with the real daemon process: submission by the
# socket and the spool from several uids, the access policy, hostile clients,
# cancel, logs, SIGHUP, the 100-job load test, kill -9 recovery, SIGTERM.
#   daemon_test.sh BIN_DIR SOURCE_DIR
# Other uids are plain numbers (no accounts): files are chown'd to them and
# clients run under setpriv --reuid. Needs root.
set -uo pipefail
bin=$(cd "$1" && pwd); src=$(cd "$2" && pwd)
if [ "$(id -u)" != 0 ]; then echo "SKIP: cordond tests need root (sandbox, other uids)"; exit 77; fi
command -v setpriv >/dev/null || { echo "SKIP: setpriv missing"; exit 77; }
PY=/usr/bin/python3
T=$(mktemp -d /tmp/cordon-daemon-XXXXXX)
chmod 0755 "$T"
DPID=""
cleanup() {
  [ -n "$DPID" ] && kill -9 "$DPID" 2>/dev/null
  cd /; [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
pass=0; fail=0
check() { local name="$1"; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name" >&2; fi; }
has() { grep -qF -- "$2" <<<"$1"; }
C="$bin/cordon"

cfg=$("$C" init "$T/inst" 2>/dev/null)
export CORDON_CONFIG="$cfg"
check "init wrote a policy" test -f "$T/inst/policy.yaml"
check "init policy names the invoking uid" grep -q "uids: \[$(id -u)\]" "$T/inst/policy.yaml"
"$C" keys create datasets >/dev/null && "$C" keys create models >/dev/null && "$C" keys create other >/dev/null
SOCK=$(sed -n 's/^ *socket: *//p' "$cfg" | tr -d '"')
export CORDON_SOCKET="$SOCK"
mkdir -p "$T/sealed" "$T/specs" "$T/out" && chmod 0755 "$T/sealed" "$T/specs"
chmod 0777 "$T/out"
MARK="ZQX$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')MARK"
DMARK="DQX$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')DATA"  # only ever in the plaintext input
printf 'age,spend,note\n30,1.5,%s\n41,2.5,x\n' "$DMARK" | "$C" seal --key kms://local/datasets --name customers - "$T/sealed/customers.sealed" >/dev/null 2>&1
printf 'ssn\n123\n' | "$C" seal --key kms://local/datasets --name payroll - "$T/sealed/payroll.sealed" >/dev/null 2>&1
chmod 0644 "$T/sealed"/*.sealed
img="$src/tests/runner/trainers/sh"

cat >"$T/inst/policy.yaml" <<POL
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
    outputs: [$T/out]
    images: [$src/tests/runner/trainers]
    max_memory: 1Gi
POL

# spec NAME SHELL [input=PATH] [key=REF] [memory=M]: writes $T/specs/NAME.yaml (0644)
spec() {
  local name="$1" sh="$2" input="$T/sealed/customers.sealed" key=kms://local/models memory=256Mi; shift 2
  for kv in "$@"; do
    case "$kv" in input=*) input="${kv#input=}" ;; key=*) key="${kv#key=}" ;; memory=*) memory="${kv#memory=}" ;; esac
  done
  cat >"$T/specs/$name.yaml" <<SPEC
apiVersion: cordon/v1
kind: TrainingJob
metadata:
  name: $name
spec:
  trainer:
    image: $img
    command: [/bin/sh, -c, "$sh"]
  inputs:
    - name: customers
      path: $input
  output:
    path: $T/out
    key: $key
  resources: {memory: $memory, timeout: 60s, scratch: 16Mi, pids: 32}
SPEC
  chmod 0644 "$T/specs/$name.yaml"
}
as() { local uid="$1"; shift; setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"; }
start_daemon() {
  "$bin/cordond" --config "$cfg" --grace 3s --request-timeout 2s 2>>"$T/daemon.log" &
  DPID=$!
  for _ in $(seq 100); do [ -S "$SOCK" ] && "$C" status >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "cordond did not start:" >&2; tail -5 "$T/daemon.log" >&2; return 1
}
state() { "$C" status "$1" --json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
drop() {  # drop SPEC_NAME UID: write a temp name, chown, rename into incoming/
  local tmp="$T/inst/spool/incoming/.$1.$2.tmp"
  cp "$T/specs/$1.yaml" "$tmp" && chown "$2:$2" "$tmp" && mv "$tmp" "$T/inst/spool/incoming/$1-$2-$RANDOM.yaml"
}

start_daemon || exit 1

"$bin/cordond" --config "$cfg" 2>"$T/second.err"; rc=$?
check "a second cordond on the same state refuses (1)" test "$rc" = 1
check "a second cordond says why" grep -q "another cordond" "$T/second.err"
check "the first still serves" "$C" status

# --- a job through the socket, end to end ---
spec hello "cat /data/customers; echo $MARK; exit 0"
id=$("$C" submit "$T/specs/hello.yaml" 2>/dev/null | tail -n1)
check "submit prints a job id" has "$id" "hello-"
"$C" wait "$id" >/dev/null; rc=$?
check "wait: succeeded exit 0" test "$rc" = 0
check "status: succeeded" test "$(state "$id")" = succeeded
logs=$("$C" logs "$id" 2>/dev/null)
check "logs unseals the trainer log" has "$logs" "$MARK"
check "status --json is an array with the fields" "$PY" -c '
import json,subprocess,sys
a=json.loads(subprocess.run([sys.argv[1],"status","--json"],capture_output=True).stdout)
assert isinstance(a,list) and all({"job_id","name","state","outcome","submitter"} <= set(j) for j in a)' "$C"

spec biglog "yes x | head -c 3000000; exit 0"
idb=$("$C" submit "$T/specs/biglog.yaml" 2>/dev/null | tail -n1)
"$C" wait "$idb" >/dev/null
check "logs: a 3 MB log reaches a slow reader whole" test "$("$C" logs "$idb" 2>/dev/null | (sleep 1; wc -c))" = 3000000

# --- other uids: identity from SO_PEERCRED; visibility; logs ---
id1=$(as 4001 "$C" submit "$T/specs/hello.yaml" 2>/dev/null | tail -n1)
check "uid 4001 may submit" has "$id1" "hello-"
"$C" wait "$id1" >/dev/null
check "submitter recorded from SO_PEERCRED" test "$("$C" status "$id1" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["submitter"])')" = 4001
as 4002 "$C" status "$id1" >/dev/null 2>&1; rc=$?
check "uid 4002 cannot see 4001's job (4)" test "$rc" = 4
as 4002 "$C" logs "$id1" >/dev/null 2>&1; rc=$?
check "uid 4002 cannot read 4001's logs (4)" test "$rc" = 4
check "uid 4001 reads its own logs" has "$(as 4001 "$C" logs "$id1" 2>/dev/null)" "$MARK"
check "uid 4001's list holds only its jobs" test "$(as 4001 "$C" status --json | "$PY" -c 'import json,sys; print(sorted({j["submitter"] for j in json.load(sys.stdin)}))')" = "[4001]"

# --- policy refusals ---
printf 'apiVersion: cordon/v1\nkind: TrainingJob\nmetadata: {name: bad}\nspec: {bogus: 1}\n' >"$T/specs/malformed.yaml"; chmod 0644 "$T/specs/malformed.yaml"
as 4001 "$C" submit "$T/specs/malformed.yaml" >/dev/null 2>"$T/err"; rc=$?
check "malformed spec refused (2)" test "$rc" = 2
check "malformed spec error names the problem" grep -q bogus "$T/err"
spec payroll "exit 0" input="$T/sealed/payroll.sealed"
as 4001 "$C" submit "$T/specs/payroll.yaml" >/dev/null 2>"$T/err"; rc=$?
check "forbidden dataset refused (3)" test "$rc" = 3
check "forbidden dataset error names it" grep -q payroll "$T/err"
spec otherkey "exit 0" key=kms://local/other
as 4002 "$C" submit "$T/specs/otherkey.yaml" >/dev/null 2>&1; rc=$?
check "forbidden output key refused (3)" test "$rc" = 3
spec big "exit 0" memory=2Gi
as 4002 "$C" submit "$T/specs/big.yaml" >/dev/null 2>&1; rc=$?
check "memory over the ceiling refused (3)" test "$rc" = 3
as 4003 "$C" submit "$T/specs/hello.yaml" >/dev/null 2>"$T/err"; rc=$?
check "uid with no policy refused (3)" test "$rc" = 3
check "refusal names the uid" grep -q "uid 4003" "$T/err"

# --- hostile clients ---
client() {  # client UID MODE: raw protocol client; prints the reply line
  as "$1" "$PY" - "$SOCK" "$2" <<'PYC'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); mode = sys.argv[2]
if mode == "forged": s.sendall(b'{"op":"submit","spec":"x","uid":0}\n')
elif mode == "forged-submitter": s.sendall(b'{"op":"status","submitter":0}\n')
elif mode == "huge":
    try: s.sendall(b"A" * (10 << 20))
    except OSError: pass
elif mode == "silent": time.sleep(4)
s.settimeout(10)
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
r=$(client 4001 forged)
check "forged uid field refused" has "$r" '"code":"denied"'
check "forged uid field says why" has "$r" "SO_PEERCRED"
r=$(client 4001 forged-submitter)
check "forged submitter field refused" has "$r" '"code":"denied"'
r=$(client 4001 huge)
check "10 MiB request line refused" has "$r" "over 1 MiB"
client 4002 silent >"$T/silent.out" &
spid=$!
sleep 0.3
id2=$(as 4002 "$C" submit "$T/specs/hello.yaml" 2>/dev/null | tail -n1)
check "others served while a client is silent" has "$id2" "hello-"
wait "$spid"
check "silent client dropped with a timeout" grep -q '"code":"timeout"' "$T/silent.out"
check "daemon alive after hostile clients" kill -0 "$DPID"
check "refusals audited with the caller's uid" "$PY" -c '
import json,subprocess,sys
show=lambda a: [json.loads(l) for l in subprocess.run([sys.argv[1],"audit","show","--json","--action",a],capture_output=True,text=True).stdout.splitlines()]
ref=[(e["actor"]["uid"],e["details"]["reason"]) for e in show("request.refused")]
assert sum(u==4001 and "forged" in r for u,r in ref)==2 and any("1 MiB" in r for u,r in ref) and any(u==4002 and "timeout" in r for u,r in ref), ref
sub={(e["actor"]["uid"],e["outcome"]) for e in show("job.submitted")}
assert {(4001,"invalid_spec"),(4001,"denied"),(4003,"denied"),(4001,"accepted")} <= sub, sub' "$C"

# --- spool: owner is the submitter; malformed goes to rejected/ ---
drop hello 4002
cp "$T/specs/malformed.yaml" "$T/inst/spool/incoming/.m.tmp" && chown 4001 "$T/inst/spool/incoming/.m.tmp" &&
  mv "$T/inst/spool/incoming/.m.tmp" "$T/inst/spool/incoming/malformed.yaml"
ln -s /etc/shadow "$T/inst/spool/incoming/.link" && mv "$T/inst/spool/incoming/.link" "$T/inst/spool/incoming/link.yaml"
for _ in $(seq 60); do [ -z "$(ls "$T/inst/spool/incoming")" ] && break; sleep 0.05; done
sleep 0.2
check "spool emptied" test -z "$(ls "$T/inst/spool/incoming")"
check "malformed spool spec in rejected/ with .error" test "$(ls "$T/inst/spool/rejected" | grep -c '\.error$')" -ge 2
drop hello 4005
for _ in $(seq 60); do grep -qs "uid 4005 is not in the policy" "$T/inst/spool/rejected/"*.error && break; sleep 0.05; done
check "spool file of a uid with no policy: rejected with the reason" grep -qs "denied: uid 4005 is not in the policy" "$T/inst/spool/rejected/"*.error
check "spool job's submitter is the file owner" test "$(as 4002 "$C" status --json | "$PY" -c 'import json,sys; print(sum(j["via"]=="spool" for j in json.load(sys.stdin)))')" = 1

# --- cancel ---
spec sleeper "echo $MARK-sleeper; sleep 30"
ids=$("$C" submit "$T/specs/sleeper.yaml" 2>/dev/null | tail -n1)
for _ in $(seq 200); do pgrep -f "$MARK-sleeper" >/dev/null && break; sleep 0.05; done  # the trainer runs
as 4001 "$C" cancel "$ids" >/dev/null 2>&1; rc=$?
check "another uid cannot cancel (4)" test "$rc" = 4
"$C" cancel "$ids" >/dev/null
"$C" wait "$ids" >/dev/null; rc=$?
check "cancelled job: wait exits 16 (got $rc)" test "$rc" = 16
st=$(state "$ids")
check "cancelled job state (got $st)" test "$st" = cancelled
check "cancelled: no trainer left" test -z "$(pgrep -f "$MARK-sleeper")"

# --- SIGHUP reloads the policy ---
printf '  - uids: [4003]\n    datasets: [customers]\n    keys: ["*"]\n    outputs: ["*"]\n    images: ["*"]\n' >>"$T/inst/policy.yaml"
kill -HUP "$DPID"; sleep 0.3
id3=$(as 4003 "$C" submit "$T/specs/hello.yaml" 2>/dev/null | tail -n1)
check "SIGHUP: uid 4003 granted" has "$id3" "hello-"
echo "users: [" >"$T/inst/policy.yaml.bad"; cp "$T/inst/policy.yaml" "$T/policy.good"; cp "$T/inst/policy.yaml.bad" "$T/inst/policy.yaml"
kill -HUP "$DPID"; sleep 0.3
check "SIGHUP: a broken policy keeps the old one" has "$(as 4003 "$C" submit "$T/specs/hello.yaml" 2>/dev/null | tail -n1)" "hello-"
cp "$T/policy.good" "$T/inst/policy.yaml"

# --- fairness: with one slot, uid 4002's single job overtakes uid 4001's backlog ---
sed -i 's/^\(  max_concurrent_jobs: \).*/\11/' "$cfg"; kill -HUP "$DPID"; sleep 0.3
spec nap "sleep 0.3"
fair=()
for _ in $(seq 5); do fair+=("$(as 4001 "$C" submit "$T/specs/nap.yaml" 2>/dev/null | tail -n1)"); done
late=$(as 4002 "$C" submit "$T/specs/nap.yaml" 2>/dev/null | tail -n1)
"$C" wait "$late" >/dev/null
before=0
for f in "${fair[@]}"; do [ "$(state "$f")" = succeeded ] && before=$((before + 1)); done
check "fair queue: 4002 ran after at most 2 of 4001's 5 jobs (ran $before)" test "$before" -le 2
for f in "${fair[@]}"; do "$C" wait "$f" >/dev/null; done
sed -i 's/^\(  max_concurrent_jobs: \).*/\12/' "$cfg"; kill -HUP "$DPID"; sleep 0.3

# --- load: 100 specs at once, by spool and socket, from three uids ---
spec tiny "exit 0"
t0=$(date +%s.%N)
for i in $(seq 25); do drop tiny 4001; drop tiny 4002; done
pids=()
for i in $(seq 16); do
  for u in 0 4001 4002; do as "$u" "$C" submit "$T/specs/tiny.yaml" >/dev/null 2>&1 & pids+=($!); done
done
as 4003 "$C" submit "$T/specs/tiny.yaml" >/dev/null 2>&1 & pids+=($!)
as 4003 "$C" submit "$T/specs/tiny.yaml" >/dev/null 2>&1 & pids+=($!)
wait "${pids[@]}"  # not the daemon
ntiny() { "$C" status --json | "$PY" -c '
import json,sys; a=[j for j in json.load(sys.stdin) if j["name"]=="tiny"]
print(len(a), sum(j["state"] in ("succeeded","failed","cancelled","interrupted","rejected") for j in a))'; }
for _ in $(seq 300); do read -r total final <<<"$(ntiny)"; [ "$final" -ge 100 ] && [ "$final" = "$total" ] && break; sleep 0.1; done
t1=$(date +%s.%N)
read -r total final <<<"$(ntiny)"
check "load: 100 tiny jobs recorded, no duplicates" test "$total" = 100
check "load: every job final" test "$final" = 100
check "load: all succeeded" test "$("$C" status --json | "$PY" -c 'import json,sys; print(sum(j["state"]=="succeeded" for j in json.load(sys.stdin) if j["name"]=="tiny"))')" = 100
echo "load: 100 jobs in $(echo "$t1 - $t0" | bc) s" >&2
check "load: audit log verifies" "$C" audit verify --verifier-key "$T/inst/state/audit-verifier.key" >/dev/null
check "load: status agrees with the audit log" "$PY" -c '
import json,subprocess,sys
jobs={j["job_id"]:j["state"] for j in json.loads(subprocess.run([sys.argv[1],"status","--json"],capture_output=True).stdout)}
audit={}
for line in subprocess.run([sys.argv[1],"audit","show","--json","--action","job.completed"],capture_output=True,text=True).stdout.splitlines():
    e=json.loads(line); audit.setdefault(e["job"],[]).append(e["outcome"])
ran={k:v for k,v in jobs.items() if v in ("succeeded","failed","cancelled")}
assert all(len(audit.get(k,[]))==1 and audit[k][0]==v for k,v in ran.items()), [(k,v,audit.get(k)) for k,v in ran.items() if audit.get(k)!=[v]]
assert set(audit) <= set(jobs)' "$C"

# --- kill -9 while jobs run ---
spec victim "cat /data/customers >/dev/null; echo $MARK-victim; sleep 60"
v1=$("$C" submit "$T/specs/victim.yaml" 2>/dev/null | tail -n1)
v2=$(as 4001 "$C" submit "$T/specs/victim.yaml" 2>/dev/null | tail -n1)
q1=$("$C" submit "$T/specs/tiny.yaml" 2>/dev/null | tail -n1)
for _ in $(seq 100); do [ "$(state "$v2")" = running ] && [ "$(pgrep -fc "$MARK-victim" )" -ge 2 ] && break; sleep 0.05; done
check "kill -9: victims running" test "$(state "$v1")/$(state "$v2")/$(state "$q1")" = running/running/queued
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=""
for _ in $(seq 100); do pgrep -f "$MARK-victim" >/dev/null || break; sleep 0.05; done
check "kill -9: no trainer left alive" test -z "$(pgrep -f "$MARK-victim")"
check "kill -9: no runner left alive" test -z "$(pgrep -f -- "--job-id $v1")$(pgrep -f -- "--job-id $v2")"
check "kill -9: no plaintext left (/tmp, /dev/shm, /var/tmp, the installation)" test -z "$(grep -rlaF "$DMARK" /tmp /dev/shm /var/tmp "$T" 2>/dev/null)"
start_daemon
check "restart: running jobs interrupted" test "$(state "$v1")/$(state "$v2")" = interrupted/interrupted
"$C" wait "$q1" >/dev/null
check "restart: the queued job ran" test "$(state "$q1")" = succeeded
"$C" wait "$v1" >/dev/null; rc=$?
check "wait on an interrupted job exits 17" test "$rc" = 17
check "restart: audit records the interruption" has "$("$C" audit show --job "$v1" 2>/dev/null)" "interrupted"
check "kill -9: audit log verifies" "$C" audit verify --verifier-key "$T/inst/state/audit-verifier.key" >/dev/null
check "no job duplicated" test "$("$C" status --json | "$PY" -c 'import json,sys; a=[j["job_id"] for j in json.load(sys.stdin)]; print(len(a)==len(set(a)))')" = True

# --- SIGTERM: a short job finishes within the grace; a long one is cancelled ---
spec short "sleep 1; exit 0"
s1=$("$C" submit "$T/specs/short.yaml" 2>/dev/null | tail -n1)
l1=$("$C" submit "$T/specs/sleeper.yaml" 2>/dev/null | tail -n1)
q2=$("$C" submit "$T/specs/tiny.yaml" 2>/dev/null | tail -n1)
for _ in $(seq 100); do [ "$(state "$l1")" = running ] && break; sleep 0.05; done
cps=$(wc -l <"$T/inst/audit/checkpoints" 2>/dev/null || echo 0)
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=""
check "SIGTERM: clean exit 0" test "$rc" = 0
check "SIGTERM: final checkpoint written" test "$(wc -l <"$T/inst/audit/checkpoints")" -gt "$cps"
check "SIGTERM: socket removed" test ! -e "$SOCK"
check "SIGTERM: no trainer left" test -z "$(pgrep -f "$MARK-sleeper")"
start_daemon
check "SIGTERM: short job finished in the grace period" test "$(state "$s1")" = succeeded
check "SIGTERM: long job cancelled after the grace period" test "$(state "$l1")" = cancelled
"$C" wait "$q2" >/dev/null
check "SIGTERM: queued job kept and run after restart" test "$(state "$q2")" = succeeded
check "SIGTERM: audit log verifies" "$C" audit verify --verifier-key "$T/inst/state/audit-verifier.key" >/dev/null
kill -TERM "$DPID"; wait "$DPID"; DPID=""

# --- sd_notify: READY, STATUS, WATCHDOG, RELOADING, STOPPING on a fake NOTIFY_SOCKET ---
"$PY" - "$T/notify.sock" "$T/notify.out" <<'PYN' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(0.2)
end = time.time() + 8
with open(sys.argv[2], "w") as out:
    while time.time() < end:
        try: out.write(s.recv(4096).decode() + "\n"); out.flush()
        except socket.timeout: pass
PYN
npid=$!
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.05; done
NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=200000 bash -c 'export WATCHDOG_PID=$$; exec "$0" --config "$1" 2>>"$2"' \
  "$bin/cordond" "$cfg" "$T/daemon.log" &
DPID=$!
sleep 0.6; kill -HUP "$DPID"; sleep 0.2; kill -TERM "$DPID"; wait "$DPID"; DPID=""
sleep 0.3; kill "$npid" 2>/dev/null; wait "$npid" 2>/dev/null
n=$(cat "$T/notify.out")
check "sd_notify READY=1" has "$n" "READY=1"
check "sd_notify STATUS=" has "$n" "STATUS=0 running, 0 queued"
check "sd_notify WATCHDOG=1 repeatedly" test "$(grep -c WATCHDOG=1 <<<"$n")" -ge 3
check "sd_notify RELOADING=1" has "$n" "RELOADING=1"
check "sd_notify STOPPING=1" has "$n" "STOPPING=1"

# --- scripts/install into a staged tree; the installed unit verifies ---
if command -v systemd-analyze >/dev/null; then
  "$src/scripts/install" --build "$(dirname "$bin")" --prefix "$T/prefix" --root "$T/root" --etc "$T/etc" >"$T/install.out" 2>&1
  check "install: exit 0" test "$?" = 0
  check "install: binaries" test -x "$T/prefix/bin/cordond" -a -x "$T/prefix/bin/cordon"
  check "install: config link, policy, socket" test "$(sed -n 's/^ *socket: *//p' "$T/etc/cordon/cordon.yaml")" = /run/cordon/cordon.sock -a -f "$T/root/policy.yaml"
  check "install: unit points at the staged binary" grep -q "ExecStart=$T/prefix/bin/cordond --config $T/etc/cordon/cordon.yaml" "$T/etc/systemd/system/cordond.service"
  check "install: systemd-analyze verify" systemd-analyze verify "$T/etc/systemd/system/cordond.service"
  check "install: policy valid" "$T/prefix/bin/cordond" --check-config --config "$T/etc/cordon/cordon.yaml"
  echo "$(systemd-analyze security --offline=yes "$T/etc/systemd/system/cordond.service" 2>/dev/null | tail -n1)" >&2
fi

echo "daemon_test: $pass passed, $fail failed"
[ "$fail" = 0 ]
