"""The zcbench home: where per-user state lives (dev CA, key broker, witness state).

``$ZCBENCH_HOME`` when set, else ``~/.zcbench``. Tests always point it at a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["zcbench_home"]


def zcbench_home(*, create: bool = True) -> Path:
    """The zcbench home folder, created owner-only (0700) when ``create`` is true."""
    raw = os.environ.get("ZCBENCH_HOME")
    home = Path(raw).expanduser() if raw else Path.home() / ".zcbench"
    if create:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home
