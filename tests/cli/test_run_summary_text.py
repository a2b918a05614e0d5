"""The live run's printed summary names positions as text, not a Python dict."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from zcbench.cli.run import _print_summary


def _summary(positions: dict[str, int]) -> SimpleNamespace:
    return SimpleNamespace(
        simulated=True, run_id="run-1", status="completed", reason="duration reached",
        batches=1, events=10, events_per_s=10.0, freshness_p50_ms=1.0, freshness_p99_ms=2.0,
        signals=1, orders=1, fills=1, rejects=0, pnl=0, positions=positions,
        dropped_batches=0, dropped_events=0, isolated_network=True, log_size=3,
        origin="zcbench/00/run-1", run_dir="run-1", currency="USD", money_scale=10_000,
    )


@pytest.mark.parametrize(("positions", "text"), [({"BBB": -100, "AAA": 300}, "AAA +300, BBB -100"),
                                                 ({}, "none")])
def test_positions_are_text(positions: dict[str, int], text: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    _print_summary(_summary(positions))
    out = capsys.readouterr().out
    assert f"; positions {text}\n" in out
    assert "{" not in out
