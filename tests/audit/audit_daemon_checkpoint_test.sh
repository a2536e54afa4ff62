#!/usr/bin/env bash
# cordond signs a checkpoint of the audit log's current head every
# audit.checkpoint_interval on a timer, idle or not: with the interval at 1s,
# checkpoints keep coming while nothing happens, an entry written by another
# process is covered by the next one, and each verifies as an off-host anchor.
#   audit_daemon_checkpoint_test.sh --bin BIN_DIR       (root; exit 77 otherwise)
set -uo pipefail
SECTIONS_ALL=(timer)
. "$(dirname "$0")/../lib/e2e.sh"
e2e_sections audit_daemon_checkpoint "$@"
e2e_init "$BIN" audit-daemon-checkpoint
e2e_install || exit 1
e2e_cfg_set checkpoint_interval '"1s"'

notes() { grep -c '^— ' "$AUDIT_DIR/checkpoints"; }
latest_size() { "$C" audit checkpoint --latest 2>/dev/null | sed -n 2p; }
entries() { "$C" audit verify 2>/dev/null | sed -n 's/^ok: \([0-9]*\) entries.*/\1/p'; }
more_notes_than() { [ "$(notes)" -gt "$1" ]; }
covers() { [ "$(latest_size)" = "$1" ]; }

e2e_daemon_start || exit 1
started=$(notes)
check "idle: checkpoints keep coming on the timer" e2e_wait_for 10 more_notes_than $((started + 2))
"$C" keys create timer-test >/dev/null 2>&1   # an entry from another process (key.created)
n=$(entries)
check "the next timer checkpoint covers the entry written meanwhile (size $n)" e2e_wait_for 10 covers "$n"
"$C" audit checkpoint --latest > "$T/latest.cp"
check "the timer's checkpoint verifies as an anchor" "$C" audit verify --verifier-key "$VERIFIER" --checkpoint "$T/latest.cp"
e2e_daemon_stop
e2e_summary
