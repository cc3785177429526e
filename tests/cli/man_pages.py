#!/usr/bin/env python3
"""The man pages in man/ are complete and render cleanly (no root needed).

Every page renders with `man -l` and `groff -ww` without a warning; every
subcommand of faultprobe and every long option of faultprobe, its
subcommands and faultprobed (read from the binaries' --help, so a new option
without a man entry fails here) is an item of its section of the page; every
config key the parser knows (`faultprobe check-config --list-keys`) is an item
of its section of faultprobe.toml(5).

usage: man_pages.py MAN_DIR FAULTPROBE FAULTPROBED
"""
import os
import re
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def run(argv, env=None):
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def render_checks(page):
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    r = run(["man", "--warnings", "-l", page], env=env)
    if r.returncode != 0 or r.stderr.strip():
        fail(f"man -l {page}: exit {r.returncode}, stderr: {r.stderr.strip()}")
    r = run(["groff", "-man", "-ww", "-z", page])
    if r.returncode != 0 or r.stderr.strip():
        fail(f"groff -man -ww -z {page}: exit {r.returncode}, stderr: {r.stderr.strip()}")


def plain(line):
    """A roff source line as the words a reader sees (\\- as -, quotes off)."""
    line = line.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")
    return line.replace("\\", "").replace('"', "")


def sections(page_path):
    """{heading: [lines]} for every .SH and .SS of the page (headings as plain text)."""
    out, current = {}, None
    with open(page_path, encoding="utf-8") as f:
        for raw in f:
            raw = raw.rstrip("\n")
            m = re.match(r'^\.(SH|SS)\s+(.*)$', raw)
            if m:
                current = plain(m.group(2)).strip()
                out[current] = []
            elif current is not None:
                out[current].append(raw)
    return out


def item_names(lines):
    """What each .TP item of a section names: the words of the line after .TP."""
    names = set()
    for prev, line in zip(lines, lines[1:]):
        if prev.strip() in (".TP", ".TQ"):
            for word in re.split(r'[\s,|\[\]=()]+', plain(re.sub(r'^\.[A-Z]+\s*', '', line))):
                if word:
                    names.add(word)
                    names.add(word.split(".")[0])  # on.CLASS names the key "on"
    return names


def help_of(binary, *sub):
    r = run([binary, *sub, "--help"])
    if r.returncode != 0:
        fail(f"{binary} {' '.join(sub)} --help exited {r.returncode}")
    return r.stdout


def long_options(help_text):
    # CLI11 lists options as "  -c,--config TEXT ..."; --help is documented once, globally.
    return sorted(set(re.findall(r'(?m)^\s+(?:-\w,)?(--[a-z][a-z0-9-]*)', help_text)) - {"--help"})


def subcommands(help_text):
    m = re.search(r'(?ms)^Subcommands:\n(.*?)(?:\n\S|\n\n|\Z)', help_text, re.I)
    return re.findall(r'(?m)^\s+(\S+)', m.group(1)) if m else []


def check_options(page_sections, heading, options, what):
    if heading not in page_sections:
        fail(f"{what}: the page has no section {heading!r}")
        return
    names = item_names(page_sections[heading])
    for opt in options:
        if opt not in names:
            fail(f"{what}: option {opt} is not an item of section {heading!r}")


def main():
    man_dir, faultprobe, faultprobed = sys.argv[1:4]
    pages = {name: os.path.join(man_dir, name) for name in ("faultprobe.8", "faultprobed.8", "faultprobe.toml.5")}
    for page in pages.values():
        render_checks(page)

    # faultprobe: global options, then each subcommand in its own .SS.
    cli = sections(pages["faultprobe.8"])
    top_help = help_of(faultprobe)
    check_options(cli, "GLOBAL OPTIONS", long_options(top_help), "faultprobe")
    subs = subcommands(top_help)
    if len(subs) < 5:
        fail(f"faultprobe --help lists only {subs} as subcommands")
    for sub in subs:
        check_options(cli, sub, long_options(help_of(faultprobe, sub)), f"faultprobe {sub}")

    daemon = sections(pages["faultprobed.8"])
    check_options(daemon, "OPTIONS", long_options(help_of(faultprobed)), "faultprobed")

    # Config keys: section "" is the top level, the rest each have a .SS whose
    # first word (brackets off) is the section's name.
    r = run([faultprobe, "check-config", "--list-keys"])
    if r.returncode != 0 or not r.stdout.strip():
        fail(f"faultprobe check-config --list-keys exited {r.returncode}: {r.stderr.strip()}")
    toml = sections(pages["faultprobe.toml.5"])
    by_name = {}
    for heading, lines in toml.items():
        first = heading.split()[0].strip("[]:")
        by_name[first.lower()] = lines
    count = 0
    for entry in r.stdout.split():
        section, _, key = entry.rpartition(".")
        want = section if section else "top-level"
        if want.lower() not in by_name:
            fail(f"faultprobe.toml(5) has no section for [{section}] (key {entry})")
            continue
        count += 1
        if key not in item_names(by_name[want.lower()]):
            fail(f"faultprobe.toml(5): key {key!r} is not an item of its section {want!r}")
    print(f"checked {len(pages)} pages, {len(subs)} subcommands, {count} config keys")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
