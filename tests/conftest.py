"""Shared test fixtures: a temporary zcbench home for every test, and the vector folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# No property test has a time limit: speed is measured in bench/, and a shared machine under load
# makes any per-example deadline a source of false failures.
settings.register_profile("zcbench", deadline=None)
settings.load_profile("zcbench")

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO / "tests" / "vectors"


@pytest.fixture(autouse=True)
def zcbench_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own empty ``$ZCBENCH_HOME``; nothing touches the user's."""
    home = tmp_path_factory.mktemp("zcbench-home")
    monkeypatch.setenv("ZCBENCH_HOME", str(home))
    return home


@pytest.fixture
def nitro_vectors() -> Path:
    """Real Nitro attestation documents and the AWS root (tests/vectors/nitro/SOURCES.md)."""
    return VECTORS / "nitro"


@pytest.fixture
def tlog_vectors() -> Path:
    """Merkle, signed-note and CT vectors (tests/vectors/tlog/SOURCES.md)."""
    return VECTORS / "tlog"
