#!/usr/bin/env bash
# OCI images and GPUs end to end: `cordon run` on an OCI layout this test builds from a
# busybox-static rootfs (tests/runner/oci/make_layout.py), with and without the digest pin; a
# wrong pin and hostile layers refused; the image cache and `cordon images prune`; `resources.gpus` where no GPU exists;
# one job through cordond as a plain uid.
#
#   oci_test.sh [--bin BIN_DIR] [SECTION...]     (default: every section)
#   sections: run prune umoci hostile gpu daemon
# Needs root and /bin/busybox (busybox-static). KEEP=1 keeps the temp dir.
set -uo pipefail
SECTIONS_ALL=(run prune umoci hostile gpu daemon)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/e2e.sh"
e2e_sections oci "$@"
e2e_init "$BIN" oci
BUSYBOX=/bin/busybox
file -L "$BUSYBOX" 2>/dev/null | grep -q "statically linked" || [ -x "$BUSYBOX" ] || e2e_skip "no $BUSYBOX (busybox-static)"
MAKE="$PY $here/oci/make_layout.py"

# The rootfs: busybox and its applets, an /etc of its own, a setuid bit that must not survive,
# a file the second layer whites out. No /usr, /lib: nothing of the host's system is needed.
mkdir -p "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/app" "$T/layer2/etc"
cp "$BUSYBOX" "$T/rootfs/bin/busybox"
for a in sh cat echo ls env id wc stat test; do ln -s busybox "$T/rootfs/bin/$a"; done
chmod 4755 "$T/rootfs/bin/busybox"
echo "busybox-oci" >"$T/rootfs/etc/image-release"
echo "gone" >"$T/rootfs/etc/removed"
printf '#!/bin/sh\necho trained > /out/model.txt\n' >"$T/rootfs/app/train.sh"
chmod 0755 "$T/rootfs/app/train.sh"
: >"$T/layer2/etc/.wh.removed"
echo "layer two" >"$T/layer2/etc/second"
IMARK=$(e2e_marker IMG)
DIGEST=$($MAKE "$T/layout" --env "PATH=/bin" --env "IMAGE_MARK=$IMARK" --env "CORDON_JOB=forged" "$T/rootfs" "$T/layer2")
chmod -R a+rX "$T/layout"

# ospec FILE IMAGE SH [EXTRA_TRAINER_LINE] [EXTRA_RESOURCES]: a spec with no inputs.
ospec() {
  local file="$1" image="$2" sh="$3" extra="${4:-}" res="${5:-}"
  cat >"$file" <<SPEC
apiVersion: cordon/v1
kind: TrainingJob
metadata:
  name: oci
spec:
  trainer:
    image: "$image"
    command: [/bin/sh, -c, "$sh"]
$extra
  output:
    path: $OUT
    key: kms://local/models
  resources: {memory: 256Mi, timeout: 60s, scratch: 16Mi, pids: 32$res}
SPEC
  chmod 0644 "$file"
}
orun() { J="$T/$1.json"; "$C" run --json "$2" >"$J" 2>"$T/$1.err"; rc=$?; }
outcome() { jget "$J" 'd["outcome"]'; }
reason_has() { jget "$J" 'd["reason"]' 2>/dev/null | grep -qF -- "$1"; }
extract() { rm -rf "$T/x/$1"; mkdir -p "$T/x"; "$C" outputs extract "$(jget "$J" 'd["output_dir"]')" "$T/x/$1" >/dev/null 2>&1; echo "$T/x/$1"; }

setup_install() {
  e2e_install "$T/$1/inst" || return 1
  "$C" keys create models >/dev/null 2>&1
  OUT="$T/$1/out"; mkdir -p -m 0777 "$OUT"
}

sec_run() {
  setup_install run || { fail "install"; return; }
  local probe='id -u > /out/uid; ls / > /out/root; env > /out/env; cat /etc/image-release /etc/second > /out/etc; ls /etc > /out/etclist; stat -c %a /bin/busybox > /out/mode; /app/train.sh'
  ospec "$T/run.yaml" "oci:$T/layout:v1" "$probe"
  orun run "$T/run.yaml"
  check "an OCI image runs (succeeded)" test "$(outcome)" = succeeded
  [ "$(outcome)" = succeeded ] || { cat "$T/run.err" >&2; jget "$J" 'd["manifest"]["reason"]' >&2; }
  local x; x=$(extract run)
  check "the trainer's output is sealed" test "$(cat "$x/model.txt" 2>/dev/null)" = trained
  check "the trainer is not root" test "$(cat "$x/uid" 2>/dev/null)" = 65534
  check "the image's rootfs is / (no host /usr, /lib)" bash -c "grep -qx bin '$x/root' && grep -qx app '$x/root' && ! grep -qx usr '$x/root' && ! grep -qx lib '$x/root'"
  check "the image config's Env reaches the trainer" grep -qx "IMAGE_MARK=$IMARK" "$x/env"
  check "PATH comes from the image config" grep -qx "PATH=/bin" "$x/env"
  check "an image cannot set CORDON_* variables" bash -c "! grep -qx CORDON_JOB=forged '$x/env'"
  check "the image's /etc files are seen, the second layer's too" test "$(cat "$x/etc" 2>/dev/null)" = "$(printf 'busybox-oci\nlayer two')"
  check "a whiteout removed /etc/removed" bash -c "! grep -qx removed '$x/etclist'"
  check "/etc/passwd is still Cordon's" grep -qx passwd "$x/etclist"
  check "the setuid bit was stripped" test "$(cat "$x/mode" 2>/dev/null)" = 755
  check "the manifest records the image digest" test "$(jget "$J" 'd["manifest"]["trainer"]["image_digest"]')" = "$DIGEST"
  local hex=${DIGEST#sha256:}
  check "the rootfs is in the cache, keyed by the manifest digest" test -f "$STATE_DIR/images/$hex/rootfs/bin/busybox"
  check "the cache is root's, 0700" test "$(stat -c '%u %a' "$STATE_DIR/images")" = "0 700"
  check "no temporary tree is left" bash -c "! ls -d '$STATE_DIR/images/'*.tmp 2>/dev/null | grep -q ."
  check "image.check is audited with the manifest digest" bash -c "'$C' audit show --json --action image.check | grep -q '$DIGEST'"

  ospec "$T/pinned.yaml" "oci:$T/layout:v1" "/app/train.sh" "    image_digest: $DIGEST"
  orun pinned "$T/pinned.yaml"
  check "a pinned OCI image runs" test "$(outcome)" = succeeded
  check "the second run uses the cache" bash -c "'$C' audit show --json --action image.check | tail -n1 | grep -q '\"cached\": *true'"
  ospec "$T/untagged.yaml" "oci:$T/layout" "/app/train.sh"
  orun untagged "$T/untagged.yaml"
  check "oci:PATH without a tag takes the layout's only manifest" test "$(outcome)" = succeeded

  local wrong="sha256:$(printf '%064d' 0)"
  ospec "$T/wrongpin.yaml" "oci:$T/layout:v1" "/app/train.sh" "    image_digest: $wrong"
  orun wrongpin "$T/wrongpin.yaml"
  check "a wrong digest pin is refused (setup_error)" test "$(outcome)" = setup_error
  check "the refusal names both digests" reason_has "the manifest digest is $DIGEST, the spec pins $wrong"
  ospec "$T/notag.yaml" "oci:$T/layout:v9" "/app/train.sh"
  orun notag "$T/notag.yaml"
  check "an unknown tag is refused" test "$(outcome)" = setup_error
  check "the refusal names the tag" reason_has "no manifest is tagged 'v9'"
  ospec "$T/dirpin.yaml" "$T/rootfs" "true" "    image_digest: $DIGEST"
  check "image_digest on a directory image is a spec error" bash -c "! '$C' validate '$T/dirpin.yaml' >/dev/null 2>&1"
}

# The workflow docs/TRAINERS.md shows: umoci init/new/unpack/repack/config, no daemon, and the
# pin read from the layout's index.json.
# `cordon images prune`: a running job's entry is kept, an idle one removed (audited) and
# unpacked again by the next job.
sec_prune() {
  setup_install prune || { fail "install"; return; }
  local hex=${DIGEST#sha256:} pid n i
  pjson() { "$C" images prune --json "$@" 2>/dev/null; }
  ospec "$T/slow.yaml" "oci:$T/layout:v1" "sleep 4; echo done > /out/model.txt"
  "$C" run --json "$T/slow.yaml" >"$T/slow.json" 2>"$T/slow.err" &
  pid=$!
  for i in $(seq 100); do
    n=$(pjson --older-than 0 --dry-run | jget - 'd["in_use"]' 2>/dev/null)
    [ "$n" = 1 ] && break
    sleep 0.1
  done
  check "a running job holds its image's cache entry" test "$n" = 1
  check "prune keeps the entry a running job holds" test "$(pjson --older-than 0 | jget - 'len(d["removed"])')" = 0
  check "the entry is still there" test -d "$STATE_DIR/images/$hex/rootfs"
  wait "$pid"
  check "the job with the held entry succeeded" test "$(jget "$T/slow.json" 'd["outcome"]')" = succeeded
  check "a recently used entry is kept by the default --older-than" test "$(pjson | jget - 'd["recent"]')" = 1
  check "prune --older-than 0 removes the idle entry" test "$(pjson --older-than 0 | jget - 'd["removed"][0]["digest"]')" = "$DIGEST"
  check "its tree is gone" test ! -e "$STATE_DIR/images/$hex"
  check "images.pruned is audited" bash -c "'$C' audit show --json --action images.pruned | grep -q '\"removed\": *1'"
  check "a non-root user cannot prune" bash -c "! runuser -u nobody -- '$C' --config '$CFG' images prune >/dev/null 2>&1"
  ospec "$T/after.yaml" "oci:$T/layout:v1" "echo trained > /out/model.txt"
  orun after "$T/after.yaml"
  check "the next job unpacks the image again" test "$(outcome)" = succeeded
  check "... not from the cache" bash -c "'$C' audit show --json --action image.check | tail -n1 | grep -q '\"cached\": *false'"
}

sec_umoci() {
  command -v umoci >/dev/null || { fail "umoci is installed (scripts/setup)"; return; }
  setup_install umoci || { fail "install"; return; }
  local L="$T/umoci/layout" B="$T/umoci/bundle"
  umoci init --layout "$L" && umoci new --image "$L:base" && umoci unpack --image "$L:base" "$B" >/dev/null &&
    mkdir -p "$B/rootfs/bin" "$B/rootfs/app" && cp "$BUSYBOX" "$B/rootfs/bin/busybox" &&
    ln -s busybox "$B/rootfs/bin/sh" && cp "$T/rootfs/app/train.sh" "$B/rootfs/app/" &&
    umoci repack --image "$L:v2" "$B" && umoci config --image "$L:v2" --config.env PATH=/bin ||
    { fail "umoci builds the image"; return; }
  chmod -R a+rX "$L"
  local digest; digest=$(jget "$L/index.json" '[m["digest"] for m in d["manifests"] if m.get("annotations",{}).get("org.opencontainers.image.ref.name")=="v2"][0]')
  ospec "$T/umoci.yaml" "oci:$L:v2" "/app/train.sh" "    image_digest: $digest"
  orun umoci "$T/umoci.yaml"
  check "an image made with umoci runs, pinned" test "$(outcome)" = succeeded
  check "its output is sealed" test "$(cat "$(extract umoci)/model.txt" 2>/dev/null)" = trained
}

# hostile KIND EXPECT: a layout with that hostile layer is refused, the reason says EXPECT.
hostile() {
  local kind="$1" expect="$2" layout="$T/hostile-$1"
  OUTSIDE="$T/outside" $MAKE "$layout" --hostile "$kind" "$T/rootfs" >/dev/null
  ospec "$T/h-$kind.yaml" "oci:$layout:v1" "/app/train.sh"
  orun "h-$kind" "$T/h-$kind.yaml"
  check "hostile layer '$kind' is refused (setup_error)" test "$(outcome)" = setup_error
  check "hostile layer '$kind': the reason says '$expect'" reason_has "$expect"
}

sec_hostile() {
  setup_install hostile || { fail "install"; return; }
  mkdir -p "$T/outside"
  hostile dotdot "'..' component"
  hostile absolute "an absolute name"
  hostile symlink-write "symbolic link"
  hostile device "character device"
  hostile tamper "sha256"
  check "nothing escaped into the outside directory" test -z "$(ls -A "$T/outside")"
  check "no ../ entry landed beside the cache" bash -c "! ls '$STATE_DIR'/images/escaped-* '$STATE_DIR'/escaped-* 2>/dev/null | grep -q ."
  check "no absolute entry landed" bash -c "! ls /tmp/abs-escaped-* 2>/dev/null | grep -q ."
  check "no refused image is left in the cache" bash -c "[ \$(ls '$STATE_DIR/images' | grep -vc '\\.lock\$') = 0 ]"
}

sec_gpu() {
  setup_install gpu || { fail "install"; return; }
  ospec "$T/gpu.yaml" "oci:$T/layout:v1" "/app/train.sh" "" ", gpus: 1"
  check "a spec with resources.gpus validates" "$C" validate "$T/gpu.yaml"
  if [ -e /dev/nvidia0 ]; then
    echo "# /dev/nvidia0 exists: the missing-device refusal is not tested here" >&2
    return
  fi
  orun gpu "$T/gpu.yaml"
  check "gpus: 1 without an NVIDIA device is refused (setup_error)" test "$(outcome)" = setup_error
  check "the refusal names the missing device" reason_has "/dev/nvidia0 does not exist"
  ospec "$T/gpu-big.yaml" "oci:$T/layout:v1" "/app/train.sh" "" ", gpus: 65"
  check "gpus above 64 is a spec error" bash -c "! '$C' validate '$T/gpu-big.yaml' >/dev/null 2>&1"
}

# One job through cordond as a plain uid: the layout opened as that uid; the policy's images:
# grant on the layout's directory; max_gpus (default 0) refuses gpus at submission.
sec_daemon() {
  command -v setpriv >/dev/null || { echo "# setpriv missing: daemon section skipped" >&2; return; }
  setup_install daemon || { fail "install"; return; }
  cat >"$INST/policy.yaml" <<POL
admins:
  uids: [0]
users:
  - uids: [4011]
    datasets: ["*"]
    keys: [kms://local/models]
    outputs: [$OUT]
    images: [$T/layout]
POL
  e2e_daemon_start --grace 3s --request-timeout 2s || { fail "cordond starts"; return; }
  ospec "$T/d-ok.yaml" "oci:$T/layout:v1" "/app/train.sh" "    image_digest: $DIGEST"
  local id; id=$(as_uid 4011 "$C" submit "$T/d-ok.yaml" 2>/dev/null | tail -n1)
  check "uid 4011 submits an OCI job" has "$id" "oci-"
  e2e_wait_for 60 e2e_is_final "$id"
  check "the OCI job succeeds under cordond" test "$(e2e_state "$id")" = succeeded
  ospec "$T/d-wrong.yaml" "oci:$T/layout:v1" "/app/train.sh" "    image_digest: sha256:$(printf '%064d' 1)"
  local err; err=$(as_uid 4011 "$C" submit "$T/d-wrong.yaml" 2>&1 >/dev/null)
  check "cordond refuses a wrong pin at submission" has "$err" "the spec pins"
  ospec "$T/d-gpu.yaml" "oci:$T/layout:v1" "/app/train.sh" "" ", gpus: 1"
  err=$(as_uid 4011 "$C" submit "$T/d-gpu.yaml" 2>&1 >/dev/null)
  check "cordond refuses gpus over max_gpus" has "$err" "max_gpus"
  mkdir -p "$T/other" && cp -r "$T/layout" "$T/other/layout" && chmod -R a+rX "$T/other"
  ospec "$T/d-grant.yaml" "oci:$T/other/layout:v1" "/app/train.sh"
  err=$(as_uid 4011 "$C" submit "$T/d-grant.yaml" 2>&1 >/dev/null)
  check "a layout outside the images: grant is refused" has "$err" "not within the grant's images"
  chmod 0600 "$T/layout/blobs/sha256/${DIGEST#sha256:}"
  ospec "$T/d-unreadable.yaml" "oci:$T/layout:v1" "/app/train.sh"
  err=$(as_uid 4011 "$C" submit "$T/d-unreadable.yaml" 2>&1 >/dev/null)
  check "a blob the submitter cannot read is refused" has "$err" "may not read"
  chmod 0644 "$T/layout/blobs/sha256/${DIGEST#sha256:}"
  e2e_daemon_stop
}

for s in "${sections[@]}"; do "sec_$s"; done
e2e_summary
