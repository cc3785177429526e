#!/usr/bin/env python3
"""The packaged /etc/faultprobe/faultprobe.toml changes nothing (no root needed).

`faultprobe check-config` accepts the file as shipped, and its effective
rules equal the built-in ones (those of an empty file). Then every commented
default outside the examples ([[rule]], [[policy]], [[service]], which have
no default) is uncommented: the file must still be accepted and still give
the built-in rules, so the commented values are the real defaults.

usage: default_config.py FAULTPROBE packaging/faultprobe.toml
"""
import json
import os
import re
import subprocess
import sys
import tempfile


def effective(faultprobe, text, tmp):
    path = os.path.join(tmp, "faultprobe.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o644)
    r = subprocess.run([faultprobe, "check-config", "--json", path], capture_output=True, text=True)
    if r.returncode != 0:
        print(text)
        sys.exit(f"FAIL: check-config exited {r.returncode}: {r.stderr.strip()}")
    doc = json.loads(r.stdout)
    doc.pop("file")
    return doc


def uncomment_defaults(text):
    out, in_example = [], False
    for line in text.splitlines():
        header = re.match(r'^#(\[\[?)[a-z_.]+\]\]?\s*$', line)
        if header:
            in_example = header.group(1) == "[["
            out.append(line if in_example else line[1:])
        elif not in_example and re.match(r'^#[a-z_.]+ = ', line):
            out.append(line[1:])
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def main():
    faultprobe, shipped_path = sys.argv[1:3]
    with open(shipped_path, encoding="utf-8") as f:
        shipped = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        builtin = effective(faultprobe, "", tmp)
        if effective(faultprobe, shipped, tmp) != builtin:
            sys.exit("FAIL: the shipped file's effective config differs from the built-in one")
        expanded = uncomment_defaults(shipped)
        active = [l for l in expanded.splitlines() if l and not l.startswith("#")]
        if len(active) < 30:
            sys.exit(f"FAIL: only {len(active)} defaults were uncommented")
        if effective(faultprobe, expanded, tmp) != builtin:
            print(expanded)
            sys.exit("FAIL: with its defaults uncommented the file is not the built-in config")
    print(f"ok: shipped file and its {len(active)} uncommented default lines give the built-in config")


if __name__ == "__main__":
    main()
