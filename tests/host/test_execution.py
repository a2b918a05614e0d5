"""Execution layer: risk limits, paper fills, positions, PnL, journal."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from zcbench.errors import DataError, EnvError, UsageError
from zcbench.host.execution import (
    JOURNAL_FILE,
    ExecutionLayer,
    Journal,
    RiskLimits,
    VerifiedSignals,
    read_journal,
)
from zcbench.strategy import Signal

S = 1_000_000_000


def _market(ex: ExecutionLayer, px: int, symbol: str = "AAA") -> None:
    ex.on_market(pl.DataFrame({"ts": [1], "symbol": [symbol], "price": [px]}))


def _batch(*signals: Signal, seq: int = 0, out_index: int = 2) -> VerifiedSignals:
    return VerifiedSignals(seq, out_index, out_index + 1, tuple(signals))


def test_fill_position_pnl_and_journal(tmp_path: Path) -> None:
    ex = ExecutionLayer(RiskLimits(max_position=10))
    _market(ex, 1000)
    [r] = ex.act(_batch(Signal("AAA", "buy", 5)), now_ns=S)
    assert (r.status, r.fill_price, r.log_index) == ("filled", 1000, 2)
    _market(ex, 1100)
    assert ex.positions == {"AAA": 5}
    assert ex.pnl() == 5 * 100
    [r] = ex.act(_batch(Signal("AAA", "sell", 5), seq=1, out_index=4), now_ns=2 * S)
    assert r.status == "filled"
    assert ex.pnl() == 500
    assert ex.positions == {"AAA": 0}
    j = ex.journal()
    assert j["event"].to_list() == ["order", "fill", "order", "fill"]
    assert j["log_index"].to_list() == [2, 2, 4, 4]
    assert j["price_ticks"].to_list() == [None, 1000, None, 1100]


def _journal(tmp_path: Path) -> Journal:
    return Journal.create(tmp_path / JOURNAL_FILE, run_id="run-1", origin="o", image="b")


def test_each_batch_is_durable_in_the_journal_before_act_returns(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    assert read_journal(tmp_path).rows.height == 0  # the header alone: never an empty file
    assert (tmp_path / JOURNAL_FILE).stat().st_size > 0
    ex = ExecutionLayer(RiskLimits(max_position=10), journal)
    _market(ex, 1000)
    ex.act(_batch(Signal("AAA", "buy", 5)), now_ns=S)
    # read by another reader while the run goes on: the batch's rows are already there
    first = read_journal(tmp_path)
    assert first.rows["event"].to_list() == ["order", "fill"]
    assert first.header["run_id"] == "run-1"
    ex.act(_batch(Signal("AAA", "buy", 50), seq=1, out_index=4), now_ns=2 * S)
    later = read_journal(tmp_path, offset=first.end)  # incremental: only the new rows
    assert later.rows["event"].to_list() == ["order", "reject"]
    assert later.rows["seq"].to_list() == [1, 1]
    whole = read_journal(tmp_path)
    assert whole.rows.equals(ex.journal())
    assert whole.torn is None
    ex.close()
    with pytest.raises(UsageError, match="already exists"):
        _journal(tmp_path)


def test_a_torn_last_row_is_left_out_reported_and_cut_on_repair(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    ex = ExecutionLayer(RiskLimits(), journal)
    _market(ex, 1000)
    ex.act(_batch(Signal("AAA", "buy", 5)), now_ns=S)
    path = tmp_path / JOURNAL_FILE
    whole = path.stat().st_size
    with path.open("ab") as f:
        f.write(b'{"event": "order", "seq": 1, "sym')  # a row cut by a crash mid-write
    read = read_journal(tmp_path)
    assert read.rows.height == 2
    assert read.torn is not None
    assert (read.torn.offset, read.torn.length) == (whole, path.stat().st_size - whole)
    assert "torn last row" in read.torn.describe()
    assert path.stat().st_size > whole  # reading does not write
    repaired = read_journal(tmp_path, repair=True)
    assert repaired.torn == read.torn
    assert path.stat().st_size == whole
    assert read_journal(tmp_path).torn is None


def test_damage_before_whole_rows_is_not_a_torn_tail(tmp_path: Path) -> None:
    ex = ExecutionLayer(RiskLimits(), _journal(tmp_path))
    _market(ex, 1000)
    ex.act(_batch(Signal("AAA", "buy", 5)), now_ns=S)
    path = tmp_path / JOURNAL_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[1:]))
    with pytest.raises(DataError, match="damage in the middle"):
        read_journal(tmp_path)


def test_not_a_journal_and_a_missing_one_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_FILE).write_text('{"pnl": 3}\n')
    with pytest.raises(DataError, match="not a zcbench journal"):
        read_journal(tmp_path)
    with pytest.raises(EnvError, match="does not exist"):
        read_journal(tmp_path / "nowhere")


def test_a_failed_journal_write_is_an_env_error_and_poisons_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    journal = _journal(tmp_path)
    ex = ExecutionLayer(RiskLimits(), journal)
    _market(ex, 1000)

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(EnvError, match=r"writing the journal .* No space left on device"):
        ex.act(_batch(Signal("AAA", "buy", 5)), now_ns=S)
    monkeypatch.undo()
    with pytest.raises(EnvError, match="failed earlier"):
        ex.act(_batch(Signal("AAA", "buy", 5), seq=1), now_ns=S)


@pytest.mark.parametrize(
    ("limits", "signal", "reason"),
    [
        (RiskLimits(max_position=3), Signal("AAA", "buy", 4), "position"),
        (RiskLimits(max_notional=3999), Signal("AAA", "buy", 4), "notional"),
        (RiskLimits(price_collar_bps=100), Signal("AAA", "buy", 1, limit_price=1011), "collar"),
        (RiskLimits(kill_switch=True), Signal("AAA", "buy", 1), "kill switch"),
        (RiskLimits(), Signal("BBB", "buy", 1), "no market price"),
    ],
)
def test_risk_limits_reject(limits: RiskLimits, signal: Signal, reason: str) -> None:
    ex = ExecutionLayer(limits)
    _market(ex, 1000)
    [r] = ex.act(_batch(signal), now_ns=S)
    assert r.status == "rejected"
    assert reason in r.reason
    assert ex.positions == {}
    assert ex.counts() == {"order": 1, "fill": 0, "reject": 1}


def test_order_rate_window_and_kill() -> None:
    ex = ExecutionLayer(RiskLimits(max_orders_per_s=2))
    _market(ex, 1000)
    got = ex.act(_batch(*[Signal("AAA", "buy", 1)] * 3), now_ns=S)
    assert [r.status for r in got] == ["filled", "filled", "rejected"]
    [r] = ex.act(_batch(Signal("AAA", "buy", 1)), now_ns=2 * S + 1)
    assert r.status == "filled"
    ex.kill("operator")
    [r] = ex.act(_batch(Signal("AAA", "buy", 1)), now_ns=3 * S)
    assert r.status == "rejected"
    assert "operator" in r.reason


def test_limit_through_market_is_unfilled() -> None:
    ex = ExecutionLayer()
    ex.on_market(pl.DataFrame({"ts": [1], "symbol": ["AAA"], "bid": [998], "ask": [1002]}))
    [r] = ex.act(_batch(Signal("AAA", "buy", 1, limit_price=999)), now_ns=S)
    assert r.status == "unfilled"
    [r] = ex.act(_batch(Signal("AAA", "sell", 1, limit_price=999)), now_ns=S)
    assert (r.status, r.fill_price) == ("filled", 1000)


def test_acts_only_on_verified_signals() -> None:
    ex = ExecutionLayer()
    with pytest.raises(UsageError):
        ex.act([Signal("AAA", "buy", 1)], now_ns=S)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="does not cover"):
        VerifiedSignals(0, out_index=5, checkpoint_size=5, signals=())


def test_last_prices_across_batches_take_each_symbols_newest_usable_price() -> None:
    ex = ExecutionLayer()
    ex.on_market(
        pl.DataFrame(
            {
                "symbol": ["AAA", "BBB", "AAA"],
                "price": [10, 20, 11],
                "bid": [None, None, None],
                "ask": [None, None, None],
            },
            schema_overrides={"bid": pl.Int64, "ask": pl.Int64},
        )
    )
    ex.on_market(
        pl.DataFrame(
            {
                "symbol": ["BBB", "AAA", "CCC"],
                "price": [21, None, None],
                "bid": [None, None, 98],
                "ask": [None, None, 102],
            }
        )
    )
    assert ex.last_price == {"AAA": 11, "BBB": 21, "CCC": 100}
    ex.on_market(pl.DataFrame({"symbol": ["AAA"], "close": [12]}))
    assert ex.last_price == {"AAA": 12, "BBB": 21, "CCC": 100}


def test_last_prices_take_symbols_of_any_column_type_a_feed_gives() -> None:
    # the symbols seen are worked out over the batches' columns at once: a categorical column,
    # an all-null one and plain text together still give each symbol's newest price
    ex = ExecutionLayer()
    ex.on_market(pl.DataFrame({"symbol": ["AAA", "BBB"], "price": [10, 20]}))
    ex.on_market(pl.DataFrame({"symbol": pl.Series(["BBB"], dtype=pl.Categorical),
                               "price": [22]}))
    ex.on_market(pl.DataFrame({"symbol": pl.Series([None], dtype=pl.Null), "price": [5]}))
    assert ex.last_price == {"AAA": 10, "BBB": 22}
