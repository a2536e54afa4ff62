#!/bin/sh
# Runs inside the sandbox: records what reached /data, so the test can prove
# the projected-away columns (names, emails, ids) never did.
head -n 1 /data/customers > /out/header.txt
if tail -n +2 /data/customers | grep -q '[A-Za-z@]'; then echo LEAKED; else echo CLEAN; fi > /out/check.txt
wc -l < /data/customers > /out/rows.txt
echo '{"rows_checked": 1}' >> "$CORDON_METRICS"
