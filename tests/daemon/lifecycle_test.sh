#!/usr/bin/env bash
# cordond's own write-ahead and crash handling, with the real daemon:
#   runner_crash      `cordon run` killed by SIGKILL mid-job -> outcome runner_crashed
#                     (signal named), its empty job directory removed and audited
#   interrupted_pid   cordond killed -9 while a job runs; the restart records the
#                     runner's pid (not 0) in job.interrupted
#   audit_unavailable the audit log's file system full (a tmpfs inside the daemon's own
#                     mount namespace): submit refused with audit_unavailable (exit 5),
#                     nothing queued, STATUS degraded; once there is room, service resumes
#   slow_reader       a `cordon logs` client that never reads: the unsealer is cut off after
#                     --log-reader-timeout, the client's connection closed, the daemon serves on
#   lifecycle_test.sh --bin BIN_DIR [SECTION...]
set -uo pipefail
SECTIONS_ALL=(runner_crash interrupted_pid audit_unavailable slow_reader)
. "$(dirname "$0")/../lib/e2e.sh"
e2e_sections lifecycle "$@"
e2e_init "$BIN" lifecycle
e2e_install || exit 1
"$C" keys create datasets >/dev/null && "$C" keys create models >/dev/null
printf 'a,b\n1,2\n' | "$C" seal --key kms://local/datasets --name d - "$T/d.sealed" >/dev/null 2>&1
mkdir -p "$T/out"
IMG="$src/tests/runner/trainers/sh"

audit_has() { "$C" audit show --json --job "$1" --action "$2" 2>/dev/null; }
runner_of() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$STATE_DIR/jobs/$1/job.json"; }
trainer_runs() { pgrep -f "$1" >/dev/null; }

# start_sleeper SECTION: a daemon and a job whose trainer sleeps; sets id, mark, pid (its runner).
start_sleeper() {
  e2e_daemon_start || return 1
  mark=$(e2e_marker "$1")
  e2e_spec "$T/${1//_/-}.yaml" image="$IMG" out="$T/out" input="$T/d.sealed" sh="echo $mark; sleep 30"
  id=$("$C" submit "$T/${1//_/-}.yaml" 2>/dev/null | tail -n1)
  check "$1: the trainer runs" e2e_wait_for 20 trainer_runs "$mark"
  pid=$(runner_of "$id")
}

sec_runner_crash() {
  local id mark pid
  start_sleeper runner_crash || return
  check "runner_crash: the record holds the runner's pid" test "${pid:-0}" -gt 0
  kill -9 "$pid"
  e2e_wait_for 20 e2e_is_final "$id"
  local st; st=$("$C" status "$id" --json)
  check "runner_crash: failed" test "$(jget - 'd["state"]' <<<"$st")" = failed
  check "runner_crash: outcome runner_crashed" test "$(jget - 'd["outcome"]' <<<"$st")" = runner_crashed
  check "runner_crash: the reason names the signal" has "$(jget - 'd["reason"]' <<<"$st")" "signal 9"
  check "runner_crash: no trainer left" e2e_wait_for 10 e2e_not trainer_runs "$mark"
  check "runner_crash: the abandoned job directory is gone" test ! -e "$T/out/$id"
  check "runner_crash: the clean-up is audited" has "$(audit_has "$id" job.cleaned)" '"directory_removed":true'
  e2e_daemon_stop
}
e2e_not() { ! "$@"; }

sec_interrupted_pid() {
  local id mark pid
  start_sleeper interrupted_pid || return
  kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=""
  e2e_daemon_start || return
  check "interrupted_pid: interrupted" test "$(e2e_state "$id")" = interrupted
  check "interrupted_pid: job.interrupted records the runner's pid ($pid)" has "$(audit_has "$id" job.interrupted)" "\"runner_pid\":$pid"
  check "interrupted_pid: no trainer left" e2e_wait_for 10 e2e_not trainer_runs "$mark"
  e2e_daemon_stop
}

sec_audit_unavailable() {
  command -v unshare >/dev/null || { echo "# audit_unavailable: no unshare"; return; }
  # The daemon in its own mount namespace, its audit directory a 4 MiB tmpfs
  # holding a copy of the log: the host's mounts are never touched.
  local copy="$T/audit-copy"; cp -a "$AUDIT_DIR" "$copy"
  unshare -m --propagation private sh -c '
    mount -t tmpfs -o size=4m,mode=0700 tmpfs "$1" && cp -a "$2"/. "$1"/ && exec "$3" --config "$4"' \
    - "$AUDIT_DIR" "$copy" "$bin/cordond" "$CFG" 2>>"$T/daemon.log" &
  DPID=$!
  check "audit_unavailable: cordond starts" e2e_wait_for 10 e2e_ping
  e2e_spec "$T/ok.yaml" image="$IMG" out="$T/out" input="$T/d.sealed" sh="exit 0"
  local before; before=$("$C" status --json | jget - 'len(d)')
  nsenter -m -t "$DPID" sh -c 'dd if=/dev/zero of="$1/filler" bs=64k 2>/dev/null; sync' - "$AUDIT_DIR"
  # The log's last page may still have room for a few entries: refused
  # requests (each audited) use it up until the daemon reports degraded.
  degraded() { has "$(e2e_request '{"op":"ping"}')" '"degraded":true'; }
  for _ in $(seq 40); do degraded && break; e2e_request '{"op":5}' >/dev/null; done
  "$C" submit "$T/ok.yaml" >"$T/sub.out" 2>"$T/sub.err"; local rc=$?
  check "audit_unavailable: submit refused with exit 5 (got $rc)" test "$rc" = 5
  check "audit_unavailable: the error says why" grep -q audit_unavailable "$T/sub.err"
  check "audit_unavailable: nothing was queued" test "$("$C" status --json | jget - 'len(d)')" = "$before"
  check "audit_unavailable: ping says degraded" has "$(e2e_request '{"op":"ping"}')" '"degraded":true'
  nsenter -m -t "$DPID" rm -f "$AUDIT_DIR/filler"
  local id; id=$("$C" submit "$T/ok.yaml" 2>/dev/null | tail -n1)
  check "audit_unavailable: with room again, a job is accepted" has "$id" "ok-"
  "$C" wait "$id" >/dev/null 2>&1
  check "audit_unavailable: and runs" test "$(e2e_state "$id")" = succeeded
  check "audit_unavailable: ping no longer degraded" has "$(e2e_request '{"op":"ping"}')" '"degraded":false'
  e2e_daemon_stop
}

unsealer_runs() { pgrep -f "unseal /dev/stdin" >/dev/null; }
sec_slow_reader() {
  e2e_daemon_start --log-reader-timeout 2s || return
  e2e_spec "$T/biglog.yaml" image="$IMG" out="$T/out" input="$T/d.sealed" sh='yes cordon | head -c 16000000; exit 0' scratch=64Mi
  local id; id=$("$C" submit "$T/biglog.yaml" 2>/dev/null | tail -n1)
  "$C" wait "$id" >/dev/null 2>&1
  check "slow_reader: the job succeeded" test "$(e2e_state "$id")" = succeeded
  # A client that asks for the log, reads one line and then nothing.
  "$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1]); s.sendall(b"{\"op\":\"logs\",\"job\":\"" + sys.argv[2].encode() + b"\"}\n")
time.sleep(30)' "$SOCK" "$id" &
  local reader=$!; e2e_track "$reader"
  check "slow_reader: the unsealer starts" e2e_wait_for 10 unsealer_runs
  check "slow_reader: and is cut off within the timeout" e2e_wait_for 15 e2e_not unsealer_runs
  check "slow_reader: the daemon still serves" e2e_ping
  kill "$reader" 2>/dev/null; wait "$reader" 2>/dev/null
  e2e_daemon_stop
}

for s in "${sections[@]}"; do echo "# --- $s"; "sec_$s"; done
e2e_summary
