#!/usr/bin/env bash
# The poisoning drill and the incident-response commands end to end, with real
# keys, real sealed data, the real sandbox and a real cordond
# (docs/INCIDENT-RESPONSE.md is the runbook these sections follow).
#
#   incident_test.sh [--bin BIN_DIR] [SECTION...]     (default: every section)
#   sections: drill crash admin manual
#     drill: seal a good version, train; seal a poisoned one (labels flipped on a
#            slice, out-of-range ages); the job with `expect:` is stopped before
#            training (input_rejected, each failed check with its observed value
#            in the audit log, no plaintext), the version is quarantined, diff
#            shows the change, restore brings back the good one, retraining
#            succeeds, rotate + rewrap --all + disable the old version, and the
#            incident report lists every step.
#     crash: kill -9 during `rewrap --all`; every file keeps a whole header, old
#            or new; a header torn as by a power loss (an unended batch of in-place
#            writes in the journal) is put back; the rerun resumes; no file damaged.
#     admin: through cordond: a non-admin is refused, an admin quarantines,
#            reads the registry and halts a queued and a running job (audited with
#            their uid); op halt itself is root's. cordond refuses a job naming a
#            quarantined version at submission (exit 14), and one queued before the
#            quarantine at start (failed, input_rejected), before any runner.
#     manual: a `cordon run` started by hand is halted through its registration
#            (<state_dir>/runs/) by root and by an admin through cordond (exit 18, nothing
#            sealed, input quarantined, audited); hostile records (a reused pid, a symbolic
#            link, another's file, another job's record, an extra member, an open directory)
#            are refused and the process they name is never signalled; the record of a run
#            killed with SIGKILL is swept by the next halt lookup (or registration).
# Needs root. KEEP=1 keeps the temp dir; E2E_VERBOSE=1 prints passes.
set -uo pipefail
SECTIONS_ALL=(drill crash admin manual)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/e2e.sh"
e2e_sections incident "$@"
e2e_init "$BIN" incident
command -v setpriv >/dev/null || e2e_skip "setpriv missing"
img="$src/tests/runner/trainers/sh"

# fresh SECTION: an installation under $T/SECTION (W) with keys datasets/models, data dir D.
fresh() {
  W="$T/$1"; D="$W/data"
  mkdir -m 0755 "$W" "$D" "$W/specs" && mkdir -m 0777 "$W/out" || return 1
  e2e_install "$W/inst" || return 1
  local k
  for k in datasets models; do "$C" keys create "$k" >/dev/null 2>&1 || return 1; done
  MARK=$(e2e_marker PIIQ)
}

# churn_csv FILE poisoned: 200 rows (id,age,churned,note); 10% churn. Poisoned:
# churned flipped to 1 on rows 0..79 and ages of 999 on rows 0..4. Every note holds MARK.
churn_csv() {
  "$PY" - "$1" "$2" "$MARK" <<'PYCSV'
import sys
path, poisoned, mark = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
with open(path, "w") as f:
    f.write("id,age,churned,note\n")
    for i in range(200):
        age = 20 + (i * 7) % 60
        churned = 1 if i % 10 == 0 else 0
        if poisoned and i < 80: churned = 1
        if poisoned and i < 5: age = 999
        f.write(f"{i},{age},{churned},{mark}-{i}\n")
PYCSV
}

# train_spec FILE INPUT: a job on INPUT with the drill's expectations.
train_spec() {
  cat >"$1" <<SPEC
apiVersion: cordon/v1
kind: TrainingJob
metadata:
  name: churn-train
spec:
  trainer:
    image: $img
    command: [/bin/sh, -c, "wc -l < /data/customers > /out/model.txt"]
  inputs:
    - name: customers
      path: $2
      columns: [age, churned]
      expect:
        rows: {min: 100, max: 100000}
        columns:
          id: {type: integer, unique: true}
          age: {type: integer, min: 0, max: 120, max_null_fraction: 0.0}
          churned: {allowed: ["0", "1"]}
        max_drift: 0.2
  output:
    path: $W/out
    key: kms://local/models
  resources: {memory: 256Mi, timeout: 60s, scratch: 16Mi, pids: 32}
SPEC
  chmod 0644 "$1"
}

# long_spec FILE: a job on $D/churn.sealed whose trainer writes a model at once, then sleeps 50 s.
long_spec() {
  cat >"$1" <<SPEC
apiVersion: cordon/v1
kind: TrainingJob
metadata: {name: long}
spec:
  trainer: {image: $img, command: [/bin/sh, -c, "echo x > /out/model.txt; echo started; sleep 50"]}
  inputs: [{name: customers, path: $D/churn.sealed}]
  output: {path: $W/out, key: kms://local/models}
  resources: {memory: 256Mi, timeout: 60s, scratch: 16Mi, pids: 32}
SPEC
  chmod 0644 "$1"
}

run_job() { "$C" run --json "$1" 2>"$W/run.err"; }  # prints the --json report
job_of() { jget - 'd["job_id"]' <<<"$1"; }
audit_of() { "$C" audit show --json --action "$1" 2>/dev/null; }
sha() { sha256sum "$1" | awk '{print "sha256:" $1}'; }

# ---------------------------------------------------------------- drill
sec_drill() {
  fresh drill || { fail "drill: set-up failed"; return 1; }
  churn_csv "$W/good.csv" 0; churn_csv "$W/bad.csv" 1
  local v1 v2 r rc job1 job2 job3 job4 out
  v1=$("$C" seal --key kms://local/datasets --name churn "$W/good.csv" "$D/churn-v1.sealed" 2>/dev/null | tail -n1)
  cp "$D/churn-v1.sealed" "$D/churn.sealed"   # published
  check "seal registers the version (rows, digest, who)" \
    test "$("$C" datasets show churn --json | jget - '(d["versions"][0]["rows"], d["versions"][0]["sealed_by"]["uid"], d["versions"][0]["content_digest"][:12])')" = "(200, 0, 'hmac-sha256:')"
  check "mark-good records the last known good" "$C" datasets mark-good churn "$v1"
  train_spec "$W/specs/train.yaml" "$D/churn.sealed"
  r=$(run_job "$W/specs/train.yaml"); rc=$?; job1=$(job_of "$r")
  check "the good version trains (exit 0)" test "$rc" = 0
  check "its expectations passed, audited" has "$(audit_of input.expectations)" "\"job\":\"$job1\""

  # The poisoned batch: sealed, published over the same path.
  v2=$("$C" seal --key kms://local/datasets --name churn "$W/bad.csv" "$D/churn-v2.sealed" 2>/dev/null | tail -n1)
  cp "$D/churn-v2.sealed" "$D/churn.sealed"
  r=$(run_job "$W/specs/train.yaml"); rc=$?; job2=$(job_of "$r")
  check "poisoned: input_rejected (exit 14)" test "$rc" = 14
  check "poisoned: the reason names the failed checks" has "$(jget - 'd["reason"]' <<<"$r")" "expectations failed"
  out=$(audit_of input.expectations | grep "\"job\":\"$job2\"")
  check "audit: the failed max check with its observed value (999)" has "$out" '"check":"max"'
  check "audit: observed max 999" has "$out" '999'
  check "audit: the drift against the last known good (churned)" has "$out" '"check":"max_drift","column":"churned"'
  check "audit: no plaintext (the note marker) anywhere in the log" sh -c "! grep -rq '$MARK' '$AUDIT_DIR' '$STATE_DIR'"
  check "stopped before training: nothing sealed from the trainer" sh -c "! ls '$W/out/$job2'/out-*.sealed 2>/dev/null"
  check "the poisoned version is quarantined" \
    test "$("$C" datasets show churn --json | jget - '[v["quarantined"] for v in d["versions"] if v["version"] == "'"$v2"'"][0]')" = True
  r=$(run_job "$W/specs/train.yaml"); rc=$?; job3=$(job_of "$r")
  check "a job naming the quarantined version fails at step 2 (exit 14)" test "$rc" = 14
  check "... with a clear error" has "$(jget - 'd["reason"]' <<<"$r")" "is quarantined"
  check "... before any key was unwrapped" sh -c "! '$C' audit show --json --job '$job3' --action key.unwrap | grep -q ."

  out=$("$C" datasets diff churn "$v1" "$v2" --json)
  local changed
  changed=$("$PY" -c 'import sys; a=set(open(sys.argv[1]).read().split()); b=set(open(sys.argv[2]).read().split()); print((len(b-a), len(a-b)))' "$W/good.csv" "$W/bad.csv")
  check "diff: rows added/removed by keyed row hash $changed" \
    test "$(jget - '(d["rows_added"], d["rows_removed"])' <<<"$out")" = "$changed"
  check "diff: age and churned summaries changed, id and note did not" \
    test "$(jget - '(sorted(d["columns_changed"]), d["columns"]["age"]["to"]["max"])' <<<"$out")" = "(['age', 'churned'], 999.0)"
  check "diff: no plaintext in its output" hasnt "$out" "$MARK"

  check "restore refuses the quarantined version" sh -c "! '$C' restore churn --to '$v2' 2>/dev/null"
  check "restore brings back the good version" "$C" restore churn --to "$v1" --install "$D/churn.sealed"
  check "the installed file is the good version" test "$(sha "$D/churn.sealed")" = "$v1"
  r=$(run_job "$W/specs/train.yaml"); rc=$?; job4=$(job_of "$r")
  check "retraining succeeds (exit 0)" test "$rc" = 0

  check "keys rotate datasets" "$C" keys rotate datasets
  out=$("$C" rewrap --all --key kms://local/datasets --dir "$D" --json 2>/dev/null)
  check "rewrap --all: every file of the key (v1, v2, published copy, hash key)" test "$(jget - 'd["rewrapped"]' <<<"$out")" -ge 4
  check "rewrap --all: a second pass has nothing left" \
    test "$("$C" rewrap --all --key kms://local/datasets --dir "$D" --json 2>/dev/null | jget - 'd["rewrapped"]')" = 0
  check "keys disable the old version" "$C" keys disable datasets --version 1
  check "the versions keep their identity (alias = new file hash)" \
    test "$("$C" datasets show churn --json | jget - 'len([v for v in d["versions"] if v["aliases"]])')" = 2
  r=$(run_job "$W/specs/train.yaml"); rc=$?
  check "training after rotation + disable succeeds" test "$rc" = 0

  out=$("$C" incident report --dataset churn --json)
  local a
  for a in dataset.registered dataset.mark_good input.expectations dataset.quarantined dataset.diff dataset.restore \
           key.rotated key.rewrap_all key.version_disabled job.finished output.sealed; do
    check "incident report lists $a" has "$(jget - '" ".join(sorted(set(e["action"] for e in d["timeline"])))' <<<"$out")" "$a"
  done
  check "incident report lists every job that read it" \
    test "$(jget - 'len([j for j in ["'"$job1"'","'"$job2"'","'"$job4"'"] if j in d["jobs"]])' <<<"$out")" = 3
  check "the audit log verifies" e2e_audit_verify
}

# ---------------------------------------------------------------- crash
sec_crash() {
  fresh crash || { fail "crash: set-up failed"; return 1; }
  local i n=400 pid journal rc
  mkdir -m 0755 "$D/many"
  for ((i = 0; i < n; i++)); do printf 'x,%d\n' "$i" >"$W/p$i"; done
  for ((i = 0; i < n; i++)); do "$C" seal --no-register --key kms://local/datasets --name f$i "$W/p$i" "$D/many/f$i.sealed" >/dev/null 2>&1; done
  "$C" keys rotate datasets >/dev/null
  journal="$STATE_DIR/datasets/rewrap-kms___local_datasets.journal"
  # Small batches, killed after the first one is durable and at once while others are in
  # flight (copies written, renames half done): every file must stay old or new, never damaged.
  # The pass takes a fraction of a second (headers rewritten in place), so the first
  # progress line is watched for without sleeping between looks.
  "$C" rewrap --all --key kms://local/datasets --dir "$D" --batch 4 >/dev/null 2>"$W/progress" &
  pid=$!
  local deadline=$((SECONDS + 60))
  until grep -q '^rewrap: [0-9]*/' "$W/progress" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; do :; done
  check "killed mid-pass (kill -9 while it ran)" kill -9 "$pid"
  wait "$pid" 2>/dev/null
  local at_v2 at_v1 ok=0 torn
  versions() { for f in "$D"/many/*.sealed; do "$C" inspect --json "$f" 2>/dev/null | jget - 'd["key_version"]'; done; }
  at_v2=$(versions | grep -c '^2$'); at_v1=$(versions | grep -c '^1$')
  check "the crash left some files done and some not ($at_v2 of $n at v2)" test "$at_v2" -gt 0 -a "$at_v2" -lt "$n"
  check "right after the kill every file has a whole header, old or new ($at_v1 + $at_v2 of $n)" \
    test $((at_v1 + at_v2)) = "$n"
  # A resumed pass stopped while a batch of in-place header writes is open in
  # the journal (H lines after the last E), then killed: what a power loss can
  # leave that a kill cannot is a torn header, so one header of that batch is
  # torn (its first half from one version, the rest from the other).
  torn=$(python3 - "$journal" "$C" "$D" <<'PY2'
import os, signal, subprocess, sys, time
journal, cordon, data = sys.argv[1:4]
def open_batch():
    try:
        lines = open(journal).read().split("\n")
    except OSError:
        return []
    last_e = max([i for i, l in enumerate(lines) if l == "E"], default=-1)
    return [l.split(" ", 4) for l in lines[last_e + 1:] if l.startswith("H ") and l.count(" ") >= 4]
p = subprocess.Popen([cordon, "rewrap", "--all", "--key", "kms://local/datasets", "--dir", data, "--batch", "8"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
torn = ""
deadline = time.time() + 30
while p.poll() is None and time.time() < deadline and not torn:
    if not open_batch():
        continue
    os.kill(p.pid, signal.SIGSTOP)
    batch = open_batch()
    if batch:
        _, before, after, _, path = batch[0]
        before, after = bytes.fromhex(before), bytes.fromhex(after)
        with open(path, "r+b") as f:
            now = f.read(len(before))
            f.seek(0)
            f.write((before if now == after else after)[: len(before) // 2])
        torn = path
        os.kill(p.pid, signal.SIGKILL)
    os.kill(p.pid, signal.SIGCONT)
p.wait()
print(torn)
PY2
)
  check "a pass was stopped with a batch of in-place writes open, and a header torn" test -n "$torn"
  check "the torn header is refused (never decrypted with a wrong key)" sh -c "! '$C' unseal '$torn' - >/dev/null 2>&1"
  # Further kills at arbitrary moments of the resumed pass.
  for i in 0.01 0.03 0.07; do
    "$C" rewrap --all --key kms://local/datasets --dir "$D" --batch 8 >/dev/null 2>&1 &
    pid=$!
    sleep "$i"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  "$C" rewrap --all --key kms://local/datasets --dir "$D" >"$W/resume.out" 2>&1; rc=$?
  check "the rerun completes (exit 0)" test "$rc" = 0
  check "the journal is gone" test ! -e "$journal"
  for ((i = 0; i < n; i++)); do
    [ "$("$C" unseal "$D/many/f$i.sealed" - 2>/dev/null)" = "$(cat "$W/p$i")" ] && ok=$((ok + 1))
  done
  check "every file unseals to its plaintext ($ok of $n)" test "$ok" = "$n"
  check "every file is at the new version" \
    test "$(for f in "$D"/many/*.sealed; do "$C" inspect --json "$f" 2>/dev/null | jget - 'd["key_version"]'; done | grep -c '^2$')" = "$n"
  check "no temp file left" sh -c "! ls -a '$D/many' | grep -q cordon-tmp"
}

# ---------------------------------------------------------------- admin
sec_admin() {
  fresh admin || { fail "admin: set-up failed"; return 1; }
  churn_csv "$W/good.csv" 0
  local v1 out rc job
  v1=$("$C" seal --key kms://local/datasets --name churn "$W/good.csv" "$D/churn.sealed" 2>/dev/null | tail -n1)
  chmod 0644 "$D/churn.sealed"
  cat >"$INST/policy.yaml" <<POL
admins:
  uids: [0, 4101]
users:
  - uids: [0, 4101, 4102]
    datasets: ["*"]
    keys: ["*"]
    outputs: ["*"]
    images: ["*"]
POL
  e2e_cfg_set max_concurrent_jobs 1
  e2e_daemon_start --grace 3s || { fail "admin: cordond did not start"; return 1; }
  out=$(as_uid 4102 "$C" quarantine "churn@$v1" --reason "not mine" 2>&1); rc=$?
  check "a non-admin is refused through cordond (exit 3)" test "$rc" = 3
  check "... and the refusal is audited" has "$(audit_of request.refused)" "not an admin"
  check "a non-admin cannot read the registry either" sh -c "! as_uid 4102 '$C' datasets list >/dev/null 2>&1" 2>/dev/null
  as_uid 4101 "$C" quarantine "churn@$v1" --reason "admin drill" >/dev/null 2>&1; rc=$?
  check "an admin quarantines through cordond (exit 0)" test "$rc" = 0
  out=$(audit_of dataset.quarantine | tail -n1)
  check "audited with the admin's uid" test "$(jget - '(d["actor"]["uid"], d["details"]["via"])' <<<"$out")" = "(4101, 'cordond')"
  check "the admin reads the registry through cordond" \
    test "$(as_uid 4101 "$C" datasets show churn --json 2>/dev/null | jget - 'd["versions"][0]["quarantined"]')" = True
  check "an admin's forged --caller-uid is refused" sh -c "! as_uid 4101 '$C' datasets list --caller-uid 0 >/dev/null 2>&1"
  # cordond checks its registry at submission: a job naming the quarantined version is refused.
  long_spec "$W/specs/long.yaml"
  out=$("$C" submit "$W/specs/long.yaml" 2>&1); rc=$?
  check "a job naming a quarantined version is refused at submission (exit 14)" test "$rc" = 14
  check "... naming the dataset, the version and the reason" \
    has "$out" "dataset 'churn' version $v1 is quarantined (admin drill); release it with \`cordon release churn@$v1\`"
  job=$(sed -n 's/^cordon: job \(.*\) rejected$/\1/p' <<<"$out")
  check "... recorded rejected, outcome input_rejected" \
    test "$("$C" status "$job" --json | jget - 'd["state"] + ":" + d["outcome"]')" = rejected:input_rejected
  "$C" wait "$job" >/dev/null 2>&1; rc=$?
  check "... cordon wait exits 14 for it" test "$rc" = 14
  check "... input.quarantined audited by cordond at submission" \
    test "$("$C" audit show --json --job "$job" --action input.quarantined | jget - '(d["outcome"], d["details"]["at"], d["details"]["version"])')" = "('denied', 'submission', '$v1')"
  as_uid 4101 "$C" release "churn@$v1" >/dev/null 2>&1
  # halt: a running job is stopped at once; its inputs are quarantined; the log is sealed.
  job=$("$C" submit "$W/specs/long.yaml" 2>/dev/null | tail -n1)
  e2e_wait_for 20 e2e_is_running "$job"
  e2e_wait_for 20 sh -c "pgrep -f 'sleep 50' >/dev/null"
  local queued later
  queued=$("$C" submit "$W/specs/long.yaml" 2>/dev/null | tail -n1)
  later=$("$C" submit "$W/specs/long.yaml" 2>/dev/null | tail -n1)
  check "a second job waits in cordond's queue" test "$(e2e_state "$queued")" = queued
  out=$(e2e_request "{\"op\":\"halt\",\"job\":\"$job\"}" 4101)
  check "op halt is root's: an admin's own request is denied" has "$out" '"code":"denied"'
  check "... and the job runs on" e2e_is_running "$job"
  as_uid 4101 "$C" halt "$queued" --reason "not before we know" >/dev/null 2>&1; rc=$?
  check "an admin halts a queued job (exit 0)" test "$rc" = 0
  check "... it never runs: halted, state cancelled" \
    test "$("$C" status "$queued" --json | jget - 'd["outcome"] + ":" + d["state"]')" = halted:cancelled
  # A quarantine made while a job waits in the queue: checked again at start, before the runner.
  as_uid 4101 "$C" quarantine "churn@$v1" --reason "while queued" >/dev/null 2>&1
  as_uid 4101 "$C" halt "$job" --reason "suspected poisoning" >/dev/null 2>&1; rc=$?
  check "an admin halts a running job (exit 0)" test "$rc" = 0
  e2e_wait_for 20 e2e_is_final "$job"
  e2e_wait_for 20 e2e_is_final "$later"
  check "a job queued before the quarantine fails at start: failed, input_rejected" \
    test "$("$C" status "$later" --json | jget - 'd["state"] + ":" + d["outcome"]')" = failed:input_rejected
  check "... its reason names the version and the reason" \
    has "$("$C" status "$later" --json | jget - 'd["reason"]')" "at start: input 'customers' ($D/churn.sealed): dataset 'churn' version $v1 is quarantined (while queued)"
  "$C" wait "$later" >/dev/null 2>&1; rc=$?
  check "... cordon wait exits 14 (input_rejected)" test "$rc" = 14
  check "... no runner was started for it" sh -c "! '$C' audit show --json --job '$later' --action job.started | grep -q ."
  check "... input.quarantined audited by cordond at start" \
    test "$("$C" audit show --json --job "$later" --action input.quarantined | jget - '(d["outcome"], d["details"]["at"])')" = "('denied', 'start')"
  check "the halted job's outcome is halted" test "$("$C" status "$job" --json | jget - 'd["outcome"]')" = halted
  check "... its state is cancelled" test "$("$C" status "$job" --json | jget - 'd["state"]')" = cancelled
  "$C" wait "$job" >/dev/null 2>&1; rc=$?
  check "cordon wait exits 18 (halted)" test "$rc" = 18
  check "the runner exited 18 (halted)" test "$("$C" status "$job" --json | jget - 'd["exit_status"]')" = 18
  check "nothing it produced was sealed" sh -c "! ls '$W/out/$job'/out-*.sealed 2>/dev/null"
  check "its log was sealed" test -f "$W/out/$job/trainer.log.sealed"
  check "its input was quarantined" \
    test "$("$C" datasets show churn --json | jget - 'd["quarantined"] or d["versions"][0]["quarantined"]')" = True
  check "the halt is audited with the admin's uid" test "$(audit_of job.halt | tail -n1 | jget - 'd["actor"]["uid"]')" = 4101
  e2e_daemon_stop
  # A version the registry cannot record is not left sealed-but-unregistered.
  chmod 0755 "$STATE_DIR/datasets"
  "$C" seal --key kms://local/datasets --name churn "$W/good.csv" "$D/unregistered.sealed" >/dev/null 2>"$W/unreg.err"; rc=$?
  chmod 0700 "$STATE_DIR/datasets"
  check "a registry failure at seal time exits 1" test "$rc" = 1
  check "... naming the registry's problem" grep -q "registry" "$W/unreg.err"
  check "... and the sealed file is removed again" test ! -e "$D/unregistered.sealed"
  "$C" seal --key kms://local/datasets --name churn "$W/good.csv" "$D/unregistered.sealed" >/dev/null 2>&1; rc=$?
  check "sealing again once the registry is fixed works" test "$rc" = 0
}

# ---------------------------------------------------------------- manual
quarantined() { test "$("$C" datasets show churn --json | jget - 'd["quarantined"] or d["versions"][0]["quarantined"]')" = True; }
sleeping() { pgrep -f 'sleep 50' >/dev/null; }
alive() { kill -0 "$1" 2>/dev/null; }

# hand_run N: `cordon run` of long.yaml in the background (pid RPID, report $W/runN.json),
# once its trainer sleeps; its job id (from its registration) in RJOB.
hand_run() {
  "$C" run --json "$W/specs/long.yaml" >"$W/run$1.json" 2>"$W/run$1.err" &
  RPID=$!; e2e_track "$RPID"
  e2e_wait_for 30 sleeping
  RJOB=$(basename "$(grep -l "\"pid\":$RPID," "$STATE_DIR"/runs/*.json 2>/dev/null | head -n1)" .json)
}

# plant NAME JSON: a record under runs/ as root would write it (0600).
plant() { printf '%s\n' "$2" >"$STATE_DIR/runs/$1.json"; chmod 0600 "$STATE_DIR/runs/$1.json"; }

sec_manual() {
  fresh manual || { fail "manual: set-up failed"; return 1; }
  churn_csv "$W/good.csv" 0
  local v1 rc out rec n_halt
  v1=$("$C" seal --key kms://local/datasets --name churn "$W/good.csv" "$D/churn.sealed" 2>/dev/null | tail -n1)
  chmod 0644 "$D/churn.sealed"
  long_spec "$W/specs/long.yaml"
  hand_run 1
  rec="$STATE_DIR/runs/$RJOB.json"
  check "manual: the run registered itself under runs/ (found by its pid)" test -n "$RJOB" -a -f "$rec"
  check "manual: runs/ is root's 0700, the record 0600" \
    test "$(stat -c %U:%a "$STATE_DIR/runs")" = root:700 -a "$(stat -c %U:%a "$rec")" = root:600
  check "manual: the record names the job, the pid and its start time" \
    test "$(jget "$rec" '(d["job_id"], d["pid"], d["pid_start"])')" = "('$RJOB', $RPID, $(awk '{print $22}' "/proc/$RPID/stat"))"
  "$C" halt "$RJOB" --reason "suspected poisoning" >"$W/halt1.out" 2>&1; rc=$?
  check "manual: root halts a hand-started run (exit 0)" test "$rc" = 0
  wait "$RPID"; rc=$?
  check "manual: cordon run exits 18 (halted)" test "$rc" = 18
  check "manual: its report says halted" test "$(jget "$W/run1.json" 'd["outcome"]' 2>/dev/null)" = halted
  check "manual: nothing it produced was sealed (the model it wrote at once)" sh -c "! ls '$W/out/$RJOB'/out-*.sealed 2>/dev/null"
  check "manual: its log was sealed" test -f "$W/out/$RJOB/trainer.log.sealed"
  check "manual: its registration is gone" test ! -e "$rec"
  check "manual: its input was quarantined" quarantined
  out=$(audit_of job.halt | grep "\"job\":\"$RJOB\"" | tail -n1)
  check "manual: job.halt names the run it found and how it ended" \
    test "$(jget - '(d["outcome"], d["details"]["via"], d["details"]["ended"], d["details"]["job_outcome"])' <<<"$out")" = "('ok', 'local', True, 'halted')"
  check "manual: the quarantine is audited (by halt)" has "$(audit_of dataset.quarantined)" "\"job_ref\":\"$RJOB\""
  "$C" release churn >/dev/null 2>&1; "$C" release "churn@$v1" >/dev/null 2>&1

  # Through cordond, for an admin: the command cordond runs as root finds the registration.
  cat >"$INST/policy.yaml" <<POL
admins:
  uids: [0, 4101]
POL
  e2e_daemon_start --grace 3s || { fail "manual: cordond did not start"; return 1; }
  hand_run 2
  as_uid 4101 "$C" halt "$RJOB" --reason "admin drill" >/dev/null 2>&1; rc=$?
  check "manual: an admin halts a hand-started run through cordond (exit 0)" test "$rc" = 0
  wait "$RPID"; rc=$?
  check "manual: ... it exits 18" test "$rc" = 18
  check "manual: ... audited with the admin's uid via cordond" \
    test "$(audit_of job.halt | grep "\"job\":\"$RJOB\"" | tail -n1 | jget - '(d["actor"]["uid"], d["details"]["via"])')" = "(4101, 'cordond')"
  e2e_daemon_stop

  # A run killed with SIGKILL leaves its record; the next registration or halt lookup sweeps it.
  "$C" release churn >/dev/null 2>&1; "$C" release "churn@$v1" >/dev/null 2>&1
  hand_run 3
  rec="$STATE_DIR/runs/$RJOB.json"
  kill -9 "$RPID"; wait "$RPID" 2>/dev/null
  e2e_wait_for 10 sh -c "! pgrep -f 'sleep 50' >/dev/null"
  check "manual: a run killed with SIGKILL leaves its record" test -f "$rec"
  out=$("$C" halt nosuch-2 --reason x 2>&1); rc=$?
  check "manual: halt of another job sweeps it (exit 4 for the job it was asked about)" test "$rc" = 4 -a ! -e "$rec"
  check "manual: ... and says so" has "$out" "removed the stale record of job $RJOB"

  # Hostile records: refused, and the process they name (a sleep of ours) never signalled.
  local victim vstart
  sleep 300 & victim=$!; e2e_track "$victim"
  vstart=$(awk '{print $22}' "/proc/$victim/stat")
  local good="{\"job_id\":\"JOB\",\"pid\":$victim,\"pid_start\":$vstart,\"uid\":0}"
  plant reused-1 "{\"job_id\":\"reused-1\",\"pid\":$victim,\"pid_start\":$((vstart + 1)),\"uid\":0}"
  out=$("$C" halt reused-1 --reason x 2>&1); rc=$?
  check "manual: a record whose pid now runs another process: not running (exit 0)" test "$rc" = 0
  check "manual: ... says so" has "$out" "was not running"
  check "manual: ... the stale record is removed" test ! -e "$STATE_DIR/runs/reused-1.json"
  plant elsewhere "${good//JOB/link-1}"; mv "$STATE_DIR/runs/elsewhere.json" "$W/link-1.json"
  ln -s "$W/link-1.json" "$STATE_DIR/runs/link-1.json"
  out=$("$C" halt link-1 --reason x 2>&1); rc=$?
  check "manual: a symbolic link is refused (exit 1)" test "$rc" = 1
  check "manual: ... naming the file and the rule" has "$out" "runs/link-1.json: a symbolic link"
  plant theirs-1 "${good//JOB/theirs-1}"; chown 4101 "$STATE_DIR/runs/theirs-1.json"
  out=$("$C" halt theirs-1 --reason x 2>&1); rc=$?
  check "manual: a record not root's is refused" test "$rc" = 1 -a -n "$(has "$out" "not root's" && echo y)"
  plant other-1 "${good//JOB/other-2}"
  out=$("$C" halt other-1 --reason x 2>&1); rc=$?
  check "manual: a record naming another job is refused" test "$rc" = 1 -a -n "$(has "$out" "names job 'other-2'" && echo y)"
  plant extra-1 "${good//JOB/extra-1}"; sed -i 's/}$/,"cmd":"x"}/' "$STATE_DIR/runs/extra-1.json"
  out=$("$C" halt extra-1 --reason x 2>&1); rc=$?
  check "manual: a record with an extra member is refused" test "$rc" = 1 -a -n "$(has "$out" "exactly job_id, pid, pid_start, uid" && echo y)"
  plant open-1 "${good//JOB/open-1}"; chmod 0733 "$STATE_DIR/runs"
  out=$("$C" halt open-1 --reason x 2>&1); rc=$?
  chmod 0700 "$STATE_DIR/runs"
  check "manual: a runs/ directory others may write to is refused" test "$rc" = 1 -a -n "$(has "$out" "mode 0700" && echo y)"
  check "manual: ... the process each record named was never signalled" alive "$victim"
  check "manual: each refusal is audited" test "$(audit_of job.halt | grep -c '"outcome":"refused"')" = 5
  check "manual: a job nobody runs: exit 4" sh -c "'$C' halt nosuch-1 --reason x >/dev/null 2>&1; test \$? = 4"
  check "manual: a bad job id: exit 2" sh -c "'$C' halt ../x --reason x >/dev/null 2>&1; test \$? = 2"
  kill "$victim" 2>/dev/null; wait "$victim" 2>/dev/null
  check "manual: the audit log verifies" e2e_audit_verify
}

for s in "${sections[@]}"; do echo "# section $s"; "sec_$s"; done
e2e_summary
