"""Write environment.yml from requirements.lock so conda users get the same pinned set.

Usage: python tools/sync_environment.py [--check]

The lock is universal (markers per Python version and platform); conda users get Python 3.11, so
the pins taken are those whose markers hold for CPython 3.11 on Linux. ``--check`` exits 1 when
environment.yml is out of step (the test suite runs it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
ENV = ROOT / "environment.yml"
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "dev",
}
_PIN = re.compile(r"^([A-Za-z0-9_.\-\[\],]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def pins() -> list[str]:
    out = []
    for line in LOCK.read_text().splitlines():
        m = _PIN.match(line)
        if not m:
            continue
        name, version, marker = m.groups()
        if marker and not Marker(marker).evaluate(TARGET):
            continue
        out.append(f"{name}=={version}")
    return sorted(out, key=str.lower)


def render() -> str:
    lines = [
        "# Generated from requirements.lock by tools/sync_environment.py; do not edit by hand.",
        "# The same pinned set as the pip lock (which also carries every file's hash).",
        "name: zcbench",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
    ]
    lines += [f"      - {p}" for p in pins()]
    lines.append("      - -e .")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not ENV.exists() or ENV.read_text() != text:
            print("environment.yml is out of step with requirements.lock: run "
                  "python tools/sync_environment.py", file=sys.stderr)
            return 1
        return 0
    ENV.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
