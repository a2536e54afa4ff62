#!/usr/bin/env python3
"""Writes an OCI image layout the way skopeo/umoci would, from directories, for the tests.

  make_layout.py LAYOUT [--tag TAG] [--env K=V]... [--hostile KIND] LAYER_DIR...

Each LAYER_DIR becomes one tar+gzip layer (owner 0:0, modes kept, setuid included);
a file named .wh.NAME in a layer directory is an OCI whiteout. --hostile adds one more
layer made to attack the extractor, or damages a blob:
  dotdot         an entry ../../escaped-<pid> (a path climbing out of the rootfs)
  absolute       an entry /tmp/abs-escaped-<pid>
  symlink-write  a symlink evil -> $OUTSIDE, then evil/pwned written through it
  device         a character device dev/evil (1:3)
  tamper         the first layer's bytes changed after its digest was taken
Prints the manifest digest (sha256:<hex>).
"""
import argparse, gzip, hashlib, io, json, os, sys, tarfile


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest


def root_owned(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def layer_from_dir(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(path, arcname=".", filter=root_owned)
    return gzip.compress(buf.getvalue(), mtime=0)


def hostile_layer(kind):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(info, data=b""):
            tar.addfile(root_owned(info), io.BytesIO(data) if data else None)
        if kind == "dotdot":
            i = tarfile.TarInfo("../../escaped-%d" % os.getppid()); i.size = 2; add(i, b"x\n")
        elif kind == "absolute":
            i = tarfile.TarInfo("/tmp/abs-escaped-%d" % os.getppid()); i.size = 2; add(i, b"x\n")
        elif kind == "symlink-write":
            i = tarfile.TarInfo("evil"); i.type = tarfile.SYMTYPE; i.linkname = os.environ["OUTSIDE"]; add(i)
            i = tarfile.TarInfo("evil/pwned"); i.size = 2; add(i, b"x\n")
        elif kind == "device":
            i = tarfile.TarInfo("dev/evil"); i.type = tarfile.CHRTYPE; i.devmajor, i.devminor = 1, 3; add(i)
    return gzip.compress(buf.getvalue(), mtime=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("layout")
    ap.add_argument("layers", nargs="*")
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--hostile")
    a = ap.parse_intermixed_args()
    os.makedirs(a.layout, exist_ok=True)
    layers = [layer_from_dir(d) for d in a.layers]
    if a.hostile and a.hostile != "tamper":
        layers.append(hostile_layer(a.hostile))
    descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(a.layout, l), "size": len(l)}
             for l in layers]
    if a.hostile == "tamper":
        path = os.path.join(a.layout, "blobs", "sha256", descs[0]["digest"][7:])
        data = bytearray(open(path, "rb").read())
        data[len(data) // 2] ^= 0x01
        open(path, "wb").write(bytes(data))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": a.env, "WorkingDir": "/app"},
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": blob(a.layout, config), "size": len(config)},
                           "layers": descs}).encode()
    mdigest = blob(a.layout, manifest)
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "digest": mdigest, "size": len(manifest),
                                                "annotations": {"org.opencontainers.image.ref.name": a.tag}}]}
    with open(os.path.join(a.layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(a.layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(mdigest)


if __name__ == "__main__":
    main()
