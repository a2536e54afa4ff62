#!/usr/bin/env bash
# cordond with daemon.executor: slurm against a real single-node Slurm cluster
# (scripts/slurm-dev): 20 jobs through Slurm, each once, as cordon-<id>; cancel
# of a job queued in Slurm and of a running one; kill -9 of cordond while Slurm
# jobs run; scancel behind Cordon's back; the node opens inputs as the
# submitter and refuses what cordond did not approve; no marker in Slurm's
# spool, state or logs; a node.checkpoint in the central log per finished job;
# an admin's `cordon halt` of a job running in Slurm and of one pending there;
# a quarantine in cordond's registry binds Slurm jobs (the node keeps its own).
#
#   slurm_test.sh [--bin BIN_DIR] [SECTION...]     (default: every section)
#   sections: twenty cancel scancel kill9 node_refuses halt quarantine
# One cluster and one daemon serve every section (starting them is the slow
# part). Needs root, slurm-wlm and munge (scripts/setup installs them; skipped
# with the reason where they are missing). KEEP=1 keeps the temp dir (the
# cluster is stopped all the same); E2E_VERBOSE=1 prints passes.
set -uo pipefail
SECTIONS_ALL=(twenty cancel scancel kill9 node_refuses halt quarantine)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/e2e.sh"
e2e_sections slurm "$@"
for tool in slurmctld slurmd munged sbatch squeue scontrol scancel; do
  command -v "$tool" >/dev/null || e2e_skip "slurm-wlm/munge missing ($tool not found; scripts/setup installs them)"
done
e2e_init "$BIN" slurm
command -v setpriv >/dev/null || e2e_skip "setpriv missing"
img="$src/tests/runner/trainers/sh"
U=4101  # the submitter: a bare uid (no account), as in the daemon tests
A=4102  # an admin (policy.yaml admins), who halts through cordond

# ---------------------------------------------------------------- the world
SLURM_DIR="$T/slurm"
up=$("$src/scripts/slurm-dev" up "$SLURM_DIR" 2>&1) || { echo "$up" >&2; e2e_skip "the dev Slurm cluster did not start here"; }
e2e_on_cleanup "'$src/scripts/slurm-dev' down '$SLURM_DIR'"
export SLURM_CONF="$SLURM_DIR/slurm.conf"

W="$T/w"
mkdir -m 0755 "$W" "$W/sealed" "$W/specs" && mkdir -m 0777 "$W/out"
e2e_install "$W/inst" || exit 1
e2e_sealed_world "$W/sealed" datasets models || exit 1
cat >"$INST/policy.yaml" <<POL
admins:
  uids: [0, $A]
users:
  - uids: [0, $U]
    datasets: [customers, payroll]
    keys: [kms://local/datasets, kms://local/models]
    outputs: [$W/out]
    images: [$src/tests/runner/trainers]
    max_queued: 100
POL
# The node: its own installation (its own audit log and keys), with the
# centre's keyring provisioned (docs/SCALE-OUT.md, keys on nodes).
e2e_cfg_set max_concurrent_jobs 8
attach=$(PATH="$bin:$PATH" "$src/scripts/slurm-dev" attach "$CFG" "$T/node") || { echo "slurm-dev attach failed" >&2; exit 1; }
NCFG=$(sed -n 's/^NODE_CONFIG=//p' <<<"$attach")
NAUDIT=$(sed -n 's/^NODE_AUDIT_DIR=//p' <<<"$attach")
NVERIFIER=$(sed -n 's/^NODE_VERIFIER=//p' <<<"$attach")
e2e_daemon_start --grace 3s --request-timeout 5s || exit 1

# ---------------------------------------------------------------- helpers
spec() {  # spec NAME SHELL [input=PATH]: $W/specs/NAME.yaml
  local name="$1" sh="$2" input="$W/sealed/customers.sealed"; shift 2
  case "${1:-}" in input=*) input="${1#input=}" ;; esac
  e2e_spec "$W/specs/$name.yaml" image="$img" out="$W/out" input="customers=$input" sh="$sh" memory=128Mi timeout=120s
}
submit_as() { as_uid "$1" "$C" submit "$2" 2>/dev/null | tail -n1; }
jfield() { "$C" status "$1" --json 2>/dev/null | jget - "d.get('$2') or ''" 2>/dev/null; }
slurm_id() { jfield "$1" slurm_job_id; }
has_slurm_id() { [ -n "$(slurm_id "$1")" ]; }
slurm_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
slurm_pending() { [ "$(slurm_state "$1")" = PENDING ]; }
trainer_running() { pgrep -f "$1" >/dev/null; }
no_trainer() { ! pgrep -f "$1" >/dev/null; }
partition() { scontrol update PartitionName=cordon State="$1" >/dev/null; }
wait_final() { e2e_wait_for "${2:-60}" e2e_is_final "$1"; }

# ---------------------------------------------------------------- sections
# twenty: 20 jobs through Slurm, each succeeds once and shows as cordon-<id>;
# nothing the trainer printed or read reaches Slurm's files; the central log
# anchors the node log's checkpoint for every job, and both logs verify.
sec_twenty() {
  spec twenty "cat /data/customers; cat /data/customers >/out/r.txt; echo $MARK; exit 0"
  local ids=() id i ok=0 once=0 n_before
  n_before=$(e2e_audit_count node.checkpoint)
  for i in $(seq 20); do ids+=("$(submit_as "$U" "$W/specs/twenty.yaml")"); done
  for id in "${ids[@]}"; do wait_final "$id" 90; done
  for id in "${ids[@]}"; do
    [ "$(e2e_state "$id")" = succeeded ] && ok=$((ok + 1))
    [ "$(scontrol show job --oneliner 2>/dev/null | grep -c "JobName=cordon-$id ")" = 1 ] && once=$((once + 1))
  done
  check "twenty: all 20 jobs succeeded" test "$ok" = 20
  check "twenty: each is one Slurm job named cordon-<id> (scontrol show job)" test "$once" = 20
  check "twenty: status --json says executor slurm and a slurm_job_id" \
    test "$(jfield "${ids[0]}" executor)" = slurm -a -n "$(slurm_id "${ids[0]}")"
  check "twenty: the node is recorded" test -n "$(jfield "${ids[0]}" node)"
  check "twenty: a job.dispatched per job in the central log" test "$(e2e_audit_count job.dispatched)" -ge 20
  check "twenty: a node.checkpoint per finished job in the central log" \
    test "$(( $(e2e_audit_count node.checkpoint) - n_before ))" = 20
  check "twenty: the node.checkpoint names the node log's origin" \
    has "$("$C" audit show --json --action node.checkpoint | head -n1)" "\"origin\":\"$(head -n1 <("$C" --config "$NCFG" audit checkpoint 2>/dev/null))\""
  check "twenty: the central audit log verifies" e2e_audit_verify
  check "twenty: the node audit log verifies" "$C" --config "$NCFG" audit verify --verifier-key "$NVERIFIER"
  check "twenty: audit verify --node-checkpoints: the node log holds every checkpoint the centre recorded" \
    "$C" audit verify --verifier-key "$VERIFIER" --node-checkpoints "$NAUDIT" --node-verifier-key "$NVERIFIER"
  # A node log rolled back after the centre anchored it, consistently (its own
  # checkpoints cut too, so it verifies on its own): caught.
  local cut="$W/node-audit-cut"
  cp -a "$NAUDIT" "$cut"
  "$PY" - "$cut" <<'PY'
import glob, sys
d = sys.argv[1]; keep = 60
seg = sorted(glob.glob(d + "/audit-*.jsonl"))[0]
lines = open(seg).read().splitlines(True)[:keep]
open(seg, "w").write("".join(lines))
notes, cur = [], []
for line in open(d + "/checkpoints").read().splitlines(True):
    cur.append(line)
    if line.startswith("\u2014 "): notes.append("".join(cur)); cur = []
open(d + "/checkpoints", "w").write("\n".join(n.lstrip("\n") for n in notes if int(n.lstrip("\n").split("\n")[1]) <= keep) + "")
PY
  check "twenty: the rolled-back copy verifies on its own" "$C" audit verify --dir "$cut"
  check "twenty: --node-checkpoints catches a node log rolled back after anchoring" \
    bash -c '! "$1" audit verify --node-checkpoints "$2" >/dev/null 2>&1' - "$C" "$cut"
  check "twenty: the central and node logs are distinct" test "$(e2e_cfg_get audit_dir)" != "$NAUDIT"
  check "twenty: logs unseals the trainer's output" has "$("$C" logs "${ids[0]}" 2>/dev/null)" "$MARK"
  check "twenty: the trainer's marker is in no Slurm file (spool, state, logs)" test -z "$(grep -rlaF -- "$MARK" "$SLURM_DIR")"
  check "twenty: the data marker is in no Slurm file" test -z "$(grep -rlaF -- "$DMARK" "$SLURM_DIR")"
  check "twenty: the data marker is in no shared job file (spec, script, report)" test -z "$(grep -rlaF -- "$DMARK" "$STATE_DIR/slurm")"
  local left=0 id
  for id in "${ids[@]}"; do [ -e "$STATE_DIR/slurm/$id" ] && left=$((left + 1)); done
  check "twenty: each job's shared folder is removed once its report is recorded" test "$left" = 0
}

# cancel: a job queued in Slurm (its partition down) and a running one.
sec_cancel() {
  local q r sid
  partition DOWN
  spec queued "echo never; exit 0"
  q=$(submit_as "$U" "$W/specs/queued.yaml")
  e2e_wait_for 20 has_slurm_id "$q"; sid=$(slurm_id "$q")
  check "cancel: the job waits in Slurm (PENDING)" slurm_pending "$sid"
  as_uid "$U" "$C" cancel "$q" >/dev/null 2>&1
  wait_final "$q" 30
  check "cancel: a job queued in Slurm ends cancelled" test "$(e2e_state "$q")" = cancelled
  check "cancel: and Slurm cancelled it" test "$(slurm_state "$sid")" = CANCELLED
  partition UP
  local cm; cm=$(e2e_marker CNX)
  spec running "sleep 300; echo $cm"
  r=$(submit_as "$U" "$W/specs/running.yaml")
  e2e_wait_for 30 trainer_running "$cm"
  check "cancel: the trainer runs on the node" trainer_running "$cm"
  as_uid "$U" "$C" cancel "$r" >/dev/null 2>&1
  wait_final "$r" 45
  check "cancel: a running job ends cancelled" test "$(e2e_state "$r")" = cancelled
  check "cancel: its trainer is gone" e2e_wait_for 10 no_trainer "$cm"
}

# scancel: Slurm stops the job behind Cordon's back: interrupted, with a reason.
sec_scancel() {
  local j sid cm; cm=$(e2e_marker SCX)
  spec behind "sleep 300; echo $cm"
  j=$(submit_as "$U" "$W/specs/behind.yaml")
  e2e_wait_for 30 trainer_running "$cm"
  sid=$(slurm_id "$j")
  scancel "$sid"
  wait_final "$j" 45
  check "scancel: the job ends interrupted" test "$(e2e_state "$j")" = interrupted
  check "scancel: the reason names Slurm" has "$(jfield "$j" reason)" "Slurm job $sid"
  check "scancel: its trainer is gone" e2e_wait_for 10 no_trainer "$cm"
}

# kill9: cordond dies while its Slurm jobs run; restarted, it tracks them to their true end.
sec_kill9() {
  local a b c q; local km; km=$(e2e_marker KNX)
  spec k-ok "sleep 4; echo $km; exit 0"
  spec k-fail "sleep 4; echo $km; exit 3"
  a=$(submit_as "$U" "$W/specs/k-ok.yaml"); b=$(submit_as "$U" "$W/specs/k-fail.yaml")
  e2e_wait_for 30 trainer_running "$km"
  kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=""
  spec k-after "exit 0"
  check "kill9: the Slurm jobs run on without cordond" trainer_running "$km"
  e2e_daemon_start --grace 3s --request-timeout 5s
  c=$(submit_as "$U" "$W/specs/k-after.yaml")
  for q in "$a" "$b" "$c"; do wait_final "$q" 60; done
  check "kill9: a job that succeeded while cordond was down: succeeded" test "$(e2e_state "$a")" = succeeded
  check "kill9: a job whose trainer failed: failed, trainer_failed" \
    test "$(e2e_state "$b")" = failed -a "$(jfield "$b" outcome)" = trainer_failed
  check "kill9: a job submitted after the restart: succeeded" test "$(e2e_state "$c")" = succeeded
  check "kill9: the restart reconciled the running jobs" test "$(e2e_audit_count job.reconciled)" -ge 2
  check "kill9: each ran once in Slurm" test "$(scontrol show job --oneliner | grep -c "JobName=cordon-$a ")" = 1
}

# node_refuses: the node opens as the submitter and checks what cordond approved.
sec_node_refuses() {
  local j sid in="$W/sealed/revoked.sealed"
  cp "$W/sealed/customers.sealed" "$in"; chmod 0644 "$in"
  partition DOWN
  spec revoked "cat /data/customers; exit 0" input="$in"
  j=$(submit_as "$U" "$W/specs/revoked.yaml")
  e2e_wait_for 20 has_slurm_id "$j"
  chmod 0600 "$in"   # root's only now: the submitter can no longer read it
  partition UP
  wait_final "$j" 45
  check "node_refuses: an input the submitter can no longer read: input_rejected on the node" \
    test "$(jfield "$j" outcome)" = input_rejected
  check "node_refuses: the reason says the submitter was denied" has "$(jfield "$j" reason)" "permission denied"
  # The runner on its own, as the batch script calls it: a dataset cordond did not approve.
  local rep="$W/direct-report.json" rc
  spec direct "exit 0"
  "$C" --config "$NCFG" run --job-id direct-1 --as-submitter "$U" --expect-input customers=payroll \
    --expect-key customers=kms://local/datasets --report-file "$rep" "$W/specs/direct.yaml" >/dev/null 2>&1; rc=$?
  check "node_refuses: another dataset than approved: exit 14 (input_rejected)" test "$rc" = 14
  check "node_refuses: the report says so" test "$(jget "$rep" 'd["outcome"]' 2>/dev/null)" = input_rejected
  check "node_refuses: the report carries the node's checkpoint" test -n "$(jget "$rep" 'd["node_checkpoint"]' 2>/dev/null)"
  "$C" --config "$NCFG" run --job-id direct-2 --as-submitter "$U" "$W/specs/direct.yaml" >/dev/null 2>&1; rc=$?
  check "node_refuses: no approval: refused (14)" test "$rc" = 14
  local out; cp "$NCFG" "$W/node-readable.yaml"; chmod 0644 "$W/node-readable.yaml"
  out=$(as_uid "$U" "$C" --config "$W/node-readable.yaml" run --as-submitter "$U" --expect-input customers=customers \
    --expect-key customers=kms://local/datasets "$W/specs/direct.yaml" 2>&1); rc=$?
  check "node_refuses: --as-submitter is root's only (setup_error, 15)" test "$rc" = 15
  check "node_refuses: and says so" has "$out" "needs root"
}

# halt: an admin's `cordon halt` (through cordond, which runs it as root): a job running in
# Slurm gets SIGUSR1 in its runner on the node (scancel --batch), which kills the sandbox and
# reports `halted`: nothing sealed but the log, `cordon wait` exits 18, the version it read is
# quarantined. A job still pending in Slurm is cancelled there and recorded halted; the
# dataset cordond approved for it is quarantined whole (it never read a version).
sec_halt() {
  local j q sid rc hm v
  hm=$(e2e_marker HLX)
  v=$(sha256sum "$W/sealed/customers.sealed" | awk '{print "sha256:" $1}')
  spec halting "cat /data/customers >/out/model.txt; echo $hm; sleep 300"
  j=$(submit_as "$U" "$W/specs/halting.yaml")
  e2e_wait_for 30 trainer_running "$hm"
  check "halt: the trainer runs on the node" trainer_running "$hm"
  sid=$(slurm_id "$j")
  as_uid "$A" "$C" halt "$j" --reason "suspected poisoning" >"$W/halt.out" 2>&1; rc=$?
  check "halt: an admin halts a job running in Slurm (exit 0)" test "$rc" = 0
  wait_final "$j" 30
  check "halt: outcome halted, state cancelled" test "$(jfield "$j" outcome):$(e2e_state "$j")" = halted:cancelled
  as_uid "$U" "$C" wait "$j" >/dev/null 2>&1; rc=$?
  check "halt: cordon wait exits 18 (halted)" test "$rc" = 18
  check "halt: the runner on the node reported it (its status 18)" test "$(jfield "$j" exit_status)" = 18
  check "halt: its trainer is gone" e2e_wait_for 10 no_trainer "$hm"
  check "halt: nothing it produced was sealed (the model it wrote)" sh -c "! ls '$W/out/$j'/out-*.sealed 2>/dev/null"
  check "halt: its log was sealed" test -f "$W/out/$j/trainer.log.sealed"
  check "halt: the node's log says halted" \
    has "$("$C" --config "$NCFG" audit show --json --job "$j" --action job.finished 2>/dev/null)" '"outcome":"halted"'
  check "halt: not taken for a stop behind Cordon's back" sh -c "! '$C' audit show --json --job '$j' --action job.interrupted | grep -q ."
  check "halt: the version it read is quarantined (the version, not the dataset)" \
    test "$("$C" datasets show customers --json | jget - '(d["quarantined"], [x["quarantined"] for x in d["versions"] if x["version"] == "'"$v"'"])')" = "(False, [True])"
  check "halt: job.halt audited with the admin's uid, via cordond" \
    test "$("$C" audit show --json --job "$j" --action job.halt | tail -n1 | jget - '(d["outcome"], d["actor"]["uid"], d["details"]["via"])')" = "('ok', $A, 'cordond')"
  check "halt: cordond's own entry says how (scancel)" \
    has "$("$C" audit show --json --job "$j" --action job.halt_requested)" '"how":"scancel"'
  check "halt: dataset.quarantined by halt" has "$("$C" audit show --json --action dataset.quarantined)" "\"job_ref\":\"$j\""
  "$C" release "customers@$v" >/dev/null 2>&1

  partition DOWN
  spec halt-pending "echo never; exit 0"
  q=$(submit_as "$U" "$W/specs/halt-pending.yaml")
  e2e_wait_for 20 has_slurm_id "$q"; sid=$(slurm_id "$q")
  check "halt: a job waits in Slurm (PENDING)" slurm_pending "$sid"
  as_uid "$A" "$C" halt "$q" --reason "suspected poisoning" >/dev/null 2>&1; rc=$?
  check "halt: an admin halts a job pending in Slurm (exit 0)" test "$rc" = 0
  check "halt: ... recorded halted, state cancelled" test "$(jfield "$q" outcome):$(e2e_state "$q")" = halted:cancelled
  check "halt: ... and Slurm cancelled it" test "$(slurm_state "$sid")" = CANCELLED
  check "halt: ... the dataset cordond approved for it is quarantined whole" \
    test "$("$C" datasets show customers --json | jget - 'd["quarantined"]')" = True
  "$C" release customers >/dev/null 2>&1
  partition UP
}

# quarantine: cordond checks every input against its own registry, at submission and again just
# before sbatch, so a quarantine made there binds Slurm jobs whatever registry the node keeps
# (this node's own knows nothing of it): a job naming the version is refused at submission; one
# waiting in cordond's queue when the quarantine lands fails at start and never reaches Slurm;
# once released, a job runs. A version a failed `expect:` quarantined on the node is
# quarantined in cordond's registry too.
sec_quarantine() {
  local v j q r rc out held
  v=$(sha256sum "$W/sealed/customers.sealed" | awk '{print "sha256:" $1}')
  "$C" quarantine "customers@$v" --reason "suspected poisoning" >/dev/null 2>&1
  check "quarantine: the node's own registry does not have it" \
    sh -c "! '$C' --config '$NCFG' datasets show customers --json 2>/dev/null | grep -q '\"quarantined\": true'"
  spec quar "cat /data/customers; exit 0"
  out=$(as_uid "$U" "$C" submit "$W/specs/quar.yaml" 2>&1); rc=$?
  check "quarantine: a Slurm job naming the version is refused at submission (exit 14)" test "$rc" = 14
  check "quarantine: ... naming the version and the reason" has "$out" "dataset 'customers' version $v is quarantined (suspected poisoning)"
  j=$(sed -n 's/^cordon: job \(.*\) rejected$/\1/p' <<<"$out")
  check "quarantine: ... recorded rejected, input_rejected, never handed to Slurm" \
    test "$(e2e_state "$j"):$(jfield "$j" outcome):$(slurm_id "$j")" = rejected:input_rejected:
  check "quarantine: ... audited by cordond (input.quarantined, at submission)" \
    test "$("$C" audit show --json --job "$j" --action input.quarantined | jget - '(d["outcome"], d["details"]["at"])')" = "('denied', 'submission')"
  "$C" release "customers@$v" >/dev/null 2>&1

  # One job at a time: a job pending in Slurm holds the slot, the next waits in cordond's queue.
  e2e_cfg_set max_concurrent_jobs 1; e2e_reload
  partition DOWN
  spec quar-hold "echo never; exit 0"
  held=$(submit_as "$U" "$W/specs/quar-hold.yaml")
  e2e_wait_for 20 has_slurm_id "$held"
  q=$(submit_as "$U" "$W/specs/quar.yaml")
  check "quarantine: a job accepted before the quarantine waits in cordond's queue" test "$(e2e_state "$q")" = queued
  "$C" quarantine "customers@$v" --reason "landed while queued" >/dev/null 2>&1
  as_uid "$U" "$C" cancel "$held" >/dev/null 2>&1  # frees the slot: cordond starts the next job
  wait_final "$q" 30
  check "quarantine: ... it fails at start: failed, input_rejected" test "$(e2e_state "$q"):$(jfield "$q" outcome)" = failed:input_rejected
  check "quarantine: ... its reason names the version and the reason" \
    has "$(jfield "$q" reason)" "at start: input 'customers' ($W/sealed/customers.sealed): dataset 'customers' version $v is quarantined (landed while queued)"
  check "quarantine: ... it never reached Slurm (no sbatch, no cordon-<id> job)" \
    test -z "$(slurm_id "$q")" -a "$(scontrol show job --oneliner 2>/dev/null | grep -c "JobName=cordon-$q ")" = 0
  as_uid "$U" "$C" wait "$q" >/dev/null 2>&1; rc=$?
  check "quarantine: ... cordon wait exits 14 (input_rejected)" test "$rc" = 14
  check "quarantine: ... audited by cordond (input.quarantined, at start)" \
    test "$("$C" audit show --json --job "$q" --action input.quarantined | jget - '(d["outcome"], d["details"]["at"])')" = "('denied', 'start')"
  partition UP
  e2e_cfg_set max_concurrent_jobs 8; e2e_reload
  "$C" release "customers@$v" >/dev/null 2>&1
  r=$(submit_as "$U" "$W/specs/quar.yaml")
  wait_final "$r" 60
  check "quarantine: released, a job on the version runs through Slurm and succeeds" \
    test "$(e2e_state "$r"):$(jfield "$r" executor)" = succeeded:slurm

  # A failed `expect:` on the node quarantines the version in the node's registry; cordond
  # takes it from the manifest into its own, so the next job naming it is refused at submission.
  local vp poisoned="$W/sealed/poisoned.sealed"
  printf 'age,spend,note\n999,1.5,x\n' | "$C" seal --key kms://local/datasets --name customers - "$poisoned" >/dev/null 2>&1
  chmod 0644 "$poisoned"
  vp=$(sha256sum "$poisoned" | awk '{print "sha256:" $1}')
  cat >"$W/specs/quar-expect.yaml" <<SPEC
apiVersion: cordon/v1
kind: TrainingJob
metadata: {name: quar-expect}
spec:
  trainer: {image: $img, command: [/bin/sh, -c, "exit 0"]}
  inputs:
    - name: customers
      path: $poisoned
      expect:
        columns:
          age: {type: integer, min: 0, max: 120}
  output: {path: $W/out, key: kms://local/models}
  resources: {memory: 128Mi, timeout: 120s, scratch: 16Mi, pids: 32}
SPEC
  chmod 0644 "$W/specs/quar-expect.yaml"
  j=$(submit_as "$U" "$W/specs/quar-expect.yaml")
  wait_final "$j" 60
  check "quarantine: a failed expect: on the node ends the job input_rejected" test "$(jfield "$j" outcome)" = input_rejected
  local shown='[x["quarantined"] for x in d["versions"] if x["version"] == "'"$vp"'"]'
  check "quarantine: ... the node's registry has the version quarantined" \
    test "$("$C" --config "$NCFG" datasets show customers --json 2>/dev/null | jget - "$shown")" = "[True]"
  check "quarantine: ... and so has cordond's (from the job's manifest)" \
    test "$("$C" datasets show customers --json | jget - "$shown")" = "[True]"
  check "quarantine: ... audited by cordond with the node" \
    test "$("$C" audit show --json --job "$j" --action dataset.quarantined | jget - '(d["outcome"], d["details"]["sha256"], d["details"]["node"] != "")')" = "('ok', '$vp', True)"
  as_uid "$U" "$C" submit "$W/specs/quar-expect.yaml" >/dev/null 2>&1; rc=$?
  check "quarantine: ... the next job naming it is refused at submission (exit 14)" test "$rc" = 14
  "$C" release "customers@$vp" >/dev/null 2>&1
}

for s in "${sections[@]}"; do
  echo "# --- $s (at ${SECONDS}s)"
  "sec_$s"
  e2e_daemon_alive || { fail "$s: cordond still running at the end"; e2e_daemon_start --grace 3s --request-timeout 5s; }
done
check "the central audit log verifies at the end" e2e_audit_verify
echo "# done at ${SECONDS}s"
e2e_summary
