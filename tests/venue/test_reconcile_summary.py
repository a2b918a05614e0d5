"""The reconcile verdict's positions line reads as text, not a Python dict."""

from __future__ import annotations

from zcbench.venue.reconcile import ReconcileReport


def _report(positions: dict[str, int]) -> ReconcileReport:
    return ReconcileReport(
        runs=("run-1",), statement="drop.fix", statement_format="fix", executions=3,
        signals=2, orders=2, positions=positions, journal_positions=positions,
    )


def test_positions_line_is_readable() -> None:
    lines = _report({"BBB": -100, "AAA": 300}).summary_lines()
    assert lines[2] == "  positions from the statement: AAA +300, BBB -100"
    assert not any("{'" in line for line in lines)


def test_no_positions() -> None:
    assert _report({}).summary_lines()[2] == "  positions from the statement: none"
