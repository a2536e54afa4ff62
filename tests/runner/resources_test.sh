#!/usr/bin/env bash
# `cordon run` end to end, resources and live outputs: the job's memory cgroup holds the
# trainer's memory plus its scratch; a full scratch and a memory kill are named with the
# numbers; live outputs are sealed while the trainer runs and survive a kill -9 of the runner.
#
#   resources_test.sh [--bin BIN_DIR] [SECTION...]     (default: every section)
#   sections: scratch memory live live_crash metrics
# Each section has its own installation; any one runs alone (ctest -R '^runner\.live$').
# Needs root. KEEP=1 keeps the temp dir; E2E_VERBOSE=1 prints passes.
set -uo pipefail
SECTIONS_ALL=(scratch memory live live_crash metrics)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/e2e.sh"
e2e_sections runner "$@"
e2e_init "$BIN" runner-resources

# fresh SECTION: an installation under $T/SECTION (W) with the keys datasets and models and
# one sealed input.
fresh() {
  W="$T/$1"
  mkdir -p "$W/sealed" "$W/specs" "$W/out" "$W/img" || return 1
  e2e_install "$W/inst" || return 1
  "$C" keys create datasets >/dev/null 2>&1 && "$C" keys create models >/dev/null 2>&1 || return 1
  printf 'age,spend\n30,1.5\n41,2.5\n' | "$C" seal --key kms://local/datasets --name customers - "$W/sealed/in.sealed" >/dev/null 2>&1
}
# job NAME SPEC-ARGS...: a spec at $W/specs/NAME.yaml (image $W/img, input, output $W/out)
job() {
  local name="$1"; shift
  e2e_spec "$W/specs/$name.yaml" image="$W/img" out="$W/out" input="$W/sealed/in.sealed" "$@"
}
# run NAME: `cordon run --json`; sets rc and J
run() { J="$W/$1.json"; "$C" run --json "$W/specs/$1.yaml" >"$J" 2>"$W/$1.err"; rc=$?; }
reason() { jget "$J" 'd["reason"]'; }

# ---------------------------------------------------------------- scratch
# memory means the trainer's own: a 16Mi job fills 24Mi of its 32Mi scratch; a scratch that
# fills up is named, with where its bytes were.
section_scratch() {
  fresh scratch || return 1
  job fits memory=16Mi scratch=32Mi sh='head -c 25165824 /dev/zero >/out/blob && exit 0'
  run fits
  check "scratch: 24Mi of tmpfs in a 16Mi job succeeds (the limit is memory + scratch)" test "$(jget "$J" 'd["outcome"]')" = succeeded
  check "scratch: the cgroup limit is memory + scratch" test "$(jget "$J" 'd["manifest"]["resources"]["memory_limit_bytes"]')" = $((48 << 20))
  check "scratch: peak use reported beside peak memory" test "$(jget "$J" 'd["manifest"]["resources"]["scratch"]["peak_bytes"] >= 24 << 20')" = True
  check "scratch: final use by directory" test "$(jget "$J" 'd["manifest"]["resources"]["scratch"]["final_by_dir"]["/out"] >= 24 << 20')" = True
  check "scratch: not full" test "$(jget "$J" 'd["manifest"]["resources"]["scratch"]["full"]')" = False

  job full memory=64Mi scratch=16Mi sh='head -c 4096 /dev/zero >/tmp/t; head -c 33554432 /dev/zero >/out/big || exit 1; exit 0'
  run full
  check "scratch full: trainer_failed (exit 10)" test "$rc,$(jget "$J" 'd["outcome"]')" = "10,trainer_failed"
  check "scratch full: named with the numbers" has "$(reason)" "scratch full: 16 MiB of 16 MiB used (/out 16 MiB, /data "
  check "scratch full: then the trainer's status" has "$(reason)" "; the trainer exited with status 1"
  check "scratch full: in the manifest" test "$(jget "$J" 'd["manifest"]["resources"]["scratch"]["full"]')" = True
  check "scratch full: audited in job.finished" has "$("$C" audit show --job "$(jget "$J" 'd["job_id"]')" --action job.finished)" "scratch full"
}

# ---------------------------------------------------------------- memory
section_memory() {
  fresh memory || return 1
  # 12Mi on the scratch, then an anonymous memory hog: the kill names both.
  job hog memory=32Mi scratch=16Mi sh='head -c 12582912 /dev/zero >/tmp/held; tail /dev/zero'
  run hog
  check "memory kill: memory_limit (exit 12)" test "$rc,$(jget "$J" 'd["outcome"]')" = "12,memory_limit"
  check "memory kill: the limit and its parts" has "$(reason)" "memory limit 48 MiB (memory 32Mi + scratch 16Mi) reached: trainer RSS peak "
  check "memory kill: the scratch's share" has "$(reason)" ", scratch 12 MiB at its peak (/out 0 B, /data "
  check "memory kill: the RSS figure is real" test "$(jget "$J" 'd["manifest"]["resources"]["max_rss_bytes"] > 8 << 20')" = True
}

# ---------------------------------------------------------------- live outputs
# A checkpoint written twice, one renamed in, hostile files and a final model: each live version is
# sealed while the trainer runs, audited once, and the final stage-out seals only what changed.
section_live() {
  fresh live || return 1
  cat >"$W/img/run.sh" <<'TRAINER'
mkdir -p /out/checkpoints/deep
echo epoch1 >/out/checkpoints/model.pt
sleep 0.8
echo epoch2 >/out/checkpoints/model.pt
echo deep >/out/checkpoints/deep/d.tmp && mv /out/checkpoints/deep/d.tmp /out/checkpoints/deep/d.pt
ln -s /etc/passwd /out/checkpoints/link.pt
echo h >/out/checkpoints/h1.pt; ln /out/checkpoints/h1.pt /out/checkpoints/h2.pt
mkfifo /out/checkpoints/fifo.pt; truncate -s 100G /out/checkpoints/sparse.pt
echo other >/out/not-live.txt
sleep 1.5
echo final >/out/model.txt
TRAINER
  job live argv='["/bin/sh", "/job/run.sh"]'
  sed -i "s|^    key: kms://local/models|    key: kms://local/models\n    live: [checkpoints/]|" "$W/specs/live.yaml"
  run live
  check "live: job succeeded" test "$(jget "$J" 'd["outcome"]')" = succeeded
  local id; id=$(jget "$J" 'd["job_id"]')
  local sealed; sealed=$("$C" audit show --job "$id" --action output.sealed --json)
  check "live: two versions of the checkpoint and the renamed one audited live" test "$(grep -c '"live":true' <<<"$sealed")" = 3
  check "live: versions numbered" has "$sealed" '"version":2'
  check "live: 3 live + 2 final outputs, nothing sealed twice" test "$(jget "$J" 'len(d["outputs"])')" = 5
  check "live: links, FIFOs and sparse giants are never sealed live, refused at the end" \
    test "$(jget "$J" 'sorted(d["refused_outputs"].items())')" = "[('byte_cap', 1), ('fifo', 1), ('hard_link', 2), ('symlink', 1)]"
  local x="$W/x"
  "$C" outputs extract "$(jget "$J" 'd["output_dir"]')" "$x" >/dev/null 2>&1
  check "live: extract restores the last version" test "$(cat "$x/checkpoints/model.pt" 2>/dev/null)" = epoch2
  check "live: the renamed checkpoint" test "$(cat "$x/checkpoints/deep/d.pt" 2>/dev/null)" = deep
  check "live: the final outputs" test "$(cat "$x/model.txt" "$x/not-live.txt" 2>/dev/null | tr '\n' ' ')" = "final other "
  check "live: no live index left once index.sealed exists" test ! -e "$(jget "$J" 'd["output_dir"]')/index.live.sealed"
}

# The runner is killed (-9) while the trainer sleeps after its checkpoint: the checkpoint was
# sealed and extractable while the trainer ran, and stays intact and verifiable after.
section_live_crash() {
  fresh live_crash || return 1
  printf 'mkdir -p /out/ckpt\necho epoch-1-weights >/out/ckpt/e1.pt\nsleep 60\n' >"$W/img/run.sh"
  job crash argv='["/bin/sh", "/job/run.sh"]' timeout=90s
  sed -i "s|^    key: kms://local/models|    key: kms://local/models\n    live: [ckpt]|" "$W/specs/crash.yaml"
  "$C" run --json "$W/specs/crash.yaml" >"$W/crash.json" 2>"$W/crash.err" &
  local runner=$!
  e2e_track "$runner"
  local dir=""
  live_sealed() { dir=$(ls -d "$W/out"/crash-* 2>/dev/null | head -n1); [ -n "$dir" ] && [ -e "$dir/index.live.sealed" ]; }
  check "live crash: the checkpoint is sealed while the trainer runs" e2e_wait_for 20 live_sealed
  check "live crash: the trainer still runs" kill -0 "$runner"
  "$C" outputs extract "$dir" "$W/x1" >"$W/x1.out" 2>&1
  check "live crash: extract decrypts it from the live index" test "$(cat "$W/x1/ckpt/e1.pt" 2>/dev/null)" = epoch-1-weights
  check "live crash: extract says the job has not finished" has "$(cat "$W/x1.out")" "live index"
  kill -9 "$runner"; wait "$runner" 2>/dev/null
  local audited; audited=$("$C" audit show --action output.sealed --json | grep '"live":true' | head -n1)
  local sha; sha=$(jget - 'd["details"]["sha256"]' <<<"$audited")
  check "live crash: the sealed checkpoint is intact (sha256 as audited)" test "sha256:$(sha256sum "$dir/out-000001.sealed" | cut -d' ' -f1)" = "$sha"
  check "live crash: it unseals after the crash" test "$("$C" unseal "$dir/out-000001.sealed" - 2>/dev/null)" = epoch-1-weights
  "$C" outputs extract "$dir" "$W/x2" >/dev/null 2>&1
  check "live crash: extract still works after the crash" test "$(cat "$W/x2/ckpt/e1.pt" 2>/dev/null)" = epoch-1-weights
  check "live crash: the audit log verifies" e2e_audit_verify
}

# ---------------------------------------------------------------- metrics
# Every accepted metrics line is kept, once, with its time, as metrics.jsonl.sealed; the last
# one (written just before exit, which the relay may not have seen) too.
section_metrics() {
  fresh metrics || return 1
  cat >"$W/img/run.sh" <<'TRAINER'
for e in 1 2; do echo "{\"epoch\": $e, \"loss\": 0.$((9 - e)), \"secret\": 1}" >>"$CORDON_METRICS"; sleep 0.6; done
echo "{\"epoch\": 3, \"loss\": 0.5}" >>"$CORDON_METRICS"
TRAINER
  job series argv='["/bin/sh", "/job/run.sh"]' metrics='[epoch, loss]'
  run series
  check "metrics: job succeeded" test "$(jget "$J" 'd["outcome"]')" = succeeded
  local dir series; dir=$(jget "$J" 'd["output_dir"]')
  series=$("$C" unseal "$dir/metrics.jsonl.sealed" - 2>/dev/null)
  check "metrics: metrics.jsonl holds each line once, in order, declared names only" test \
    "$(jget - '[(l["epoch"], l["loss"], sorted(l)) for l in d]' <<<"[$(paste -sd, <<<"$series")]")" = \
    "[(1, 0.8, ['epoch', 'loss', 't']), (2, 0.7, ['epoch', 'loss', 't']), (3, 0.5, ['epoch', 'loss', 't'])]"
  check "metrics: times in order" test "$(jget - 'all(a["t"] <= b["t"] for a, b in zip(d, d[1:]))' <<<"[$(paste -sd, <<<"$series")]")" = True
  check "metrics: named in the manifest" test "$(jget "$J" 'd["manifest"]["metrics_series"]["lines"]')" = 3
  check "metrics: the sealed file's hash in --json" test "$(jget "$J" 'd["metrics_series"]["sha256"]')" = "sha256:$(sha256sum "$dir/metrics.jsonl.sealed" | cut -d' ' -f1)"
}

for s in "${sections[@]}"; do "section_$s" || fail "$s: set-up failed"; done
e2e_summary
