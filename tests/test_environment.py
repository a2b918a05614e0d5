"""environment.yml carries the same pins as requirements.lock, and the lock pins with hashes."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_environment_yml_in_step_with_lock() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "sync_environment.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_locked_distribution_has_a_hash() -> None:
    text = (REPO / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    pinned = [e for e in entries if "==" in e.split("\n", 1)[0]]
    assert len(pinned) > 50
    missing = [e.split(" ", 1)[0] for e in pinned if "--hash=sha256:" not in e]
    assert missing == []
