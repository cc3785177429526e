#!/usr/bin/env python3
"""The packaged /etc/faultprobe/faultprobe.toml changes nothing (no root needed).

`faultprobe check-config` accepts the file as shipped, and its effective
rules equal the built-in ones (those of an empty file). That its commented
values are the real defaults is unit_tests' PackagedConfig test.

usage: default_config.py FAULTPROBE packaging/faultprobe.toml
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile


def effective(faultprobe, path):
    os.chmod(path, 0o644)
    r = subprocess.run([faultprobe, "check-config", "--json", path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: check-config {path} exited {r.returncode}: {r.stderr.strip()}")
    doc = json.loads(r.stdout)
    doc.pop("file")
    return doc


def main():
    faultprobe, shipped = sys.argv[1:3]
    with tempfile.TemporaryDirectory() as tmp:
        # A copy: the checkout may be writable by others, which check-config refuses.
        copy = os.path.join(tmp, "faultprobe.toml")
        shutil.copyfile(shipped, copy)
        empty = os.path.join(tmp, "empty.toml")
        open(empty, "w").close()
        if effective(faultprobe, copy) != effective(faultprobe, empty):
            sys.exit("FAIL: the shipped file's effective config differs from the built-in one")
    print("ok: check-config accepts the shipped file and its effective config is the built-in one")


if __name__ == "__main__":
    main()
