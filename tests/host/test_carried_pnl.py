"""A continuing run's PnL counts from its carried positions, each entering at its mark after
the first batch of the run that prices it; not from zero cash (which made the carried
positions' whole value look like profit)."""

from __future__ import annotations

import polars as pl

from zcbench.host.execution import ExecutionLayer


def _trades(rows: list[tuple[str, int]]) -> pl.DataFrame:
    return pl.DataFrame({"symbol": [s for s, _ in rows], "price": [p for _, p in rows]},
                        schema={"symbol": pl.String, "price": pl.Int64})


def test_carried_positions_count_from_their_first_mark() -> None:
    execution = ExecutionLayer()
    execution.carry({"AAA": 7, "BBB": -3, "CCC": 0})
    assert execution.positions == {"AAA": 7, "BBB": -3, "CCC": 0}
    assert execution.pnl() == 0  # nothing priced yet: nothing made
    execution.on_market(_trades([("AAA", 10_000), ("CCC", 1), ("AAA", 10_200)]))
    assert execution.pnl() == 0  # AAA enters at 10,200, its batch's last price
    execution.on_market(_trades([("AAA", 10_500), ("BBB", 50_000)]))
    assert execution.pnl() == 7 * 300  # BBB enters at 50,000
    execution.on_market(_trades([("BBB", 49_000), ("AAA", 10_100)]))
    assert execution.pnl() == 7 * (10_100 - 10_200) + -3 * (49_000 - 50_000)


def test_a_first_run_is_unchanged() -> None:
    execution = ExecutionLayer()
    execution.on_market(_trades([("AAA", 10_000)]))
    assert execution.pnl() == 0
    execution.positions["AAA"] = 2  # as a fill would, with its cash
    execution.cash -= 2 * 10_000
    execution.on_market(_trades([("AAA", 10_400)]))
    assert execution.pnl() == 800
