#!/bin/sh
# Writes metrics the runner must filter: a string member (dropped), numbers
# and a boolean (kept), then an endless 10 KB line (dropped whole).
echo '{"epoch": 1, "name": "Doe, Jane", "loss": 0.5, "ok": true}' >>"$CORDON_METRICS"
head -c 10000 /dev/zero | tr '\0' x >>"$CORDON_METRICS"
