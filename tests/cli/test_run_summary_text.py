"""The live run's printed summary names positions as text, not a Python dict."""

from __future__ import annotations

from typing import Any

import pytest

from zcbench.cli.run import _print_summary
from zcbench.host.summary import RunSummary


def _summary(positions: dict[str, int], **changes: Any) -> RunSummary:
    values: dict[str, Any] = dict(
        simulated=True, run_id="run-1", status="completed", reason="duration reached",
        batches=1, events=10, events_per_s=10.0, freshness_p50_ms=1.0, freshness_p99_ms=2.0,
        signals=1, orders=1, fills=1, rejects=0, pnl=0, positions=positions,
        dropped_batches=0, dropped_events=0, isolated_network=True, log_size=3,
        origin="zcbench/00/run-1", run_dir="run-1", currency="USD", money_scale=10_000,
        image="build", elapsed_s=1.0, batch_rtt_p50_ms=1.0, batch_rtt_p99_ms=2.0,
        freshness_histogram={}, trust="dev",
    )
    return RunSummary(**{**values, **changes})


@pytest.mark.parametrize(("positions", "text"), [({"BBB": -100, "AAA": 300}, "AAA +300, BBB -100"),
                                                 ({}, "none")])
def test_positions_are_text(positions: dict[str, int], text: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    _print_summary(_summary(positions))
    out = capsys.readouterr().out
    assert f"; positions {text}\n" in out
    assert "{" not in out


def test_the_summary_names_the_capital_its_cash_and_the_refusals_for_lack_of_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    capital = {"amount": 10_000_000_000, "money_scale": 10_000, "leverage": 2.0,
               "short_margin": 0.5}
    _print_summary(_summary({"AAA": 300}, capital=capital, cash=9_970_000_000,
                            equity=10_000_050_000, buying_power_used=15_000_000,
                            refusals={"insufficient_margin": 2, "max_position": 1}))
    out = capsys.readouterr().out
    assert ("  capital 1,000,000.00 USD (leverage 2, short margin 0.5): cash 997,000.00 USD, "
            "buying power used 1,500.00 USD of 1,000,005.00 USD equity; refused 0 "
            "insufficient_cash, 2 insufficient_margin\n") in out
    _print_summary(_summary({}))
    assert "  capital did not bind (no buying-power check)\n" in capsys.readouterr().out
