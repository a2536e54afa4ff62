#!/usr/bin/env python3
"""Validates `cordon audit show --format ocsf` output (JSON Lines on stdin) against
tests/audit/ocsf-1.1-subset.schema.json with jsonschema, plus what a schema cannot say:
type_uid = class_uid * 100 + activity_id, and one event per stored entry (argv[2], a
`--format json` dump), in order, with the entry's seq, hash, job and time carried over.
Usage: check_ocsf.py SCHEMA ENTRIES.jsonl < EVENTS.jsonl"""
import json
import sys
from datetime import datetime, timezone

import jsonschema

schema = json.load(open(sys.argv[1]))
entries = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
events = [json.loads(l) for l in sys.stdin if l.strip()]
assert len(events) == len(entries) > 0, (len(events), len(entries))
validator = jsonschema.Draft202012Validator(schema)
classes = set()
for entry, ev in zip(entries, events):
    errors = sorted(validator.iter_errors(ev), key=str)
    assert not errors, f"seq {entry['seq']}: {errors[0].message} at {list(errors[0].path)}"
    assert ev["type_uid"] == ev["class_uid"] * 100 + ev["activity_id"], ev
    md = ev["metadata"]
    assert md["sequence"] == entry["seq"] and md["uid"] == entry["hash"], md
    assert md.get("correlation_uid") == entry.get("job"), (md, entry.get("job"))
    stamp = datetime.strptime(entry["time"][:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    assert ev["time"] == int(stamp.timestamp() * 1000 + 0.5) or abs(ev["time"] - stamp.timestamp() * 1000) < 1, ev["time"]
    assert ev["actor"]["user"]["uid"] == str(entry["actor"]["uid"]), ev["actor"]
    assert ev["status_id"] == {"ok": 1, "intent": 99}.get(entry["outcome"], 2) or entry["outcome"] == "succeeded"
    classes.add((ev["class_uid"], entry["action"], ev["activity_id"]))
want = set(sys.argv[3:])  # ACTION=CLASS:ACTIVITY that must appear
for w in want:
    action, rest = w.split("=")
    cls, act = map(int, rest.split(":"))
    assert (cls, action, act) in classes, f"{action} not mapped to {cls}:{act}: {sorted(classes)}"
print(f"ocsf: {len(events)} events valid ({len({c for c, _, _ in classes})} classes)")
