"""Backtest, live run (paper venue) and replay give the same feedback, batches, signals and fills.

The backtest runs the live run's own execution layer, paper venue and feedback builder
(``zcbench.backtest.backtest_log``); a live run with feedback on the paper venue logs its IN and
OUT records through the enclave, with its clock records, which land between batches at
wall-clock moments and so at other log indices in every run. Outcomes and ClOrdIDs name a
signal by its batch and position, never by log index, so both are compared record by record
(IN and OUT, in order), byte for byte, with the journal rows (fills included) but for their
wall-clock time and the log index that locates each OUT record, on the example crossover,
which trades to its target from the position the context reports: bars with little volume fill
its orders in part, and a notional limit refuses the larger ones, so the context matters to
what it signals.
"""

from __future__ import annotations

import hashlib
import importlib.util
import textwrap
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

import zcbench.examples.ma_crossover as crossover_module
from zcbench.auditlog import events_frame, list_records, outcomes_frame, positions_frame, to_polars
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.records import Record
from zcbench.backtest import BacktestConfig, backtest_log, prepare, run_backtest
from zcbench.cli import main
from zcbench.examples import MACrossover, MACrossoverParams
from zcbench.host import ReplaySource
from zcbench.host.execution import RiskLimits, read_journal
from zcbench.host.live import ModuleImage, RunSummary, run_live
from zcbench.host.replay import replay_log
from zcbench.marketdata import (
    BatchSpec,
    SyntheticConfig,
    generate_ticks,
    load_ohlcv,
    sample_daily_path,
)
from zcbench.strategy import Context, Strategy, decode_context, decode_signals, is_context
from zcbench.venue import PaperVenue

PARAMS = {"fast": 3, "slow": 8, "quantity": 100, "allow_short": True}
SPEC = BatchSpec(count=1)


def _bars(n: int = 160) -> pl.DataFrame:
    """MSFT's daily bars with thin, varying volume, so the venue fills orders in part."""
    bars = load_ohlcv(sample_daily_path()).slice(2_000, n)
    volume = [40 + (i * 37) % 150 for i in range(bars.height)]
    return bars.with_columns(pl.Series("volume", volume, dtype=pl.Int64))


def _limits(bars: pl.DataFrame) -> RiskLimits:
    # one order may be worth about 150 units at the period's top price: a reversal (200 units)
    # is refused, a smaller order passes
    top = int(bars.get_column("close").max())  # type: ignore[arg-type]
    return RiskLimits(max_notional=150 * top)


def _contexts(records: list[tuple[int, str, int, bytes]]) -> list[Context]:
    return [decode_context(b, seq=seq) for _, kind, seq, b in records
            if kind == "in" and is_context(b)]


def _live_run(image: ModuleImage, bars: pl.DataFrame, limits: RiskLimits, run: Path,
              clock_every_s: float | None) -> RunSummary:
    summary = run_live(
        image, run, ReplaySource(bars, SPEC), limits=limits, venue=PaperVenue(),
        feedback=True, run_id="run-parity", clock_every_s=clock_every_s,
    )
    assert summary.status == "completed", summary.reason
    return summary


def _batch_records(run: Path) -> list[Record]:
    """The run's IN and OUT records (boot, control and clock records are notes)."""
    return [r for r, _ in iter_records(run) if r.kind in ("in", "out")]


def _signals_digest(records: list[Record]) -> str:
    """The backtest's signals digest (``zcbench.backtest``) over a log's OUT records."""
    digest = hashlib.sha256()
    for r in sorted((r for r in records if r.kind == "out"), key=lambda r: r.seq or 0):
        assert r.seq is not None
        digest.update(r.seq.to_bytes(8, "big") + len(r.body).to_bytes(8, "big") + r.body)
    return digest.hexdigest()


@dataclass(frozen=True)
class _World:
    bars: pl.DataFrame
    limits: RiskLimits
    image: ModuleImage
    run: Path
    summary: RunSummary


@pytest.fixture
def world(tmp_path: Path) -> _World:
    # one live run for both tests would need one zcbench home (a test's own): run it per test
    bars = _bars()
    limits = _limits(bars)
    run = tmp_path / "run"
    image = ModuleImage(Path(crossover_module.__file__), PARAMS)
    # clock records on, as `zcbench run` logs them (at its start, every 0.25 s and at its end)
    summary = _live_run(image, bars, limits, run, 0.25)
    return _World(bars, limits, image, run, summary)


@pytest.mark.slow
def test_backtest_live_and_replay_give_the_same_records_and_fills(
    world: _World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strategy = MACrossover(MACrossoverParams(**PARAMS))
    data = prepare(world.bars, strategy.fields(), SPEC)
    expected = backtest_log(strategy, data, limits=world.limits, order_prefix="run-parity")
    run, summary = world.run, world.summary
    # a second live run whose clock records come before almost every batch: they land at
    # other places than the first run's, and shift every OUT record's log index on
    again = tmp_path / "again"
    _live_run(world.image, world.bars, world.limits, again, 0.0)
    backtest = [(r.index, r.kind, r.seq, r.body) for r in expected.records]
    clocks: dict[Path, list[int]] = {}
    for live in (run, again):
        records = _batch_records(live)
        clocks[live] = [r.index for r, _ in iter_records(live) if r.kind == "note"]
        assert len(records) == len(backtest)
        for got, (index, kind, seq, body) in zip(records, backtest, strict=True):
            assert (got.kind, got.seq) == (kind, seq)
            assert got.body == body, f"{live.name}: record {got.index} ({kind}, batch {seq}) " \
                f"differs from the backtest's record {index}"
        assert _signals_digest(records) == expected.signals_digest
        # the clock records moved the log indices the backtest counts (boot, control, batches)
        assert any(got.index != index for got, (index, *_) in zip(records, backtest,
                                                                     strict=True))
    assert clocks[run] != clocks[again], "the clock records landed at the same places"
    # the outcomes and ClOrdIDs the two runs logged are the same bytes: no log index in them
    assert read_journal(run).rows.drop("time_ns", "log_index").equals(
        read_journal(again).rows.drop("time_ns", "log_index"))

    # the context mattered: partial fills and refusals, and orders for the remainder after them
    outcomes = [o for c in _contexts(backtest) for o in c.outcomes]
    statuses = {o.status for o in outcomes}
    assert {"refused", "filled", "cancelled"} <= statuses, statuses
    assert any(o.limit == "max_notional" for o in outcomes)
    sizes = {s.quantity for _, kind, _, body in backtest if kind == "out"
             for s in decode_signals(body)}
    assert sizes - {100, 200}, f"no order for a remainder: {sorted(sizes)}"

    # fills included: the journal is the same row for row (its time stamps are wall clock live,
    # and its log_index locates each OUT record in its own log), ClOrdIDs included
    journal = read_journal(run).rows
    assert journal.height == expected.journal.height > 0
    assert journal["cl_ord_id"].str.starts_with("run-parity-").all()
    assert journal.drop("time_ns", "log_index").equals(
        expected.journal.drop("time_ns", "log_index"))
    assert summary.positions == expected.positions

    # replay re-feeds the feedback and gets every OUT record byte for byte
    report = replay_log(run, build=world.image, trust="dev")
    assert report.verified, report.message
    assert (report.skipped, report.matched) == (0, summary.batches)
    # and the log's surfaces name the feedback records as such
    _check_surfaces(world, tmp_path, capsys)


def _check_surfaces(world: _World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Listings, ``log show``, the DataFrame API and export tell feedback records apart."""
    run = world.run
    records = [r for r, _ in iter_records(run)]
    fed = [r for r in records if r.kind == "in" and is_context(r.body)]
    batches = [r for r in records if r.kind == "in" and not is_context(r.body)]
    assert fed
    assert batches
    # the listing says what a feedback record holds, not "N events"
    listing = list_records(run, limit=None)
    summaries = {row.index: row.summary for row in listing.rows}
    for r in fed:
        context = decode_context(r.body, seq=r.batch_seq)
        assert summaries[r.index].startswith(f"feedback for batch {context.seq}: ")
    refused = next(r for r in fed if decode_context(r.body, seq=r.batch_seq).refusals())
    assert "by max_notional" in summaries[refused.index]
    assert all(summaries[r.index].endswith("events: MSFT") for r in batches)
    assert main(["log", "show", str(run), "--limit", "0"]) == 0
    assert f"feedback for batch {refused.batch_seq}" in capsys.readouterr().out
    # the DataFrame API: feedback rows flagged, events only from batches, outcomes decoded
    frame = to_polars(run)
    flagged = frame.filter(pl.col("feedback").fill_null(False)).get_column("index").to_list()
    assert flagged == [r.index for r in fed]
    events = events_frame(run)
    assert events.height == world.bars.height
    assert set(events.get_column("log_index").to_list()) == {r.index for r in batches}
    outcomes = outcomes_frame(run)
    signed = [o for r in fed for o in decode_context(r.body, seq=r.batch_seq).outcomes]
    assert outcomes.height == len(signed) == read_journal(run).rows.height
    assert outcomes.filter(pl.col("status") == "refused").get_column("limit").unique().to_list() \
        == ["max_notional"]
    positions = positions_frame(run)
    last = positions.filter(pl.col("log_index") == fed[-1].index)
    assert dict(zip(last["symbol"], last["position"], strict=True)) == world.summary.positions
    # export by symbol keeps feedback records (their symbols are their outcomes')
    out = tmp_path / "slice.tlog"
    assert main(["log", "export", str(run), "--symbol", "MSFT", "--out", str(out),
                 "--trust", "dev"]) == 0
    kept = [r for r, _ in iter_records(out) if r.kind == "in" and is_context(r.body)]
    assert len(kept) == len(fed)


def test_run_backtest_feeds_a_context_strategy_through_the_same_loop() -> None:
    bars = _bars(120)
    strategy = MACrossover(MACrossoverParams(**PARAMS))
    data = prepare(bars, strategy.fields(), SPEC)
    log = backtest_log(strategy, data)
    result = run_backtest(
        MACrossover(MACrossoverParams(**PARAMS)), bars, BacktestConfig(count=1)
    )
    assert result.signals_digest == log.signals_digest
    assert result.journal is not None
    assert result.journal.equals(log.journal)
    # the same strategy told nothing (the old contract) assumes its orders filled in full
    blind = run_backtest(_Blind(MACrossoverParams(**PARAMS)), bars, BacktestConfig(count=1))
    assert blind.journal is None
    assert blind.signals_digest != result.signals_digest


class _Blind(MACrossover):
    """The crossover as a strategy without feedback: ``on_batch(batch)`` only."""

    name = "ma_crossover_blind"

    def on_batch(self, batch):  # type: ignore[no-untyped-def,override]
        return super().on_batch(batch)


ECHO = textwrap.dedent(
    '''
    from dataclasses import dataclass
    from zcbench.strategy import Signal, Strategy


    @dataclass(frozen=True)
    class Params:
        every: int = 3


    class Echo(Strategy):
        """Buys 2 every few batches, each order carrying in its hints the signal the last
        outcome it was told of names (its batch and position): its signals are what it is told."""

        name = "echo"
        params_type = Params
        input_fields = ("price",)

        def __init__(self, params):
            super().__init__(params)
            self.batches = 0
            self.seen = (-1, -1)

        def on_batch(self, batch, context=None):
            self.batches += 1
            if context is not None and context.outcomes:
                last = context.outcomes[-1]
                self.seen = (last.batch, last.signal)
            if self.batches % self.params.every or not len(batch):
                return []
            symbol = batch.events["symbol"][0]
            return [Signal(symbol, "buy", 2, hints=(("seen_batch", self.seen[0]),
                                                    ("seen_signal", self.seen[1])))]
    '''
)


@pytest.mark.slow
def test_a_strategy_that_reads_the_outcomes_names_signals_the_same_with_clock_records(
    tmp_path: Path,
) -> None:
    # its signals carry the (batch, position) its outcomes name: with a clock record before
    # almost every batch, a live run signals exactly what the backtest does
    module = tmp_path / "echo.py"
    module.write_text(ECHO)
    spec = importlib.util.spec_from_file_location("echo_strategy", module)
    assert spec is not None
    assert spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    strategy: Strategy = loaded.Echo(loaded.Params())
    events = generate_ticks(SyntheticConfig(rate=2_000, duration_s=0.5), seed=5)
    batching = BatchSpec(count=20)
    limits = RiskLimits(max_position=5)  # the third buy of 2 is refused, and every later one
    expected = backtest_log(strategy, prepare(events, strategy.fields(), batching),
                            limits=limits, order_prefix="run-echo")
    run = tmp_path / "run"
    summary = run_live(ModuleImage(module), run, ReplaySource(events, batching), limits=limits,
                       venue=PaperVenue(), feedback=True, run_id="run-echo", clock_every_s=0.0)
    assert summary.status == "completed", summary.reason
    records = _batch_records(run)
    assert [(r.kind, r.seq, r.body) for r in records] == [
        (r.kind, r.seq, r.body) for r in expected.records]
    assert _signals_digest(records) == expected.signals_digest
    assert sum(1 for r, _ in iter_records(run) if r.kind == "note") > 3  # clock records
    seen = {dict(s.hints)["seen_batch"] for r in records if r.kind == "out"
            for s in decode_signals(r.body)}
    assert len(seen - {-1}) > 3, seen  # it was told of many of its signals
    outcomes = [o for r in records if r.kind == "in" and is_context(r.body)
                for o in decode_context(r.body, seq=r.batch_seq).outcomes]
    assert {"filled", "refused"} <= {o.status for o in outcomes}
