# Shared helpers for Cordon's black-box shell tests (real binaries, real
# daemon, real users). Modelled on bubblewrap's tests/libtest.sh: source it,
# call e2e_init, use the helpers, end with e2e_summary.
#
#   . "$(dirname "$0")/../lib/e2e.sh"
#   e2e_init BIN_DIR NAME          # root check, temp dir $T (0755), cleanup trap
#   e2e_install                    # `cordon init $T/inst`; CFG, INST, SOCK, ... exported
#   check "what" cmd args...       # counts a pass or a fail
#   e2e_summary                    # "N passed, M failed"; exit status 0 only when M = 0
#
# Everything a test creates lives under $T and is removed by the trap (KEEP=1
# keeps $T). Processes are stopped by the pid this file recorded for them;
# users made with e2e_user_add are deleted by the trap. Waits poll with a
# bound (e2e_wait_for), never a bare long sleep.
#
# Variables set: bin src T C (the cordon CLI) PY; after e2e_install: CFG INST
# SOCK STATE_DIR SPOOL_DIR AUDIT_DIR RUN_DIR VERIFIER (and CORDON_CONFIG,
# CORDON_SOCKET exported); DPID while e2e_daemon_start's daemon runs.
# Helpers are prefixed e2e_; check/fail/pass/has/jget/as_user are unprefixed
# because every test uses them.

E2E_PASS=0
E2E_FAIL=0
E2E_FAILED_NAMES=()
E2E_CLEANUPS=()
E2E_USERS=()
E2E_PIDS=()
DPID=""
PY=${PY:-/usr/bin/python3}

e2e_skip() { echo "SKIP: $*"; exit 77; }

# e2e_sections NAME ARGS...: a sectioned suite's command line, [--bin BIN_DIR]
# [SECTION...|all] (default: every section of SECTIONS_ALL, which the caller
# defines). Sets BIN (default: build/bin of this tree) and the array sections;
# an unknown section exits 2.
e2e_sections() {
  local name="$1" s; shift
  BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin"
  sections=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --bin) BIN="$2"; shift 2 ;;
      -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
      all) sections+=("${SECTIONS_ALL[@]}"); shift ;;
      *) sections+=("$1"); shift ;;
    esac
  done
  [ ${#sections[@]} -gt 0 ] || sections=("${SECTIONS_ALL[@]}")
  for s in "${sections[@]}"; do
    case " ${SECTIONS_ALL[*]} " in *" $s "*) ;; *) echo "${name}_test: unknown section $s (${SECTIONS_ALL[*]})" >&2; exit 2 ;; esac
  done
}

# e2e_init BIN_DIR NAME: needs root (namespaces, cgroups, other users).
e2e_init() {
  bin=$(cd "$1" && pwd) || { echo "e2e_init: no such directory $1" >&2; exit 2; }
  local name="${2:-e2e}"
  src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  [ "$(id -u)" = 0 ] || e2e_skip "$name needs root (sandbox, other users)"
  [ -x "$bin/cordon" ] || { echo "e2e_init: no cordon in $bin" >&2; exit 2; }
  C="$bin/cordon"
  T=$(mktemp -d "/tmp/cordon-$name-XXXXXX")
  chmod 0755 "$T"   # other users must reach their own corners of it
  cd "$T" || exit 2  # a cwd every user may stand in (runuser keeps it)
  trap e2e_cleanup EXIT
  trap 'exit 130' INT TERM
}

# e2e_on_cleanup CMD...: run at exit, last registered first.
e2e_on_cleanup() { E2E_CLEANUPS+=("$*"); }

e2e_cleanup() {
  local rc=$? i p u
  for ((i = ${#E2E_CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${E2E_CLEANUPS[$i]}" >/dev/null 2>&1; done
  [ -n "$DPID" ] && kill -9 "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  for p in "${E2E_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for u in "${E2E_USERS[@]}"; do userdel "$u" >/dev/null 2>&1 || userdel -f "$u" >/dev/null 2>&1; done
  cd /
  if [ -n "${KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
  exit "$rc"
}

# e2e_track PID: killed (SIGKILL, by pid) at exit if still there.
e2e_track() { E2E_PIDS+=("$1"); }

# ---------------------------------------------------------------- checks

check() {
  local name="$1"; shift
  if "$@"; then e2e_pass "$name"; else e2e_fail "$name"; fi
}
e2e_pass() { E2E_PASS=$((E2E_PASS + 1)); [ -z "${E2E_VERBOSE:-}" ] || echo "ok - $1"; }
e2e_fail() { E2E_FAIL=$((E2E_FAIL + 1)); E2E_FAILED_NAMES+=("$1"); echo "not ok - $1" >&2; }
pass() { e2e_pass "$@"; }
fail() { e2e_fail "$@"; }
has() { grep -qF -- "$2" <<<"$1"; }
hasnt() { ! grep -qF -- "$2" <<<"$1"; }
# jget FILE PYEXPR: prints eval(PYEXPR) with d = the JSON document in FILE (- = stdin).
jget() { "$PY" -c 'import json,sys; f=sys.argv[1]; d=json.load(sys.stdin if f=="-" else open(f)); print(eval(sys.argv[2]))' "$@"; }

# e2e_summary: the TAP-ish footer; the last line is exactly "N passed, M failed".
e2e_summary() {
  local n
  if [ "$E2E_FAIL" -gt 0 ]; then
    echo "# failed:" >&2
    for n in "${E2E_FAILED_NAMES[@]}"; do echo "#   $n" >&2; done
  fi
  echo "1..$((E2E_PASS + E2E_FAIL))"
  echo "$E2E_PASS passed, $E2E_FAIL failed"
  [ "$E2E_FAIL" = 0 ]
}

# e2e_wait_for SECONDS CMD...: polls CMD every 50 ms; 0 once it succeeds, 1 at the bound.
e2e_wait_for() {
  local limit="$1"; shift
  local end=$(( $(date +%s%N) + ${limit%.*} * 1000000000 ))
  while :; do
    "$@" && return 0
    [ "$(date +%s%N)" -ge "$end" ] && return 1
    sleep 0.05
  done
}

# e2e_marker PREFIX: a random token that appears nowhere by chance.
e2e_marker() { echo "${1:-MK}$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')X"; }

# ---------------------------------------------------------------- installation

# e2e_install [DIR]: a `cordon init` installation (default $T/inst).
e2e_install() {
  INST="${1:-$T/inst}"
  CFG=$("$C" init "$INST" 2>/dev/null | tail -n1)
  [ -f "$CFG" ] || { echo "e2e_install: cordon init $INST failed" >&2; return 1; }
  export CORDON_CONFIG="$CFG"
  SOCK=$(e2e_cfg_get socket); STATE_DIR=$(e2e_cfg_get state_dir)
  SPOOL_DIR=$(e2e_cfg_get spool_dir); AUDIT_DIR=$(e2e_cfg_get audit_dir)
  RUN_DIR=$(dirname "$SOCK")
  VERIFIER="$STATE_DIR/audit-verifier.key"
  export CORDON_SOCKET="$SOCK"
}
# e2e_cfg_get KEY / e2e_cfg_set KEY VALUE: a scalar of cordon.yaml (first match).
e2e_cfg_get() { sed -n "s/^ *$1: *//p" "$CFG" | head -n1 | sed 's/ *#.*$//' | tr -d '"'; }
e2e_cfg_set() { sed -i "s|^\( *$1: \).*|\1$2|" "$CFG"; }

e2e_audit_verify() { "$C" audit verify --verifier-key "$VERIFIER" >/dev/null 2>&1; }

# e2e_spec FILE KEY=VALUE...: writes a cordon/v1 spec. Keys: name, image, sh (a
# /bin/sh -c command) or argv (a JSON list), input (repeatable: PATH or
# NAME=PATH), pin, columns (a YAML flow list), out, key, memory, timeout,
# scratch, pids, metrics (a YAML flow list; spec.metrics), extra (raw YAML
# lines appended under spec:). Strings are JSON-escaped (valid YAML).
e2e_spec() {
  local file="$1"; shift
  "$PY" - "$file" "$@" <<'PYSPEC'
import json, os, sys
file, args = sys.argv[1], sys.argv[2:]
o = {"name": os.path.basename(file).rsplit(".", 1)[0], "image": None, "out": None, "key": "kms://local/models",
     "memory": "256Mi", "timeout": "60s", "scratch": "16Mi", "pids": "32", "inputs": []}
for a in args:
    k, _, v = a.partition("=")
    if k == "input":
        n, _, p = v.partition("=") if not v.startswith("/") else ("", "", v)
        o["inputs"].append((n or "customers", p))
    else:
        o[k] = v
q = json.dumps
argv = o["argv"] if "argv" in o else q(["/bin/sh", "-c", o.get("sh", "exit 0")])
lines = ["apiVersion: cordon/v1", "kind: TrainingJob", "metadata:", f"  name: {o['name']}", "spec:",
         "  trainer:", f"    image: {q(o['image'])}", f"    command: {argv}"]
if o["inputs"]:
    lines.append("  inputs:")
    for n, p in o["inputs"]:
        lines += [f"    - name: {n}", f"      path: {q(p)}"]
        if "pin" in o: lines.append(f"      sha256: {o['pin']}")
        if "columns" in o: lines.append(f"      columns: {o['columns']}")
lines += ["  output:", f"    path: {q(o['out'])}", f"    key: {o['key']}",
          f"  resources: {{memory: {o['memory']}, timeout: {o['timeout']}, scratch: {o['scratch']}, pids: {o['pids']}}}"]
if "metrics" in o: lines.append(f"  metrics: {o['metrics']}")
if "extra" in o: lines.append(o["extra"])
with open(file, "w") as f: f.write("\n".join(lines) + "\n")
os.chmod(file, 0o644)
PYSPEC
}

# e2e_sealed_world DIR KEY...: the keys (kms://local/KEY) and two sealed datasets in DIR
# (0644): customers.sealed (a row holding $DMARK) and payroll.sealed, both under
# kms://local/datasets (so KEY must include datasets). Sets MARK (for trainer output)
# and DMARK (only ever in the plaintext input).
e2e_sealed_world() {
  local dir="$1" k; shift
  for k in "$@"; do "$C" keys create "$k" >/dev/null 2>&1 || { echo "keys create $k failed" >&2; return 1; }; done
  MARK=$(e2e_marker ZQX); DMARK=$(e2e_marker DQX)
  printf 'age,spend,note\n30,1.5,%s\n41,2.5,x\n' "$DMARK" | "$C" seal --key kms://local/datasets --name customers - "$dir/customers.sealed" >/dev/null 2>&1
  printf 'ssn\n123\n' | "$C" seal --key kms://local/datasets --name payroll - "$dir/payroll.sealed" >/dev/null 2>&1
  chmod 0644 "$dir"/*.sealed
}

# ---------------------------------------------------------------- the daemon

# e2e_daemon_start [CORDOND FLAGS]: starts cordond on $CFG (stderr appended to
# $T/daemon.log), waits (bounded) until it answers a ping. Sets DPID.
e2e_daemon_start() {
  "$bin/cordond" --config "$CFG" "$@" 2>>"$T/daemon.log" &
  DPID=$!
  if e2e_wait_for 10 e2e_ping; then return 0; fi
  echo "cordond did not start:" >&2; tail -5 "$T/daemon.log" >&2; return 1
}
# e2e_daemon_stop: SIGTERM, bounded wait, then SIGKILL. Status of cordond in $?.
e2e_daemon_stop() {
  [ -n "$DPID" ] || return 0
  kill -TERM "$DPID" 2>/dev/null
  e2e_wait_for 30 e2e_gone "$DPID" || kill -9 "$DPID" 2>/dev/null
  wait "$DPID" 2>/dev/null; local rc=$?
  DPID=""
  return "$rc"
}
e2e_gone() { ! kill -0 "$1" 2>/dev/null; }
e2e_daemon_alive() { [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; }
e2e_ping() { e2e_daemon_alive && has "$(e2e_request '{"op":"ping"}' 2>/dev/null)" '"ok":true'; }
# e2e_reload: SIGHUP, then (bounded) until cordond has audited policy.reloaded
# (the policy and max_concurrent_jobs are re-read in that one handler, "ok" or
# "failed") and answers a ping. A ping alone could be served before the signal.
e2e_reload() {
  local n; n=$(e2e_audit_count policy.reloaded)
  kill -HUP "$DPID" || return 1
  e2e_wait_for 5 e2e_audit_grew policy.reloaded "$n" && e2e_wait_for 5 e2e_ping
}
# e2e_audit_count ACTION: how many entries of that action the audit log holds (as root).
e2e_audit_count() { "$C" audit show --json --action "$1" 2>/dev/null | wc -l; }
e2e_audit_grew() { [ "$(e2e_audit_count "$1")" -gt "$2" ]; }

# e2e_request LINE [USER]: one raw request on the control socket (LINE is sent
# as given, with printf %b escapes, or the bytes of FILE when LINE is @FILE,
# plus "\n" unless it already ends in one),
# prints the first reply line. USER: an account (runuser) or a numeric uid (setpriv).
e2e_request() {
  local line="$1" who="${2:-}"
  local cmd=("$PY" -c '
import socket, sys
data = sys.stdin.buffer.read()
if not data.endswith(b"\n"): data += b"\n"
s = socket.socket(socket.AF_UNIX); s.settimeout(15); s.connect(sys.argv[1])
try: s.sendall(data)
except OSError: pass
out = b""
try:
    while b"\n" not in out:
        c = s.recv(65536)
        if not c: break
        out += c
except OSError: pass
sys.stdout.write(out.split(b"\n")[0].decode(errors="replace") + "\n")' "$SOCK")
  local feed=(printf '%b' "$line")
  [ "${line:0:1}" = @ ] && feed=(cat -- "${line:1}")
  if [ -z "$who" ]; then "${feed[@]}" | "${cmd[@]}"; else "${feed[@]}" | e2e_as "$who" "${cmd[@]}"; fi
}

# ---------------------------------------------------------------- users

# e2e_user_add NAME: a local account with no home and no shell, deleted at exit.
# Names must be unique per run (embed $$) and at most 32 characters.
e2e_user_add() {
  useradd -M -s /usr/sbin/nologin "$1" || return 1
  E2E_USERS+=("$1")
}
# as_user NAME CMD...: CMD as that account (its groups, its uid).
as_user() { local u="$1"; shift; runuser -u "$u" -- "$@"; }
# as_uid UID CMD...: CMD as a bare uid with no account (gid = uid, no groups).
as_uid() { local u="$1"; shift; setpriv --reuid="$u" --regid="$u" --clear-groups "$@"; }
# e2e_as WHO CMD...: as_uid for a number, as_user for a name.
e2e_as() { local w="$1"; shift; case "$w" in *[!0-9]*) as_user "$w" "$@" ;; *) as_uid "$w" "$@" ;; esac; }

# e2e_state JOB: the job's state per `cordon status --json` (as root).
e2e_state() { "$C" status "$1" --json 2>/dev/null | jget - 'd["state"]' 2>/dev/null; }
e2e_is_final() { case "$(e2e_state "$1")" in succeeded|failed|cancelled|interrupted|rejected) return 0 ;; esac; return 1; }
e2e_is_running() { [ "$(e2e_state "$1")" = running ]; }
# e2e_all_final: every job `cordon status --json` lists (as root) is final; for settling, not a check.
e2e_all_final() {
  "$C" status --json 2>/dev/null |
    jget - 'all(j["state"] in ("succeeded","failed","cancelled","interrupted","rejected") for j in d) or exit(1)' >/dev/null 2>&1
}
