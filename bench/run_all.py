"""Run every benchmark in bench/ one after another (``make bench``).

Each benchmark measures its own baseline in the same run and prints figures as ratios to it, so
the numbers mean something on a shared, noisy machine. Pass ``--quick`` for a smoke run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name} ===", flush=True)
        done = subprocess.run([sys.executable, str(script), *argv], check=False)
        if done.returncode:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
