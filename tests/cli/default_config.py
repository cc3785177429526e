#!/usr/bin/env python3
"""The packaged /etc/faultprobe/faultprobe.toml changes nothing (no root needed).

`faultprobe check-config` accepts the file as shipped, and its effective
rules equal the built-in ones (those of an empty file); every key of the
plain settings tables ([limits], [daemon], [hardware], as check-config
--list-keys reports them, so a key added to the parser is asked for here) is
in the file, commented out. That the commented values are the real defaults
is unit_tests' PackagedConfig test.

usage: default_config.py FAULTPROBE packaging/faultprobe.toml
"""
import json
import os
import re
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
    keys = subprocess.run([faultprobe, "check-config", "--list-keys"], capture_output=True, text=True,
                          check=True).stdout.split()
    with open(shipped, encoding="utf-8") as f:
        text = f.read()
    wanted = [k for k in keys if "." in k and k.split(".")[0] in ("limits", "daemon", "hardware")]
    missing = [k for k in wanted if not re.search(r"(?m)^#" + re.escape(k.split(".", 1)[1]) + r" = ", text)]
    if len(wanted) < 20 or missing:
        sys.exit(f"FAIL: the shipped file lacks the commented default of {missing} ({len(wanted)} keys checked)")
    print("ok: check-config accepts the shipped file and its effective config is the built-in one")


if __name__ == "__main__":
    main()
