#!/usr/bin/env python3
"""An independent verifier of a Cordon audit log, written from docs/AUDIT-FORMAT.md only.

    verify_audit.py AUDIT_DIR [--verifier-key FILE] [--checkpoint FILE]

Exit 0 with "ok: N entries, head HASH"; exit 1 with "FAIL: FILE:LINE: what".
Checks the canonical form, the hash chain, the MACs (with the verifier key),
the checkpoint signatures (needs the `cryptography` package; skipped without it)
and each checkpoint's RFC 6962 Merkle root (leaf = SHA-256(0x00 || line),
node = SHA-256(0x01 || left || right)).
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import sys

SEGMENT = re.compile(r"^audit-(\d{20})\.jsonl$")
MEMBERS = {"action", "actor", "details", "hash", "mac", "outcome", "prev", "seq", "time"}


def fail(where, what):
    print(f"FAIL: {where}: {what}")
    sys.exit(1)


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fields(path, magic):
    out = {}
    lines = [l for l in open(path, encoding="utf-8").read().splitlines() if l and not l.startswith("#")]
    if not lines or lines[0] != magic:
        fail(path, f"not a {magic} file")
    for line in lines[1:]:
        name, _, value = line.partition(" ")
        out[name] = value
    return out


def identity(args):
    if args.verifier_key:
        f = fields(args.verifier_key, "cordon-audit-verifier-key-v1")
        k0 = bytes.fromhex(f["mac-seed"])
    else:
        f = fields(os.path.join(args.dir, "log.identity"), "cordon-audit-identity-v1")
        k0 = None
    name, keyhash, pub = f["checkpoint-key"].split("+", 2)
    raw = base64.b64decode(pub)
    assert name == f["origin"] and raw[0] == 1 and len(raw) == 33
    expect = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    assert expect.hex() == keyhash, "key hash does not match the key"
    return f["origin"], raw[1:], k0


def checkpoints(path, origin, pub):
    """Yields (first line, size, head bytes) of every note; fails on a bad signature."""
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        key = Ed25519PublicKey.from_public_bytes(pub)
    except ImportError:
        key = None
    text = open(path, encoding="utf-8").read()
    notes = [n for n in text.split("\n\n")]
    line = 1
    i = 0
    while i + 1 < len(notes):
        body, sigs = notes[i] + "\n", notes[i + 1].splitlines()
        first = line
        line += body.count("\n") + 1 + len(sigs) + 1
        i += 2
        o, size, head, _time = body.splitlines()[:4]
        if o != origin:
            fail(f"{path}:{first}", "bad signature: wrong origin")
        good = key is None
        for s in sigs:
            if key is not None and s.startswith(f"\u2014 {origin} "):
                blob = base64.b64decode(s.split(" ")[2])
                try:
                    key.verify(blob[4:], body.encode())
                    good = True
                except Exception:
                    pass
        if not good:
            fail(f"{path}:{first}", "bad signature")
        yield first, int(size), base64.b64decode(head)


def merkle_append(stack, size, record):
    """Adds a record to the right edge of a tree of `size` records (one hash per set bit)."""
    h = hashlib.sha256(b"\x00" + record).digest()
    while size & 1:
        h = hashlib.sha256(b"\x01" + stack.pop() + h).digest()
        size >>= 1
    stack.append(h)


def merkle_root(stack):
    if not stack:
        return hashlib.sha256(b"").digest()
    h = stack[-1]
    for left in reversed(stack[:-1]):
        h = hashlib.sha256(b"\x01" + left + h).digest()
    return h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--verifier-key")
    ap.add_argument("--checkpoint")
    args = ap.parse_args()
    origin, pub, k = identity(args)
    anchors = {}
    for path in [os.path.join(args.dir, "checkpoints")] + ([args.checkpoint] if args.checkpoint else []):
        for first, size, head in checkpoints(path, origin, pub):
            anchors.setdefault(size, []).append((f"{path}:{first}", head))
    expected, head, tree = 0, bytes(32), []
    for name in sorted(n for n in os.listdir(args.dir) if SEGMENT.match(n)):
        path = os.path.join(args.dir, name)
        data = open(path, "rb").read()
        if data and not data.endswith(b"\n"):
            fail(path, "torn last line")
        for number, raw in enumerate(data.split(b"\n")[:-1], 1):
            where = f"{path}:{number}"
            line = raw.decode("utf-8")
            entry = json.loads(line)
            if canonical(entry) != line or not (MEMBERS <= entry.keys() <= MEMBERS | {"job"}):
                fail(where, "modified (not canonical)")
            hashed = {m: v for m, v in entry.items() if m not in ("hash", "mac")}
            digest = hashlib.sha256(canonical(hashed).encode()).digest()
            if digest.hex() != entry["hash"]:
                fail(where, "modified (hash)")
            if entry["seq"] != expected or entry["prev"] != head.hex():
                fail(where, f"chain broken at seq {entry['seq']} (expected {expected})")
            if k is not None:
                if hmac.new(k, digest, hashlib.sha256).hexdigest() != entry["mac"]:
                    fail(where, "MAC mismatch")
                k = hashlib.sha256(b"cordon-audit-key-evolve-v1\0" + k).digest()
            merkle_append(tree, expected, raw)
            head, expected = digest, expected + 1
            for at, h in anchors.get(expected, []):
                if h != merkle_root(tree) and h != head:  # a checkpoint from before the tree: the chain head
                    fail(at, "truncated before checkpoint (root differs)")
    for size, items in anchors.items():
        if size > expected:
            fail(items[0][0], f"truncated before checkpoint (size {size} > {expected} entries)")
    print(f"ok: {expected} entries, head {head.hex() if expected else '(empty)'}")


if __name__ == "__main__":
    main()
