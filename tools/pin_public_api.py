"""Rewrite tests/public_api.json from the package as it is (run on purpose, then review the diff).

The pin lists every public module of zcbench with its ``__all__``; tests/test_public_surface.py
fails when the two differ, so a change to the public surface is always a visible change to the
pin.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import zcbench

PIN = Path(__file__).resolve().parents[1] / "tests" / "public_api.json"


def main() -> None:
    names = ["zcbench"] + [
        info.name
        for info in pkgutil.walk_packages(zcbench.__path__, prefix="zcbench.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    pin = {
        name: sorted(getattr(importlib.import_module(name), "__all__", ()))
        for name in sorted(names)
    }
    PIN.write_text(json.dumps(pin, indent=1, sort_keys=True) + "\n")
    print(f"{PIN.name}: {len(pin)} modules")


if __name__ == "__main__":
    main()
