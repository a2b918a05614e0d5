"""The one short real live run the report, evidence, archive, replay and notebook tests share
(no tests here; the ``live_world`` fixtures in conftest.py make it once per test process).

A world is a folder holding ``home/`` (the zcbench home the build was made with), ``build/``
(the promoted notebook of tests/promoted_build.py) and ``run/`` (a short local live run of that
build). Tests read the shared world and never change it (conftest checks at the end of the
session); a test that changes any of it takes a copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LiveWorld:
    """``home/``, ``build/`` and ``run/`` of one short real local run, in ``folder``."""

    folder: Path

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def build(self) -> Path:
        return self.folder / "build"

    @property
    def run(self) -> Path:
        return self.folder / "run"

    def copy_to(self, folder: Path) -> LiveWorld:
        """A copy in ``folder`` (made here) whose run names the copied build as its image."""
        folder.mkdir(parents=True, exist_ok=True)
        for part in ("home", "build", "run"):
            shutil.copytree(self.folder / part, folder / part, symlinks=True)
        copy = LiveWorld(folder)
        summary = json.loads((copy.run / "summary.json").read_text())
        summary["image"] = str(copy.build)
        (copy.run / "summary.json").write_text(json.dumps(summary))
        return copy


def tree_digest(folder: Path) -> str:
    """SHA-256 over every path under ``folder`` and each file's bytes (to see a change)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        if path.is_file() and not path.is_symlink():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
