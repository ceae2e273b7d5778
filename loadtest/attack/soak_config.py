#!/usr/bin/env python3
"""Prepares the hostile soak's sluice config and reads its budgets.

  soak_config.py SRC DST SLUICE_BINARY SCRATCH_DIR KEY [KEY ...]

Copies SRC to DST, then asks the binary to load DST (`sluice --config DST
import <missing file>` fails on the config first if it is bad). sluice
rejects unknown keys, and some keys of the soak's config may belong to work
not merged into the binary under test yet: each key (or whole section) the
binary names as unknown is commented out in DST, with a marker, and the
check repeats. Any other config error is fatal.

Prints JSON: {"dropped": [lines commented out], "budgets": {KEY: bytes or
null}} where KEY is "section.key" and null means not set in DST (or not
known to the binary), so not in force.
"""

import json
import os
import re
import subprocess
import sys
import tomllib

MARK = "#[unknown to this binary, not in force] "


def check(binary, path, scratch):
    missing = os.path.join(scratch, "no-such-file.car")
    r = subprocess.run([binary, "--config", path, "--data-dir", scratch, "import", missing],
                       capture_output=True, text=True, timeout=60)
    return r.stderr


def main():
    src, dst, binary, scratch, *keys = sys.argv[1:]
    os.makedirs(scratch, exist_ok=True)
    lines = open(src).read().split("\n")
    dropped = []
    for _ in range(100):
        with open(dst, "w") as f:
            f.write("\n".join(lines))
        err = check(binary, dst, scratch)
        if "invalid config" not in err:
            break
        m = re.search(r"at line (\d+)", err)
        if "unknown field" not in err or not m:
            sys.exit(f"{src}: the binary rejects it:\n{err}")
        i = int(m.group(1)) - 1
        end = i + 1
        if lines[i].strip().startswith("["):  # a whole section: up to the next header
            while end < len(lines) and not lines[end].strip().startswith("["):
                end += 1
        for j in range(i, end):
            if lines[j].strip() and not lines[j].lstrip().startswith("#"):
                dropped.append(lines[j].strip())
                lines[j] = MARK + lines[j]
    else:
        sys.exit(f"{src}: still rejected after 100 keys were dropped")
    with open(dst, "rb") as f:
        cfg = tomllib.load(f)
    budgets = {}
    for k in keys:
        section, _, key = k.partition(".")
        v = cfg.get(section, {}).get(key)
        budgets[k] = v if isinstance(v, int) else None
    print(json.dumps({"dropped": dropped, "budgets": budgets}))


if __name__ == "__main__":
    main()
