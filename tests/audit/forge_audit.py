#!/usr/bin/env python3
"""Forges audit entries the way an attacker without the old MAC keys would (for the CLI test).

    forge_audit.py insert SEGMENT SEQ      insert a forged entry with seq SEQ and a correct hash
                                           after the real entry SEQ-1 (random MAC)
    forge_audit.py rewrite SEGMENT SEQ     rewrite every entry from SEQ on with new content and a
                                           consistent chain of correct hashes (random MACs)
"""
import hashlib
import json
import os
import sys


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def seal(entry, prev):
    entry = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
    entry["prev"] = prev
    entry["hash"] = hashlib.sha256(canonical(entry).encode()).hexdigest()
    entry["mac"] = os.urandom(32).hex()
    return entry


def main():
    mode, path, seq = sys.argv[1], sys.argv[2], int(sys.argv[3])
    entries = [json.loads(l) for l in open(path, encoding="utf-8").read().splitlines()]
    index = next(i for i, e in enumerate(entries) if e["seq"] == seq)
    if mode == "insert":
        forged = dict(entries[index], action="job.finished", details={"forged": True})
        entries.insert(index, seal(forged, entries[index - 1]["hash"]))
    else:
        prev = entries[index - 1]["hash"]
        for i in range(index, len(entries)):
            entries[i] = seal(dict(entries[i], details={"rewritten": True}), prev)
            prev = entries[i]["hash"]
    with open(path, "w", encoding="utf-8") as out:
        out.write("".join(canonical(e) + "\n" for e in entries))


if __name__ == "__main__":
    main()
