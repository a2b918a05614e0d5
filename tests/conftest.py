"""Fixtures shared by the tests of several parts: a temporary zcbench home for every test, the
Nitro vectors, a SeaweedFS server, and the one short real live run (live_world.py). A part's own
fixtures are in its folder's conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests._seaweed import SeaweedS3, running_seaweed
from tests.live_world import LiveWorld, tree_digest

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


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    """A real SeaweedFS S3 server on loopback for the session (started on first use); each test
    uses buckets of its own."""
    with running_seaweed() as server:
        yield server


@pytest.fixture(scope="session")
def live_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveWorld]:
    """One short real local run (build, home, run) per test process, made on first use. Read
    only: a test that changes it takes ``live_world_copy``; the end of the session checks."""
    from tests.promoted_build import make_run

    world = LiveWorld(tmp_path_factory.mktemp("live-world"))
    mp = pytest.MonkeyPatch()
    mp.setenv("ZCBENCH_HOME", str(world.home))
    try:
        make_run(world.folder)
    finally:
        mp.undo()
    before = tree_digest(world.folder)
    yield world
    assert tree_digest(world.folder) == before, "a test changed the shared live run"


@pytest.fixture
def live_world_copy(live_world: LiveWorld, tmp_path: Path) -> LiveWorld:
    """A copy of the shared live run of this test's own, to change at will."""
    return live_world.copy_to(tmp_path / "world")
