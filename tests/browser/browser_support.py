"""Names shared by the browser tests and their fixtures (kept out of conftest.py, whose module
name is not unique in the test tree)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READY_TIMEOUT_S = 120.0  # a server is normally up in 5-10 s


@dataclass(frozen=True)
class World:
    """A zcbench home with a build and a finished run, and a folder of parameterised notebooks."""

    root: Path
    home: Path
    build: Path
    run: Path
    notebooks: Path


@dataclass(frozen=True)
class Server:
    base_url: str
    token: str

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={self.token}"
