#!/usr/bin/env bash
# End-to-end tests of `cordon run`: real sealed data, the real sandbox, real
# trainers, for success and for every failure outcome, plus the leak test,
# hostile outputs (names carrying PII, reserved names, a 30,000-file flood),
# fds passed in place of paths, and images that would reach a host socket.
#   runner_test.sh BIN_DIR SOURCE_DIR [SECTION...]      (default: every section)
#   sections: outcomes outputs fds isolation — each on its own installation; the leak test and
#   the audit checks at the end run after whichever sections ran (ctest: runner.<section>).
# Everything lives under one temp dir; the only mount (the "output sealing
# failed" case) is made inside a private mount namespace (unshare -m).
set -uo pipefail
bin="$1"; src="$2"; shift 2
SECTIONS_ALL=(outcomes outputs fds isolation)
sections=("$@"); [ ${#sections[@]} -gt 0 ] || sections=("${SECTIONS_ALL[@]}")
for s in "${sections[@]}"; do
  case " ${SECTIONS_ALL[*]} " in *" $s "*) ;; *) echo "runner_test: unknown section $s (${SECTIONS_ALL[*]})" >&2; exit 2 ;; esac
done
if [ "$(id -u)" != 0 ]; then echo "SKIP: cordon run needs root (namespaces, cgroups)"; exit 77; fi
PY=/usr/bin/python3
T=$(mktemp -d /tmp/cordon-runner-XXXXXX)
cleanup() { cd /; [ -n "${KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
pass=0; fail=0
check() { local name="$1"; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name" >&2; fi; }
jget() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
has() { grep -qF -- "$2" <<<"$1"; }

MARK="ZQX$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')MARK"
cfg=$("$bin/cordon" init "$T/inst" 2>/dev/null)
export CORDON_CONFIG="$cfg"
"$bin/cordon" keys create datasets >/dev/null
"$bin/cordon" keys create models >/dev/null
mkdir -p "$T/work" "$T/sealed" "$T/out" "$T/specs"
cd "$T/work"

# The plaintext only ever exists in a pipe: generated, then sealed from stdin.
"$PY" "$src/scripts/demo.d/gen_customers.py" 3000 --marker "$MARK" |
  "$bin/cordon" seal --key kms://local/datasets --name customers - "$T/sealed/customers.sealed" >"$T/seal.out" 2>/dev/null
pin=$(tail -n1 "$T/seal.out")
check "seal prints the pin" has "$pin" "sha256:"
printf 'a,b\n1,2\n3,"unterminated\n' |
  "$bin/cordon" seal --key kms://local/datasets --name broken - "$T/sealed/broken.sealed" >/dev/null 2>&1
# One unseal, so the write-ahead check at the end has one whichever sections run.
"$bin/cordon" unseal "$T/sealed/broken.sealed" - >/dev/null 2>&1

# spec NAME IMAGE COMMAND_JSON [key=value ...]: writes $T/specs/NAME.yaml
spec() {
  local name="$1" image="$2" command="$3"; shift 3
  local columns="" pin_line="" timeout=60s memory=512Mi input="$T/sealed/customers.sealed" key=kms://local/models
  local out="$T/out/$name" scratch=128Mi metrics="" output_extra="" cpus=""
  for kv in "$@"; do
    case "$kv" in
      columns=*) columns="      columns: ${kv#columns=}" ;;
      pin=*) pin_line="      sha256: ${kv#pin=}" ;;
      timeout=*) timeout="${kv#timeout=}" ;;
      memory=*) memory="${kv#memory=}" ;;
      input=*) input="${kv#input=}" ;;
      key=*) key="${kv#key=}" ;;
      out=*) out="${kv#out=}" ;;
      metrics=*) metrics="  metrics: ${kv#metrics=}" ;;
      output_extra=*) output_extra="    ${kv#output_extra=}" ;;
      scratch=*) scratch="${kv#scratch=}" ;;
      cpus=*) cpus=", cpus: ${kv#cpus=}" ;;
    esac
  done
  cat >"$T/specs/$name.yaml" <<SPEC
apiVersion: cordon/v1
kind: TrainingJob
metadata:
  name: $name
spec:
  trainer:
    image: $image
    command: $command
  inputs:
    - name: customers
      path: $input
$columns
$pin_line
  output:
    path: $out
    key: $key
$output_extra
  resources: {memory: $memory, timeout: $timeout, scratch: $scratch, pids: 64$cpus}
$metrics
SPEC
}

# run NAME: cordon run --json; sets $rc and $J (the JSON file)
run() {
  J="$T/$1.json"
  "$bin/cordon" run --json "$T/specs/$1.yaml" >"$J" 2>"$T/$1.err"; rc=$?
}
outcome() { jget "$J" 'd["outcome"]'; }
unseal() { "$bin/cordon" unseal "$1" - 2>/dev/null; }
# extract DEST: restores the outputs of the job in $J into $T/x/DEST (echoes that path)
extract() {
  mkdir -p "$T/x"; rm -rf "$T/x/$1"
  "$bin/cordon" outputs extract "$(jget "$J" 'd["output_dir"]')" "$T/x/$1" >"$T/x/$1.out" 2>&1
  echo "$T/x/$1"
}
logfile() { echo "$(jget "$J" 'd["output_dir"]')/$(jget "$J" 'd["trainer_log"]["file"]')"; }

SH='[/bin/sh, -c'
# What a failing trainer also does: try to leak the plaintext it saw.
LEAK='cat /data/customers; cat /data/customers >/out/copy.csv; cp /data/customers /tmp/x;'
img="$src/tests/runner/trainers/sh"

# ===== outcomes: every outcome: the demo trainer, the projection, metrics, trainer_failed/timeout/memory_limit/sandbox_violation, a real trainer's loopback, input_rejected, setup_error
sec_outcomes() {
# --- success: the real demo trainer on projected columns ---
spec churn "$src/scripts/demo.d/trainer" '[/usr/bin/python3, /job/train.py, --epochs, "3"]' \
  'columns=[age, tenure, spend, churned]' "pin=$pin" 'metrics=[epoch, loss, auc]'
run churn
check "churn exit 0" test "$rc" = 0
check "churn outcome" test "$(outcome)" = succeeded
check "churn json has job_id" test -n "$(jget "$J" 'd["job_id"]')"
check "churn json exit_code" test "$(jget "$J" 'd["exit_code"]')" = 0
check "churn outputs: Cordon-made names only" test "$(jget "$J" '[o["file"] for o in d["outputs"]]')" = "['out-000001.sealed', 'out-000002.sealed']"
check "churn host files" test "$(ls "$(jget "$J" 'd["output_dir"]')" | tr '\n' ' ')" = "index.sealed manifest.json metrics.jsonl.sealed out-000001.sealed out-000002.sealed trainer.log.sealed "
check "churn manifest metrics" test "$(jget "$J" 'd["manifest"]["metrics"]["epoch"]')" = 3
check "churn manifest input hash" test "$(jget "$J" 'd["manifest"]["inputs"][0]["sha256"]')" = "$pin"
dir=$(jget "$J" 'd["output_dir"]')
check "churn output_dir_id is the job directory" test "$(jget "$J" '"%d %d" % (d["output_dir_id"]["dev"], d["output_dir_id"]["ino"])')" = "$(stat -c '%d %i' "$dir")"
check "churn trainer_log sha256 is the sealed file's" test "$(jget "$J" 'd["trainer_log"]["sha256"]')" = "sha256:$(sha256sum "$dir/trainer.log.sealed" | cut -d' ' -f1)"
check "churn sealed sha matches file" test "$(jget "$J" 'd["outputs"][0]["sha256"]')" = "sha256:$(sha256sum "$dir/out-000001.sealed" | cut -d' ' -f1)"
check "churn header dataset is Cordon-made" has "$("$bin/cordon" inspect "$dir/out-000002.sealed" 2>&1)" "out-000002"
x=$(extract churn)
check "churn extract restores the tree" test "$(cd "$x" && find . -type f | sort | tr '\n' ' ')" = "./metrics.json ./model.json "
check "churn model metrics extracted" has "$(cat "$x/metrics.json")" '"auc"'
check "churn extract into an existing dir refused" bash -c "! '$bin/cordon' outputs extract '$dir' '$x' 2>/dev/null"

# --- the projection: dropped columns never reach /data ---
spec projection "$src/tests/runner/trainers/projection-check" '[/job/check.sh]' 'columns=[age, tenure, spend, churned]'
run projection
x=$(extract projection)
check "projection succeeded" test "$(outcome)" = succeeded
check "projection: /data holds no PII characters" test "$(cat "$x/check.txt")" = CLEAN
check "projection: header is the projection" test "$(cat "$x/header.txt")" = "age,tenure,spend,churned"
check "projection: every row arrived" test "$(cat "$x/rows.txt")" = 3001
check "projection: undeclared metric dropped" test "$(jget "$J" 'd["manifest"]["metrics"]')" = None
check "unpinned input hashed for lineage" test "$(jget "$J" 'd["manifest"]["inputs"][0]["sha256"]')" = "$pin"
check "lineage hash audited" has "$("$bin/cordon" audit show --job "$(jget "$J" 'd["job_id"]')" --action input.hashed)" "$pin"

# --- the metrics channel keeps numbers and booleans only (strings are where PII travels) ---
spec metrics "$src/tests/runner/trainers/metrics" "[/job/emit.sh]" 'metrics=[epoch, loss, ok, name]'
run metrics
check "metrics job succeeded" test "$(outcome)" = succeeded
check "metrics: strings dropped, declared numbers kept" test "$(jget "$J" 'sorted(d["manifest"]["metrics"].items())')" = "[('epoch', 1), ('loss', 0.5), ('ok', True)]"
check "metrics: a declared name with a string value is dropped and counted" test "$(jget "$J" 'd["metrics_dropped"] >= 1 and d["manifest"]["metrics_dropped"] >= 1')" = True

# --- failure outcomes; each trainer also tries to leak the plaintext it saw ---
spec crash "$img" "$SH, \"$LEAK exit 3\"]"
run crash
check "crash exit 10" test "$rc" = 10
check "crash outcome" test "$(outcome)" = trainer_failed
check "crash exit_code 3" test "$(jget "$J" 'd["exit_code"]')" = 3
check "crash outputs still sealed" test "$(jget "$J" '[o["file"] for o in d["outputs"]]')" = "['out-000001.sealed']"
log=$(unseal "$(logfile)")
check "crash log captured (sealed)" has "$log" "$MARK"

spec timeout "$img" "$SH, \"$LEAK sleep 600\"]" timeout=2s
run timeout
check "timeout exit 11" test "$rc" = 11
check "timeout outcome" test "$(outcome)" = timeout

spec oom "$img" "$SH, \"$LEAK tail /dev/zero\"]" memory=64Mi
run oom
check "memory limit exit 12" test "$rc" = 12
check "memory limit outcome" test "$(outcome)" = memory_limit

spec violation "$img" "$SH, \"unshare --mount true; exit 0\"]"
run violation
check "violation exit 13" test "$rc" = 13
check "violation outcome" test "$(outcome)" = sandbox_violation
check "violation: --json names the escape call" test "$(jget "$J" 'd["violations_by_syscall"]')" = "{'unshare': 1}"
check "violation: the manifest names it" test "$(jget "$J" 'd["manifest"]["resources"]["violations_by_syscall"]')" = "{'unshare': 1}"
check "violation: the reason names it" has "$(jget "$J" 'd["reason"]')" "denied: unshare ×1"
check "violation: audited by name" has "$("$bin/cordon" audit show --job "$(jget "$J" 'd["job_id"]')" --action trainer.exited --json)" '"violations":{"unshare":1}'
# --- what a real trainer needs: loopback TCP, name probes, a CPU count that tells the truth;
# no egress; a harmless probe (a packet socket) is counted, never a failure; --json --show-logs
# keeps stdout for the JSON (the trainer's output goes to stderr) ---
spec net "$src/tests/runner/trainers/net" '[/usr/bin/python3, /job/net.py]' cpus=1
J="$T/net.json"; "$bin/cordon" run --json --show-logs "$T/specs/net.yaml" >"$J" 2>"$T/net.err"; rc=$?
check "--json --show-logs: stdout is one JSON object" "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$J"
check "--json --show-logs: the trainer's output went to stderr" grep -q '"tcp4": "PING"' "$T/net.err"
check "net job succeeded despite a probe" test "$rc,$(outcome)" = "0,succeeded"
N="$(extract net)/net.json"
check "loopback TCP pair (IPv4 and IPv6) inside the job" test "$(jget "$N" 'd["tcp4"], d["tcp6"]')" = "('PING', 'PING')"
check "getaddrinfo(AI_ADDRCONFIG) answers" test "$(jget "$N" 'd["addrconfig"]')" = "['127.0.0.1']"
check "no egress: TCP/UDP to non-loopback addresses unreachable" test "$(jget "$N" 'd["egress_tcp4"], d["egress_tcp6"], d["egress_udp4"]')" = "('ENETUNREACH', 'ENETUNREACH', 'ENETUNREACH')"
check "packet socket refused" test "$(jget "$N" 'd["packet"]')" = EPERM
check "the probe is counted and named, no violation" test "$(jget "$J" 'd["probes_by_syscall"], d["seccomp_violations"]')" = "({'socket(AF_PACKET)': 1}, 0)"
check "cpus: 1 shows one CPU" test "$(jget "$N" 'd["affinity"]')" = 1
check "cpus: 1 sets the thread pools to 1" test "$(jget "$N" 'sorted(set(d["threads_env"].values()))')" = "['1']"
# --- a console script whose interpreter is not in the sandbox: the trainer's fault, named ---
mkdir -p "$T/img-venv/bin"; printf '#!/opt/venv/bin/python3\nprint("never")\n' >"$T/img-venv/bin/train"; chmod 0755 "$T/img-venv/bin/train"
spec venv "$T/img-venv" '[/job/bin/train]'
run venv
check "missing interpreter: trainer_failed (10)" test "$rc,$(outcome)" = "10,trainer_failed"
check "missing interpreter: named" test "$(jget "$J" 'd["reason"]')" = "/job/bin/train: interpreter /opt/venv/bin/python3 not found"

# --- input_rejected ---
spec badpin "$img" "$SH, \"exit 0\"]" "pin=sha256:$(printf '0%.0s' $(seq 64))"
run badpin
check "bad pin exit 14" test "$rc" = 14
check "bad pin outcome" test "$(outcome)" = input_rejected
check "bad pin reason names both hashes" has "$(jget "$J" 'd["reason"]')" "$pin"
check "bad pin audited" has "$("$bin/cordon" audit show --action input.integrity_failed --json)" '"expected":"sha256:0000'

cp "$T/sealed/customers.sealed" "$T/sealed/tampered.sealed"
size=$(stat -c %s "$T/sealed/tampered.sealed")
printf '\x55' | dd of="$T/sealed/tampered.sealed" bs=1 seek=$((size / 2)) conv=notrunc status=none
spec tampered "$img" "$SH, \"exit 0\"]" "input=$T/sealed/tampered.sealed"
run tampered
check "tampered chunk exit 14" test "$rc" = 14
check "tampered chunk reason" has "$(jget "$J" 'd["reason"]')" "authentication"
check "tampered: trainer never ran" test "$(jget "$J" 'd["exit_code"]')" = None

spec nocolumn "$img" "$SH, \"exit 0\"]" 'columns=[age, income]'
run nocolumn
check "missing column exit 14" test "$rc" = 14
check "missing column reason" has "$(jget "$J" 'd["reason"]')" "column 'income' is not in the header"

spec badcsv "$img" "$SH, \"exit 0\"]" "input=$T/sealed/broken.sealed" 'columns=[a]'
run badcsv
check "malformed csv exit 14" test "$rc" = 14
check "malformed csv names the row" has "$(jget "$J" 'd["reason"]')" "CSV row 3"

# --- setup_error ---
spec nokey "$img" "$SH, \"exit 0\"]" key=kms://local/nonexistent
run nokey
check "missing output key exit 15" test "$rc" = 15
check "missing output key outcome" test "$(outcome)" = setup_error
}

# ===== outputs: hostile outputs, names carrying PII, a 30,000-file flood and the caps
sec_outputs() {
# --- hostile outputs: links, FIFOs, devices-to-be, sparse giants, reserved names ---
HOSTILE='ln -s /etc/shadow /out/shadow; ln -s /data/customers /out/data-link; mkfifo /out/fifo;'
HOSTILE="$HOSTILE truncate -s 100G /out/huge; echo x >/out/a; ln /out/a /out/b; echo fake >/out/trainer.log.sealed;"
HOSTILE="$HOSTILE mkdir -p /out/sub/dir /out/manifest.json; echo fake-index >/out/index.sealed; echo ok >/out/sub/dir/result.txt; exit 0"
spec hostile "$img" "$SH, \"$HOSTILE\"]"
run hostile
dir=$(jget "$J" 'd["output_dir"]')
check "hostile outputs job succeeds" test "$(outcome)" = succeeded
check "hostile outputs refused by kind" test "$(jget "$J" 'sorted(d["refused_outputs"].items())')" = "[('byte_cap', 1), ('fifo', 1), ('hard_link', 2), ('symlink', 2)]"
check "hostile: manifest.json is Cordon's despite mkdir /out/manifest.json" test "$(jget "$dir/manifest.json" 'd["job_id"]')" = "$(jget "$J" 'd["job_id"]')"
check "hostile: index.sealed and trainer.log.sealed are Cordon's" has "$("$bin/cordon" inspect "$dir/index.sealed" 2>&1; "$bin/cordon" inspect "$dir/trainer.log.sealed" 2>&1)" "trainer.log"
check "hostile: only Cordon-made names on the host" test "$(ls "$dir" | grep -cvE '^(out-[0-9]{6}\.sealed|index\.sealed|trainer\.log\.sealed|manifest\.json)$')" = 0
x=$(extract hostile)
check "hostile nested output restored" test "$(cat "$x/sub/dir/result.txt")" = ok
check "hostile: a file named trainer.log.sealed is just an output" test "$(cat "$x/trainer.log.sealed")" = fake
check "hostile: a file named index.sealed is just an output" test "$(cat "$x/index.sealed")" = fake-index
check "hostile: no link was followed" test "$(find "$T/out/hostile" -type l | wc -l)" = 0
check "hostile: refusals audited by kind" has "$("$bin/cordon" audit show --action output.refused --json)" '"kind":"symlink"'

# --- names carrying PII: output files, directories and metric keys named after a row ---
PII="Jane_Doe_123-45-6789"
mkdir -p "$T/img-pii"
cat >"$T/img-pii/run.sh" <<TRAINER
mkdir -p "/out/$PII/by-row"
echo "model for $PII" >"/out/$PII/by-row/$PII.txt"
echo ok >/out/plain.txt
ln -s /etc/passwd "/out/link-$PII"
echo '{"loss": 0.5, "$PII": 1}' >>"\$CORDON_METRICS"
TRAINER
spec pii "$T/img-pii" '[/bin/sh, /job/run.sh]' 'metrics=[loss]'
run pii
dir=$(jget "$J" 'd["output_dir"]')
check "pii job succeeded" test "$(outcome)" = succeeded
check "pii: metric key dropped and counted" test "$(jget "$J" 'd["metrics_dropped"]')" = 1
check "pii: declared metric kept" test "$(jget "$J" 'd["manifest"]["metrics"]')" = "{'loss': 0.5}"
check "pii: not in host file names" test -z "$(find "$T/out" | grep -F -- "$PII")"
check "pii: not in the manifest, the report or the CLI output" bash -c "! grep -rqF -- '$PII' '$dir' '$J' '$T/pii.err'"
check "pii: not in the audit log" bash -c "! grep -rqF -- '$PII' '$T/inst/audit'"
check "pii: not in the text report" bash -c "! '$bin/cordon' run '$T/specs/pii.yaml' 2>&1 | grep -qF -- '$PII'"
check "pii: not in the sealed headers' cleartext" bash -c "! for f in '$dir'/*.sealed; do '$bin/cordon' inspect \"\$f\"; done 2>&1 | grep -qF -- '$PII'"
x=$(extract pii)
check "pii: extract restores the tree" test "$(cat "$x/$PII/by-row/$PII.txt")" = "model for $PII"
check "pii: extract output carries no restored name" bash -c "! grep -qF -- '$PII' '$x.out'"
check "pii: not in the audit log after extract" bash -c "! grep -rqF -- '$PII' '$T/inst/audit'"

# --- a flood of 30,000 files: stage-out stays bounded, and so does the audit log ---
mkdir -p "$T/img-flood"
echo 'cd /out && seq -f f%05g 1 30000 | xargs touch && echo x >f00001' >"$T/img-flood/run.sh"
spec flood "$T/img-flood" '[/bin/sh, /job/run.sh]' timeout=180s  # generous: ASan builds are slow
start=$(date +%s)
run flood
took=$(( $(date +%s) - start ))
echo "flood: ${took}s"
check "flood job succeeded" test "$(outcome)" = succeeded
check "flood: 10,000 sealed (the default cap)" test "$(jget "$J" 'len(d["outputs"])')" = 10000
check "flood: the rest refused and counted" test "$(jget "$J" 'd["refused_outputs"]')" = "{'file_cap': 20000}"
entries=$("$bin/cordon" audit show --job "$(jget "$J" 'd["job_id"]')" --json | wc -l)
check "flood: audit entries bounded ($entries)" test "$entries" -le 40
check "flood: finished in ${took}s (< 240)" test "$took" -lt 240
spec flood-cap "$T/img-flood" '[/bin/sh, /job/run.sh]' 'output_extra=max_files: 3' timeout=180s
run flood-cap
check "flood: spec cap max_files" test "$(jget "$J" 'len(d["outputs"])'),$(jget "$J" 'd["refused_outputs"]["file_cap"]')" = "3,29997"
mkdir -p "$T/img-bytes"
echo 'head -c 3000 /dev/zero >/out/a; head -c 3000 /dev/zero >/out/b; head -c 10 /dev/zero >/out/c' >"$T/img-bytes/run.sh"
spec bytes-cap "$T/img-bytes" '[/bin/sh, /job/run.sh]' 'output_extra=max_bytes: 4Ki'
run bytes-cap
check "byte cap: a and c sealed, b refused" test "$(jget "$J" 'len(d["outputs"])'),$(jget "$J" 'd["refused_outputs"]')" = "2,{'byte_cap': 1}"
}

# ===== fds: inputs, the output directory and the image by fd, paths swapped under them
sec_fds() {
# --- inputs by fd: the path swapped for a symlink after the daemon opened it ---
cp "$T/sealed/customers.sealed" "$T/sealed/swap.sealed"
spec byfd "$img" "$SH, \"head -n1 /data/customers >/out/header\"]" "input=$T/sealed/swap.sealed" 'columns=[age, tenure]'
exec 7<"$T/sealed/swap.sealed"
rm "$T/sealed/swap.sealed"; ln -s "$T/sealed/broken.sealed" "$T/sealed/swap.sealed"
J="$T/byfd.json"; "$bin/cordon" run --json --input-fd customers=7 "$T/specs/byfd.yaml" >"$J" 2>"$T/byfd.err"; rc=$?
exec 7<&-
check "input fd: the fd's file is used" test "$(outcome)" = succeeded
check "input fd: the header is the fd's file's" test "$(cat "$(extract byfd)/header")" = "age,tenure"
check "input fd: audited as via_fd" has "$("$bin/cordon" audit show --job "$(jget "$J" 'd["job_id"]')" --action input.verify)" "via_fd=true"
check "input fd: a name the spec does not have is refused" bash -c "'$bin/cordon' run --input-fd nosuch=0 '$T/specs/byfd.yaml' >/dev/null 2>&1; test \$? = 15"
check "input fd: not an fd" bash -c "'$bin/cordon' run --input-fd customers=99 '$T/specs/byfd.yaml' >/dev/null 2>&1; test \$? = 2"

# --- the output directory by fd: the path swapped for a symlink before and during the run ---
mkdir -p "$T/outfd/orig" "$T/outfd/elsewhere"
spec outfd "$img" "$SH, \"sleep 2; echo r >/out/r\"]" "out=$T/outfd/orig"
exec 8<"$T/outfd/orig"
mv "$T/outfd/orig" "$T/outfd/moved"; ln -s "$T/outfd/elsewhere" "$T/outfd/orig"
J="$T/outfd.json"; "$bin/cordon" run --json --output-fd 8 "$T/specs/outfd.yaml" >"$J" 2>"$T/outfd.err"; rc=$?
exec 8<&-
check "output fd: job succeeded" test "$(outcome)" = succeeded
check "output fd: the job directory is in the fd's directory" test -f "$T/outfd/moved/$(jget "$J" 'd["job_id"]')/manifest.json"
check "output fd: nothing written through the symlink" test -z "$(ls -A "$T/outfd/elsewhere")"
rm "$T/outfd/orig"; mv "$T/outfd/moved" "$T/outfd/orig"
spec outswap "$img" "$SH, \"sleep 3; echo r >/out/r\"]" "out=$T/outfd/orig"
"$bin/cordon" run --json "$T/specs/outswap.yaml" >"$T/outswap.json" 2>/dev/null &
runner=$!
sleep 1.5
mv "$T/outfd/orig" "$T/outfd/moved2"; ln -s "$T/outfd/elsewhere" "$T/outfd/orig"
wait $runner; J="$T/outswap.json"
check "output swapped while the trainer runs: root writes only into the original directory" test -f "$T/outfd/moved2/$(jget "$J" 'd["job_id"]')/manifest.json"
check "output swapped: nothing in the symlink's target" test -z "$(ls -A "$T/outfd/elsewhere")"

# --- the image by fd: its path need not even exist ---
mkdir -p "$T/img-fd"; echo 'echo fd-image >/out/o' >"$T/img-fd/run.sh"
spec imgfd "$T/no-such-image" '[/bin/sh, /job/run.sh]'
exec 9<"$T/img-fd"
J="$T/imgfd.json"; "$bin/cordon" run --json --image-fd 9 "$T/specs/imgfd.yaml" >"$J" 2>"$T/imgfd.err"; rc=$?
exec 9<&-
check "image fd: bound from the fd" test "$(cat "$(extract imgfd)/o")" = fd-image
}

# ===== isolation: no host socket reachable, output sealing failing on a full file system
sec_isolation() {
# --- the sandbox reaches no host socket ---
mkdir -p "$T/img-sock/sub"
"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/img-sock/sub/cordon.sock"
spec imgsock "$T/img-sock" "$SH, \"exit 0\"]"
run imgsock
check "image with a socket: setup_error" test "$(outcome)" = setup_error
check "image with a socket: the reason names its path in the image" has "$(jget "$J" 'd["reason"]')" "a unix socket at 'sub/cordon.sock'"
mkdir -p "$T/img-fifo"; mkfifo "$T/img-fifo/pipe"
spec imgfifo "$T/img-fifo" "$SH, \"exit 0\"]"
run imgfifo
check "image with a FIFO refused" has "$(jget "$J" 'd["reason"]')" "a FIFO at 'pipe'"
mkdir -p "$T/img-open"; chmod 0777 "$T/img-open"
spec imgopen "$T/img-open" "$SH, \"exit 0\"]"
run imgopen
check "image writable by every user refused" has "$(jget "$J" 'd["reason"]')" "writable by every user"
# A listener on the host; the trainer tries its path, the daemon's socket path and /job.
"$PY" - "$T/host.sock" "$T/host.connected" <<'LISTEN' &
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); s.settimeout(30)
try:
    s.accept(); open(sys.argv[2], "w").write("CONNECTED")
except OSError:
    pass
LISTEN
listener=$!
sleep 0.5
mkdir -p "$T/img-connect"
cat >"$T/img-connect/connect.py" <<'TRAINER'
import socket, sys
for path in sys.argv[1:]:
    try:
        socket.socket(socket.AF_UNIX).connect(path)
        sys.exit(7)
    except OSError:
        pass
TRAINER
spec connect "$T/img-connect" "[/usr/bin/python3, /job/connect.py, $T/host.sock, /run/cordon/cordon.sock, $T/inst/run/cordon.sock]"
run connect
check "connect to a host socket: held (the trainer could not connect)" test "$(outcome),$(jget "$J" 'd["exit_code"]')" = "succeeded,0"
check "connect to a host socket: the listener saw nothing" test ! -e "$T/host.connected"
kill $listener 2>/dev/null; wait $listener 2>/dev/null
# cordond's socket on the image's filesystem: a socket hard-linked in after the scan. The kernel
# refuses that link to any user but root when fs.protected_hardlinks is 1; otherwise Cordon
# refuses an image on the socket's filesystem.
sock=$(sed -n 's/^ *socket: *//p' "$cfg" | tr -d '"')
mkdir -p "$(dirname "$sock")" "$T/img-samefs"; chmod 0777 "$(dirname "$sock")"; chmod 1777 "$T/img-samefs"
"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock"; chmod 0666 "$sock"
spec samefs "$T/img-samefs" "$SH, \"exit 0\"]"
if [ "$(cat /proc/sys/fs/protected_hardlinks)" = 1 ]; then
  check "hard link of the daemon socket by another user: refused by the kernel" \
    bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups ln '$sock' '$T/img-samefs/s' 2>/dev/null"
  chmod 0755 "$T/img-samefs"
  run samefs
  check "image on the daemon socket's filesystem: allowed (links protected)" test "$(outcome)" = succeeded
else
  chmod 0755 "$T/img-samefs"
  run samefs
  check "image on the daemon socket's filesystem refused" has "$(jget "$J" 'd["reason"]')" "same filesystem as cordond's socket"
fi
rm -f "$sock"; chmod 0755 "$(dirname "$sock")"

# --- output sealing fails (a full output file system, inside a private mount namespace) ---
spec sealfail "$img" "$SH, \"$LEAK head -c 2000000 /dev/urandom >/out/big; exit 0\"]" out="$T/tiny/out"
mkdir -p "$T/tiny"
# The tmpfs exists only in that namespace: what is left on it is listed from inside.
unshare -m sh -c "mount -t tmpfs -o size=256k tmpfs '$T/tiny' && '$bin/cordon' run --json '$T/specs/sealfail.yaml';
  rc=\$?; find '$T/tiny/out' -type f >'$T/sealfail.left'; exit \$rc" \
  >"$T/sealfail.json" 2>"$T/sealfail.err"; rc=$?; J="$T/sealfail.json"
check "seal failure exit 15" test "$rc" = 15
check "seal failure reason" has "$(jget "$J" 'd["reason"]')" "stage-out"
check "seal failure: the job directory was made on the full file system" grep -q manifest.json "$T/sealfail.left"
check "seal failure: no partial file left" bash -c "! grep -q 'partial' '$T/sealfail.left'"
}

for s in "${sections[@]}"; do echo "# --- section $s"; "sec_$s"; done

# --- the leak test: the marker is nowhere persistent, after every outcome above ---
leaks=$(grep -rlF -- "$MARK" "$T/inst" "$T/out" "$T/outfd" "$T/work" "$T/specs" "$T"/*.json "$T"/*.err /var/tmp /dev/shm 2>/dev/null)
leaks="$leaks$(grep -rlF -- "$MARK" /tmp --exclude-dir="$(basename "$T")" 2>/dev/null | head -5)"
check "leak test: marker absent from every persistent place" test -z "$leaks"
[ -z "$leaks" ] || echo "marker found in: $leaks" >&2

# --- key and sealed-file operations are audited write-ahead: intent first, then the outcome ---
ops=$("$bin/cordon" audit show --json)
for action in key.created dataset.sealed dataset.unsealed; do
  check "$action intent recorded" has "$ops" "\"action\":\"$action\""
done
check "unseal intent precedes its outcome" "$PY" -c '
import json, sys
entries = [json.loads(l) for l in sys.stdin if l.strip()]
unseals = [e for e in entries if e["action"] == "dataset.unsealed"]
assert unseals and unseals[0]["outcome"] == "intent", unseals[:1]
done = [e for e in unseals if e["outcome"] == "ok"]
assert done and done[0]["details"]["intent_seq"] == unseals[0]["seq"]
' <<<"$ops"

# --- the audit log of all of the above verifies, and shows each job ---
check "audit verifies" has "$("$bin/cordon" audit verify --verifier-key "$T/inst/state/audit-verifier.key" 2>&1)" "ok:"
[ ! -f "$T/churn.json" ] || check "audit timeline of the churn job" has "$("$bin/cordon" audit show --job "$(jget "$T/churn.json" 'd["job_id"]')")" "job.finished"

echo "$pass passed, $fail failed"
test "$fail" = 0
