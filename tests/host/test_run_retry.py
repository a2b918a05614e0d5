"""A run that fails before it starts leaves no debris: a retry into the same folder works."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

import zcbench.examples.order_flow as order_flow
from zcbench.errors import ZcbenchError
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.sources import market_source
from zcbench.marketdata import BatchSpec

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class _WrongPcrs(ModuleImage):
    """The real image, expected under PCRs it does not have: its boot document fails."""

    def expected_pcrs(self) -> dict[int, bytes]:
        return {0: bytes(48)}


def _source() -> object:
    return market_source(BatchSpec(count=200), rate=2000.0, duration_s=1.0).source


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_start_leaves_nothing_and_the_retry_runs(tmp_path: Path, existing: bool) -> None:
    run_dir = tmp_path / "run"
    if existing:
        run_dir.mkdir()  # an empty folder the caller made stays, emptied
    with pytest.raises(ZcbenchError):
        run_live(_WrongPcrs(Path(order_flow.__file__)), run_dir, _source())  # type: ignore[arg-type]
    assert run_dir.is_dir() == existing
    assert not existing or not any(run_dir.iterdir())
    summary = run_live(ModuleImage(Path(order_flow.__file__)), run_dir, _source())  # type: ignore[arg-type]
    assert summary.status == "completed", summary.reason
