"""A verified tear sheet: performance recomputed from what the run signed and acted on, not from
figures the fund typed in (Advisers Act Rule 204-2 wants the records behind any performance shown).

Inputs are the journal's fills whose signal is in the verified signed log (the pack's
``in_signed_log``), and marks from the signed log's IN batches by the one market-price rule
the execution layer and the backtest use (:func:`zcbench.marketdata.marks`: a trade's price,
else the quote's mid, else a bar's close). After each batch: its events update the marks, its
fills move cash and positions, and equity is capital + cash + positions at the marks; so the
last equity minus capital is the run's PnL. The figures are the backtest's
(:mod:`zcbench.backtest` metrics, the same formulas, README "Backtest metrics"), so the live and
the backtest sheets over the same logged batches compare like for like.

Beside it, the backtest over the same logged batches (:func:`backtest_sheet`): the signals
the signed log's OUT records carry (what a replay of the strategy over those batches emits,
byte for byte) filled by :mod:`zcbench.backtest`'s rule (the next event of the symbol after the
batch, at the price on the order's side; no slippage or fee) under its buying-power rule with
the same capital, and measured by the same :func:`tear_sheet`. The two differ only in how
orders filled: the gap is what execution (risk limits, the venue, timing) cost or gained.
That is the backtest of a strategy that takes batches only. One that took the feedback
context is backtested as ``zcbench backtest`` does it (:func:`logged_backtest`: the venue
model of :func:`zcbench.backtest.run_prepared`, the closed loop's execution layer and paper
venue; the sheet is that result's own equity and metrics, :func:`logged_sheet`), so its PnL
is the live paper run's where the log holds what the venue needs
(:func:`run_backtest_model` says which model a run got).

The deflated Sharpe ratio (Bailey and López de Prado, 2014) discounts the per-batch Sharpe by the
number of research trials behind the committed parameters and the variance of their Sharpe
ratios; with one trial it is the probabilistic Sharpe ratio against zero.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl

from zcbench.errors import UsageError
from zcbench.marketdata import Account
from zcbench.strategy import PRICE_SCALE, Batch, Context, Signal, Strategy

if TYPE_CHECKING:
    from zcbench.backtest import BacktestResult

__all__ = [
    "DEFAULT_CAPITAL_TICKS",
    "NEXT_EVENT_MODEL",
    "VENUE_MODEL",
    "TearSheet",
    "backtest_fills",
    "backtest_sheet",
    "batch_ends",
    "carried_positions",
    "deflated_sharpe",
    "logged_backtest",
    "logged_sheet",
    "marks_by_batch",
    "run_backtest_model",
    "run_backtest_sheet",
    "run_money",
    "run_tear_sheet",
    "signed_fills",
    "tear_sheet",
]

DEFAULT_CAPITAL_TICKS: Final = 1_000_000 * 10_000
"""1,000,000 currency units: the capital returns are measured against unless one is given."""
_EULER_GAMMA: Final = 0.5772156649015329


@dataclass(frozen=True, slots=True)
class TearSheet:
    """Figures of one run. Money in ticks; ``sharpe_per_batch`` is not annualised (it is what
    the deflated Sharpe takes); ``deflated_sharpe`` is a probability (None with under 3
    batches); ``trials`` is None when the number of research trials is not known."""

    capital_ticks: int
    pnl_ticks: int
    total_return: float
    volatility: float
    sharpe: float
    sharpe_per_batch: float
    sortino: float
    max_drawdown: float
    max_drawdown_duration_s: float
    exposure: float
    turnover: float
    n_batches: int
    n_fills: int
    periods_per_year: float
    trials: int | None
    deflated_sharpe: float | None
    equity_ticks: tuple[int, ...] = ()
    """Equity after each logged batch (for plots; not a column of the pack's table)."""
    currency: str = "USD"
    money_scale: int = 10_000
    """The money fields are in units of ``1 / money_scale`` of ``currency`` (the run's
    account: :func:`zcbench.host.summary.run_account`)."""

    def to_row(self) -> dict[str, Any]:
        """The pack's row: every figure, money in ``money_scale`` units of ``currency``."""
        return {name: getattr(self, name) for name in self.__slots__ if name != "equity_ticks"}


def deflated_sharpe(sharpe: float, n_obs: int, *, skew: float = 0.0, kurtosis: float = 3.0,
                    trials: int = 1, trial_sharpe_variance: float = 0.0) -> float:
    """The probability that the true per-period Sharpe exceeds the expected maximum of
    ``trials`` unskilled ones (Bailey and López de Prado 2014, eq. 2 with SR0 of eq. 3)."""
    if n_obs < 2 or trials < 1 or trial_sharpe_variance < 0:
        raise UsageError("the deflated Sharpe needs at least 2 observations, 1 trial and a "
                         "non-negative variance")
    normal = statistics.NormalDist()
    sr0 = 0.0
    if trials > 1:
        sr0 = math.sqrt(trial_sharpe_variance) * (
            (1 - _EULER_GAMMA) * normal.inv_cdf(1 - 1 / trials)
            + _EULER_GAMMA * normal.inv_cdf(1 - 1 / (trials * math.e)))
    denominator = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if denominator <= 0:
        return 0.0
    return normal.cdf((sharpe - sr0) * math.sqrt(n_obs - 1) / math.sqrt(denominator))


def marks_by_batch(events: pl.DataFrame) -> pl.DataFrame:
    """``seq, symbol, price_ticks``: each symbol's last mark in each batch (the one market-price
    rule, :func:`zcbench.marketdata.mark_expr`)."""
    from zcbench.marketdata import mark_expr

    if "symbol" not in events.columns or not events.height:
        return pl.DataFrame(schema={"seq": pl.Int64, "symbol": pl.String,
                                    "price_ticks": pl.Int64})
    return (events.select(pl.col("seq").cast(pl.Int64), "symbol",
                          mark_expr(events.columns).alias("price_ticks"))
            .filter(pl.col("price_ticks") > 0)
            .group_by("seq", "symbol", maintain_order=True).last()
            .sort("seq", "symbol"))


def tear_sheet(fills: pl.DataFrame, marks: pl.DataFrame, batch_ends: pl.DataFrame, *,
               capital_ticks: int = DEFAULT_CAPITAL_TICKS, periods_per_year: float | None = None,
               trials: int | None = None, trial_sharpe_variance: float = 0.0,
               carried: Mapping[str, int] | None = None,
               account: Account | None = None) -> TearSheet:
    """The sheet from ``fills`` (seq, symbol, side, quantity, price_ticks), ``marks`` (seq,
    symbol, price_ticks) and ``batch_ends`` (seq, end_ns: the batch's newest event time).
    ``carried``: a continuing run's positions at start (:func:`carried_positions`), each
    entering at its first mark, as the execution layer counts them (DESIGN.md, "Restart
    continuity"). ``account``: the run's money (default the schema's 1/10,000 unit): prices
    are each symbol's own integers, money counts in the account's unit as the execution
    layer's does; ``capital_ticks`` is in 1/10,000 of the currency whatever the account."""
    from zcbench.backtest._metrics import compute_metrics

    if type(capital_ticks) is not int or capital_ticks <= 0:
        raise UsageError(f"capital must be a positive number of ticks, got {capital_ticks!r}")
    money = account if account is not None else Account()
    unit = money.unit_of
    capital_ticks = _in_account(capital_ticks, money)
    batches = batch_ends.sort("seq")
    fills_at: dict[int, list[tuple[str, int, int]]] = {}
    for seq, symbol, side, qty, px in fills.select(
            "seq", "symbol", "side", "quantity", "price_ticks").iter_rows():
        signed = int(qty) if side == "buy" else -int(qty)
        fills_at.setdefault(int(seq), []).append((symbol, signed, int(px)))
    marks_at: dict[int, list[tuple[str, int]]] = {}
    for seq, symbol, px in marks.select("seq", "symbol", "price_ticks").iter_rows():
        marks_at.setdefault(int(seq), []).append((symbol, int(px)))
    cash, traded, open_after = 0, 0, 0
    positions: dict[str, int] = {s: q for s, q in (carried or {}).items() if q}
    unmarked = dict(positions)
    last: dict[str, int] = {}
    equity = []
    for seq in batches["seq"].to_list():
        last.update(marks_at.get(int(seq), []))
        for symbol in [s for s in unmarked if s in last]:
            cash -= unmarked.pop(symbol) * last[symbol] * unit(symbol)
        for symbol, signed, px in fills_at.get(int(seq), []):
            positions[symbol] = positions.get(symbol, 0) + signed
            cash -= signed * px * unit(symbol)
            traded += abs(signed) * px * unit(symbol)
        equity.append(capital_ticks + cash + sum(q * last.get(s, 0) * unit(s)
                                                 for s, q in positions.items()))
        open_after += any(q != 0 for q in positions.values())
    n = len(equity)
    curve = np.array(equity, dtype=np.int64)
    metrics = compute_metrics(
        equity=curve, end_ts=batches["end_ns"].to_numpy().astype(np.int64),
        initial=capital_ticks, traded_notional=traded, fees=0, closing_pnls=[],
        trade_pnls=np.array([], dtype=np.float64), exposure=open_after / n if n else 0.0,
        n_signals=0, n_fills=fills.height, n_refused=0, periods_per_year=periods_per_year,
        money_scale=money.money_scale)
    return _sheet(equity, metrics, capital_ticks=capital_ticks, n_fills=fills.height,
                  trials=trials, trial_sharpe_variance=trial_sharpe_variance, account=money)


def _sheet(equity: list[int], metrics: Mapping[str, Any], *, capital_ticks: int, n_fills: int,
           trials: int | None, trial_sharpe_variance: float, account: Account) -> TearSheet:
    """The sheet of an equity curve (after each batch, in the account's unit, from
    ``capital_ticks`` in that unit) and the backtest's ``metrics`` of it
    (:func:`zcbench.backtest._metrics.compute_metrics`)."""
    n = len(equity)
    curve = np.array(equity, dtype=np.int64)
    full = np.concatenate([[capital_ticks], curve]).astype(np.float64)
    returns = full[1:] / full[:-1] - 1.0 if n else np.array([])
    per_batch = 0.0
    dsr = None
    if returns.size > 2:
        sd = float(np.std(returns, ddof=1))
        per_batch = float(np.mean(returns)) / sd if sd > 0 else 0.0
        centred = returns - returns.mean()
        m2 = float(np.mean(centred**2))
        skew = float(np.mean(centred**3)) / m2**1.5 if m2 > 0 else 0.0
        kurt = float(np.mean(centred**4)) / m2**2 if m2 > 0 else 3.0
        dsr = deflated_sharpe(per_batch, int(returns.size), skew=skew, kurtosis=kurt,
                              trials=trials or 1, trial_sharpe_variance=trial_sharpe_variance)

    def number(name: str) -> float:
        value = metrics[name]
        return float(value) if value is not None else 0.0

    return TearSheet(
        capital_ticks=capital_ticks, pnl_ticks=(equity[-1] - capital_ticks) if n else 0,
        total_return=number("total_return"), volatility=number("volatility"),
        sharpe=number("sharpe"), sharpe_per_batch=per_batch, sortino=number("sortino"),
        max_drawdown=number("max_drawdown"),
        max_drawdown_duration_s=number("max_drawdown_duration_s"),
        exposure=number("exposure"), turnover=number("turnover"), n_batches=n,
        n_fills=n_fills, periods_per_year=number("periods_per_year"), trials=trials,
        deflated_sharpe=dsr, equity_ticks=tuple(int(e) for e in equity),
        currency=account.currency, money_scale=account.money_scale)


def _in_account(capital_ticks: int, account: Account) -> int:
    """``capital_ticks`` (1/10,000 of the currency) in the account's unit (a finer one)."""
    from zcbench.strategy import PRICE_SCALE

    if account.money_scale % PRICE_SCALE:
        raise UsageError(f"an account unit of 1/{account.money_scale:,} is not a whole number "
                         f"of 1/{PRICE_SCALE:,}")
    return capital_ticks * (account.money_scale // PRICE_SCALE)


def batch_ends(events: pl.DataFrame) -> pl.DataFrame:
    """``seq, end_ns``: each logged batch's newest event time."""
    if not events.height:
        return pl.DataFrame(schema={"seq": pl.Int64, "end_ns": pl.Int64})
    return events.group_by("seq").agg(pl.col("ts").max().cast(pl.Int64).alias("end_ns"))


def _with_kind(events: pl.DataFrame) -> pl.DataFrame:
    """``events`` with a ``kind`` column (a batch carries only the fields its strategy
    declared: a price makes a trade, a bid and ask a quote, a close a bar)."""
    if "kind" in events.columns:
        return events
    cols = set(events.columns)
    kind = pl.lit(None, pl.String)
    if "close" in cols:
        kind = pl.when(pl.col("close").is_not_null()).then(pl.lit("bar")).otherwise(kind)
    if {"bid", "ask"} <= cols:
        kind = pl.when(pl.col("bid").is_not_null() & pl.col("ask").is_not_null()).then(
            pl.lit("quote")).otherwise(kind)
    if "price" in cols:
        kind = pl.when(pl.col("price").is_not_null()).then(pl.lit("trade")).otherwise(kind)
    return events.with_columns(kind.alias("kind"))


_BT_FILLS: Final = {"seq": pl.Int64, "symbol": pl.String, "side": pl.String,
                    "quantity": pl.Int64, "price_ticks": pl.Int64}


def backtest_fills(events: pl.DataFrame, signals: pl.DataFrame, *,
                   capital_ticks: int = DEFAULT_CAPITAL_TICKS,
                   account: Account | None = None) -> pl.DataFrame:
    """The backtest's fills of ``signals`` (``seq, symbol, side, quantity, limit_price``, in
    log order) over ``events`` (the logged batches, with ``seq``, in log order), as the
    sheet's fills: the ``seq`` of the batch the fill falls in, symbol, side, quantity and
    ``price_ticks`` (module docstring: the backtest's fill and buying-power rules)."""
    from zcbench.backtest._accounting import FillModel, book

    money = account if account is not None else Account()
    if not events.height or not signals.height:
        return pl.DataFrame(schema=_BT_FILLS)
    events = _with_kind(events)
    # a batch carries the fields its strategy declared: a price it lacks is no price (null)
    events = events.with_columns([pl.lit(None, pl.Int64).alias(c) for c in
                                  ("price", "bid", "ask", "open", "close")
                                  if c not in events.columns]).with_row_index("_row")
    seqs = events.get_column("seq").cast(pl.Int64)
    ends_of = (events.group_by("seq", maintain_order=True)
               .agg((pl.col("_row").max() + 1).cast(pl.Int64).alias("end")))
    order = ends_of.get_column("seq").to_list()
    if order != sorted(order):
        raise UsageError("the logged batches are not in seq order")
    end_row = dict(zip(order, ends_of.get_column("end").to_list(), strict=True))
    wanted = signals.filter(pl.col("seq").is_in(order))
    frame = wanted.select(
        pl.col("seq").cast(pl.Int64),
        pl.int_range(pl.len()).over("seq").cast(pl.Int64).alias("idx"),
        "symbol", "side", pl.col("quantity").cast(pl.Int64),
        pl.col("limit_price").cast(pl.Int64),
        pl.col("seq").replace_strict(end_row, return_dtype=pl.Int64).alias("end_row"))
    symbols = events.get_column("symbol").unique().drop_nulls().to_list()
    ledger = book(events.drop("_row"), frame,
                  np.array([end_row[s] for s in order], dtype=np.int64), FillModel(),
                  _in_account(capital_ticks, money), money_scale=money.money_scale,
                  units={s: money.unit_of(s) for s in symbols})
    filled = ledger.fills.filter(pl.col("status") == "filled")
    if not filled.height:
        return pl.DataFrame(schema=_BT_FILLS)
    at = seqs.gather(filled.get_column("fill_row").cast(pl.UInt32))
    return pl.DataFrame({
        "seq": at, "symbol": filled["symbol"], "side": filled["side"],
        "quantity": filled["quantity"], "price_ticks": filled["fill_price"],
    }, schema=_BT_FILLS)


def backtest_sheet(events: pl.DataFrame, signals: pl.DataFrame, *,
                   capital_ticks: int = DEFAULT_CAPITAL_TICKS,
                   account: Account | None = None) -> TearSheet:
    """The backtest's sheet over the logged batches ``events`` of the signed ``signals``."""
    fills = backtest_fills(events, signals, capital_ticks=capital_ticks, account=account)
    return tear_sheet(fills, marks_by_batch(events), batch_ends(events),
                      capital_ticks=capital_ticks, account=account)


def run_money(run_dir: Path) -> Account:
    """The account ``run_dir``'s run recorded (:func:`zcbench.host.summary.run_account`); the
    schema's 1/10,000 unit for a run that recorded none."""
    from zcbench.host.summary import run_account

    return run_account(run_dir) or Account()


def run_tear_sheet(run_dir: Path, orders: pl.DataFrame, *,
                   capital_ticks: int = DEFAULT_CAPITAL_TICKS) -> TearSheet:
    """The sheet of a run from its verified ``orders`` rows (the pack's table) and its log,
    in the money the run recorded (:func:`run_money`)."""
    from zcbench.auditlog import events_frame

    events = events_frame(run_dir)
    ends = batch_ends(events)
    return tear_sheet(signed_fills(orders, ends), marks_by_batch(events), ends,
                      capital_ticks=capital_ticks, carried=carried_positions(run_dir),
                      account=run_money(run_dir))


def signed_fills(orders: pl.DataFrame, ends: pl.DataFrame) -> pl.DataFrame:
    """The fill rows of a run's ``orders`` (the pack's table) whose signal the signed log
    holds, as :func:`tear_sheet` takes them: each at its order's batch, and the fills of an
    order carried from an earlier run (``signal_run_id`` another run's, its seq that run's
    batch) at this run's first batch (``ends``' first seq), as a position carried in enters
    there."""
    fills = orders.filter((pl.col("event") == "fill") & pl.col("in_signed_log"))
    if not ends.height:
        return fills
    first = int(ends.get_column("seq").min())  # type: ignore[arg-type]
    return fills.with_columns(
        pl.when(pl.col("signal_run_id") != pl.col("run_id")).then(pl.lit(first, pl.Int64))
        .otherwise(pl.col("seq")).alias("seq"))


def carried_positions(run_dir: Path) -> dict[str, int]:
    """The positions a continuing run carried in (its signed start state; empty for a first
    run)."""
    from zcbench.auditlog.opening import start_state_of

    start = start_state_of(run_dir)
    return dict(start.position_map) if start is not None else {}


VENUE_MODEL: Final = "venue"
NEXT_EVENT_MODEL: Final = "next_event"


def run_backtest_sheet(run_dir: Path, *,
                       capital_ticks: int = DEFAULT_CAPITAL_TICKS) -> TearSheet:
    """The backtest's sheet over a run's logged batches and signed signals (the caller has
    verified the log), by the model :func:`run_backtest_model` says."""
    return run_backtest_model(run_dir, capital_ticks=capital_ticks)[0]


def run_backtest_model(run_dir: Path, *, capital_ticks: int = DEFAULT_CAPITAL_TICKS
                       ) -> tuple[TearSheet, str]:
    """The backtest's sheet over a run's logged batches and signed signals, and the fill model
    it used: :data:`VENUE_MODEL` for a run whose strategy took the feedback context
    (:func:`logged_backtest`, :func:`zcbench.backtest.run_prepared`'s venue model) when its
    logged batches hold a whole event each (a bar's ``volume``, its liquidity: a strategy
    logs only the fields it declared); otherwise :data:`NEXT_EVENT_MODEL`
    (:func:`backtest_sheet`)."""
    from zcbench.auditlog import events_frame, signals_frame
    from zcbench.errors import DataError

    if _took_context(run_dir):
        try:
            result = logged_backtest(run_dir, capital_ticks=capital_ticks)
        except (DataError, UsageError):
            pass  # the log does not hold what the venue model needs
        else:
            return logged_sheet(result, capital_ticks=capital_ticks), VENUE_MODEL
    events = events_frame(run_dir)
    signals = signals_frame(run_dir)
    if not signals.height:
        signals = pl.DataFrame(schema={"seq": pl.Int64, "symbol": pl.String,
                                       "side": pl.String, "quantity": pl.Int64,
                                       "limit_price": pl.Int64})
    return backtest_sheet(events, signals, capital_ticks=capital_ticks,
                          account=run_money(run_dir)), NEXT_EVENT_MODEL


def _took_context(run_dir: Path) -> bool:
    """Whether the run's strategy was handed feedback: its log holds a feedback IN record
    (a strategy that takes the context is told the outcome of every signal it sent, so one
    whose signals were acted on has one; one without signals has no fills in either model)."""
    from zcbench.auditlog import RecordFilter
    from zcbench.auditlog.frame import iter_records
    from zcbench.strategy import is_context

    return any(record.kind == "in" and is_context(record.body)
               for record, _ in iter_records(run_dir, RecordFilter(kinds=frozenset({"in"}))))


@dataclass(frozen=True)
class _NoParams:
    pass


class _LoggedSignals(Strategy):
    """What a run's strategy signed, batch by batch, handed back as its signals: a strategy
    that takes the context (so its signals go through the backtest's closed loop) and replays
    the OUT records of the logged batches in their order (the strategy's own code is not
    needed: a replay of it gives those signals, byte for byte)."""

    name = "logged-signals"
    params_type = _NoParams
    input_fields = ()

    def __init__(self, params: _NoParams, signals: list[list[Signal]] | None = None) -> None:
        super().__init__(params)
        self._signals = signals or []

    def on_batch(self, batch: Batch, context: Context | None = None) -> list[Signal]:
        return list(self._signals[batch.seq]) if batch.seq < len(self._signals) else []


def logged_backtest(run_dir: Path, *,
                    capital_ticks: int = DEFAULT_CAPITAL_TICKS) -> BacktestResult:
    """The backtest (:func:`zcbench.backtest.run_prepared`, its venue model) of the signals a
    run signed over the batches it logged, cut where the run cut them: the closed loop's
    execution layer under the limits the run started with, the paper venue, capital
    ``capital_ticks`` (1/10,000 of the currency) under the run's buying-power rule (its
    ``summary.json``'s leverage and short margin; a cash account when it recorded none), in
    the money the run recorded (:func:`run_money`). Its PnL is a live paper run's
    ``pnl_ticks`` over the same batches where the data allow: the same limits throughout
    (no control changed them), the same capital binding (the run's own, or capital that binds
    in neither), no position carried in, no batch dropped."""
    import json

    from zcbench.auditlog import RecordFilter, events_frame
    from zcbench.auditlog.frame import iter_records
    from zcbench.backtest import BacktestConfig, prepare, run_prepared
    from zcbench.host.controls import control_history
    from zcbench.marketdata import BatchSpec
    from zcbench.strategy import REQUIRED_FIELDS, decode_signals

    events = events_frame(run_dir)
    if not events.height:
        raise UsageError(f"{run_dir}: the log holds no market events to backtest over")
    by_seq: dict[int, list[Signal]] = {}
    for record, _ in iter_records(run_dir, RecordFilter(kinds=frozenset({"out"}))):
        if record.kind == "out" and record.seq is not None:
            by_seq[record.seq] = decode_signals(record.body)
    cut = (events.with_row_index("_row").group_by("seq", maintain_order=True)
           .agg((pl.col("_row").max() + 1).cast(pl.Int64).alias("end")))
    seqs = cut.get_column("seq").to_list()
    if seqs != sorted(seqs):
        raise UsageError(f"{run_dir}: the logged batches are not in seq order")
    logged = _with_kind(events.drop("log_index", "seq"))
    if "close" in logged.columns:
        # a bar's open, high and low the strategy did not declare are not in the log; neither
        # the venue nor the marks read them (a bar trades and marks at its close)
        logged = logged.with_columns(
            pl.col(c).fill_null(pl.col("close")) if c in logged.columns
            else pl.col("close").alias(c) for c in ("open", "high", "low"))
    data = prepare(logged, REQUIRED_FIELDS, BatchSpec(count=1),
                   ends=cut.get_column("end").to_numpy())
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    capital = summary.get("capital") if isinstance(summary, dict) else None
    rule = capital if isinstance(capital, dict) else {}
    config = BacktestConfig(
        count=1, initial_cash=capital_ticks / PRICE_SCALE,
        leverage=float(rule.get("leverage", 1.0)),
        short_margin=float(rule.get("short_margin", 1.0)))
    strategy = _LoggedSignals(_NoParams(), [by_seq.get(s, []) for s in seqs])
    return run_prepared(strategy, data, config, limits=control_history(run_dir).start_limits(),
                        account=run_money(run_dir))


def logged_sheet(result: BacktestResult, *,
                 capital_ticks: int = DEFAULT_CAPITAL_TICKS) -> TearSheet:
    """The sheet of a backtest's result: its own equity curve and metrics (its accountant,
    nothing counted again), with the per-batch and deflated Sharpe of that curve."""
    money = Account(currency=result.currency, money_scale=result.money_scale)
    return _sheet(result.equity.get_column("equity").to_list(), result.metrics_dict(),
                  capital_ticks=_in_account(capital_ticks, money),
                  n_fills=int(result.metrics_dict()["n_fills"] or 0), trials=None,
                  trial_sharpe_variance=0.0, account=money)
