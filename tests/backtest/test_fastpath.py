"""The fast path (stream decoded once, batches as views) and the per-batch wire path agree.

On random streams and on every example: the same batches frame for frame (values, dtypes,
column order), the same wire bytes for every batch (what the IN records hold), the same
signals, digest, fills and equity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcbench.backtest import BacktestConfig, prepare, run_backtest, run_prepared
from zcbench.errors import DataError
from zcbench.examples import EXAMPLES, MACrossover, OrderFlowImbalance
from zcbench.host.execution import RiskLimits
from zcbench.marketdata import (
    BatchSpec,
    SyntheticConfig,
    generate_ticks,
    load_ohlcv,
    sample_daily_path,
)
from zcbench.strategy import (
    EVENT_SCHEMA,
    OUTCOME_STATUSES,
    Batch,
    Context,
    Outcome,
    Signal,
    Strategy,
    decode_batch,
    decode_context,
    encode_batch,
    encode_context,
    make_strategy,
)
from zcbench.strategy._bulk import wire_view

_FIELDS = [f for f in EVENT_SCHEMA if f not in ("ts", "symbol")]
TICKS = generate_ticks(SyntheticConfig(rate=5_000, duration_s=4.0), seed=11)


@st.composite
def streams(draw: st.DrawFn) -> pl.DataFrame:
    """Random valid event streams: trades, quotes and bars, several symbols, shared times."""
    n = draw(st.integers(1, 120))
    gaps = draw(st.lists(st.integers(0, 3_000), min_size=n, max_size=n))
    ts = np.cumsum(gaps) + draw(st.integers(-(10**12), 10**12))
    symbols = draw(
        st.lists(st.sampled_from(["A", "BB", "a-very-long-symbol-name"]), min_size=n, max_size=n)
    )
    kinds = draw(st.lists(st.sampled_from(["trade", "quote", "bar"]), min_size=n, max_size=n))
    px = st.integers(1, 2**40)
    rows = []
    seen: set[tuple[int, str, str]] = set()
    for t, sym, kind in zip(ts.tolist(), symbols, kinds, strict=True):
        if (t, sym, kind) in seen:
            continue
        seen.add((t, sym, kind))
        row: dict[str, object] = {"ts": t, "symbol": sym, "kind": kind}
        if kind == "trade":
            row |= {"price": draw(px), "size": draw(st.integers(0, 10**6))}
        elif kind == "quote":
            row |= {
                "bid": draw(px),
                "ask": draw(px),
                "bid_size": draw(st.integers(0, 99)),
                "ask_size": draw(st.integers(0, 99)),
            }
        else:
            o, h, lo, c = (draw(px) for _ in range(4))
            row |= {"open": o, "high": h, "low": lo, "close": c, "volume": draw(st.integers(0, 9))}
        rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            "ts": pl.Int64,
            "symbol": pl.String,
            "kind": pl.String,
            **{f: EVENT_SCHEMA[f] for f in _FIELDS},
        },
    )


specs = st.one_of(
    st.integers(1, 40).map(lambda c: BatchSpec(count=c)),
    st.integers(1, 20_000).map(lambda w: BatchSpec(width_ns=w)),
)
field_sets = st.lists(st.sampled_from(_FIELDS), unique=True, max_size=6).map(tuple)


def _same_frame(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns
    assert a.schema == b.schema
    assert a.equals(b, null_equal=True)
    assert a.rows() == b.rows()


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), spec=specs, fields=field_sets)
def test_fast_batches_equal_wire_batches(
    events: pl.DataFrame, spec: BatchSpec, fields: tuple[str, ...]
) -> None:
    data = prepare(events, fields, spec)
    fast = list(data.batches("fast"))
    wire = list(data.batches("wire"))
    raw = list(data.wire_batches())
    assert len(fast) == len(wire) == len(raw) == data.n_batches
    for f, w, r in zip(fast, wire, raw, strict=True):
        assert f.seq == w.seq == r.seq
        _same_frame(f.events, w.events)
        assert f.events.n_chunks() == 1
        # the bytes the proxy sends and the IN record holds are the same from either frame
        assert encode_batch(f) == encode_batch(r) == encode_batch(w)


def test_chunked_input_gives_single_chunk_batches() -> None:
    events = pl.concat([TICKS.slice(0, 333), TICKS.slice(333, 700)], rechunk=False)
    assert events.n_chunks() == 2
    data = prepare(events, OrderFlowImbalance.fields(), BatchSpec(count=100))
    for f, w in zip(data.batches("fast"), data.batches("wire"), strict=True):
        assert f.events.n_chunks() == 1
        _same_frame(f.events, w.events)


def _refusal(events: pl.DataFrame, spec: BatchSpec, path: str) -> str:
    config = BacktestConfig(width_ns=spec.width_ns, count=spec.count, path=path)
    with pytest.raises(DataError) as info:
        run_backtest(Fingerprint(_NoParams()), events, config)
    return str(info.value)


def test_what_the_decoder_refuses_the_fast_path_refuses_alike() -> None:
    name = "S" * 257  # one character over the wire's bound on strings
    events = TICKS.slice(0, 50).with_columns(
        pl.when(pl.int_range(pl.len()) == 37).then(pl.lit(name)).otherwise("symbol").alias("symbol")
    )
    fast = _refusal(events, BatchSpec(count=10), "fast")
    assert fast == _refusal(events, BatchSpec(count=10), "wire")
    assert fast.startswith("batch 3 column 'symbol'")


def test_batch_size_bound_matches_the_decoder() -> None:
    data = prepare(TICKS.slice(0, 100), ("price",), BatchSpec(count=30))
    with pytest.raises(DataError) as fast:
        wire_view(data.selected, data.ends, max_events=29)
    with pytest.raises(DataError) as wire:
        decode_batch(encode_batch(next(data.wire_batches())), seq=0, max_events=29)
    assert str(fast.value) == str(wire.value)


@dataclass(frozen=True)
class _NoParams:
    pass


class Fingerprint(Strategy):
    """Signals that depend on every byte of what it is shown: values, dtypes, column order."""

    name = "fingerprint"
    params_type = _NoParams
    input_fields = tuple(_FIELDS)

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        events = batch.events
        seen = repr((events.columns, events.dtypes, events.rows())).encode()
        byte = hashlib.sha256(seen).digest()[0]
        if byte >= 96:
            return []
        symbol = events.get_column("symbol")[0]
        return [Signal(symbol, "buy" if byte % 2 else "sell", 1 + byte, limit_price=None)]


def _both(
    strategy_cls: type[Strategy],
    events: pl.DataFrame,
    config: BacktestConfig,
    params: dict[str, object] | None = None,
) -> None:
    fast = run_backtest(make_strategy(strategy_cls, params), events, config)
    wire_config = BacktestConfig(**{**_config_dict(config), "path": "wire"})
    wire = run_backtest(make_strategy(strategy_cls, params), events, wire_config)
    assert fast.signals_digest == wire.signals_digest
    for name in ("signals", "fills", "positions", "equity", "metrics"):
        _same_frame(getattr(fast, name), getattr(wire, name))
    assert (fast.journal is None) == (wire.journal is None)
    if fast.journal is not None and wire.journal is not None:
        _same_frame(fast.journal, wire.journal)


def _config_dict(config: BacktestConfig) -> dict[str, object]:
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), spec=specs)
def test_random_streams_same_signals_digest_and_fills(
    events: pl.DataFrame, spec: BatchSpec
) -> None:
    config = BacktestConfig(
        width_ns=spec.width_ns,
        count=spec.count,
        fee_bps=1.5,
        slippage_ticks=1,
        initial_cash=10.0**9,
    )
    _both(Fingerprint, events, config)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        pytest.param("ma_crossover", BacktestConfig(count=1, fee_bps=1.0, initial_cash=100_000.0),
                     marks=pytest.mark.slow),  # one bar a batch: the many-batch case
        ("ma_crossover", BacktestConfig(count=7, fee_bps=2.5)),
        ("order_flow_imbalance", BacktestConfig(width_ns=100_000_000, fee_bps=0.2)),
        ("order_flow_imbalance", BacktestConfig(count=200)),
    ],
)
def test_every_example_agrees_on_both_paths(name: str, config: BacktestConfig) -> None:
    assert set(EXAMPLES) == {"ma_crossover", "order_flow_imbalance"}  # a new example joins here
    cls = EXAMPLES[name]
    if cls is MACrossover:
        _both(cls, load_ohlcv(sample_daily_path()), config, {"quantity": 10})
    else:
        assert cls is OrderFlowImbalance
        _both(cls, TICKS, config)


@dataclass(frozen=True)
class _Quantity:
    quantity: int = 7


class Told(Strategy):
    """Takes the feedback; its signals depend on every field of every context it is told (and
    on the batch), so a context handed over differently on the two paths changes the digest."""

    name = "told"
    params_type = _Quantity
    input_fields = ("close", "price")

    def __init__(self, params: _Quantity) -> None:
        super().__init__(params)
        self.seen: list[Context | None] = []

    def on_batch(self, batch: Batch, context: Context | None = None) -> Sequence[Signal]:
        self.seen.append(context)
        told = repr((context, type(context), batch.seq)).encode()
        byte = hashlib.sha256(told).digest()[0]
        symbol = batch.events.get_column("symbol")[-1]
        if byte >= 90:
            return []
        quantity = self.params.quantity * (1 + byte % 5)
        return [Signal(symbol, "buy" if byte % 2 else "sell", quantity)]


@pytest.mark.parametrize(
    "limits",
    [RiskLimits(), RiskLimits(max_position=20, max_orders_per_s=3)],
    ids=["defaults", "refusals"],
)
def test_contexts_are_the_same_on_both_paths(limits: RiskLimits) -> None:
    """The fast path hands the strategy each context as the builder made it, the wire path as
    the enclave decodes it from its encoding: the same values, so the same signals."""
    bars = load_ohlcv(sample_daily_path()).slice(0, 600)
    seen = {}
    results = {}
    for path in ("fast", "wire"):
        config = BacktestConfig(count=3, path=path)
        strategy = Told(_Quantity())
        results[path] = run_prepared(
            strategy, prepare(bars, Told.fields(), config.spec), config, limits=limits
        )
        seen[path] = strategy.seen
    assert seen["fast"] == seen["wire"]
    told = [c for c in seen["fast"] if c is not None]
    assert len(told) > 20
    assert {o.status for c in told for o in c.outcomes} >= (
        {"sent", "filled", "refused"} if limits.max_position == 20 else {"sent", "filled"}
    )
    assert results["fast"].signals_digest == results["wire"].signals_digest
    assert results["fast"].journal is not None
    assert results["wire"].journal is not None
    _same_frame(results["fast"].journal, results["wire"].journal)


_texts = st.text(min_size=1, max_size=20)
_outcomes = st.builds(
    lambda batch, signal, symbol, status, quantity, price, reason, limit: Outcome(
        batch=batch,
        signal=signal,
        symbol=symbol,
        status=status,
        quantity=quantity,
        limit=limit if status == "refused" else "",
        price=price if status in ("filled", "partially_filled") else None,
        reason=reason,
    ),
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**63 - 1),
    _texts,
    st.sampled_from(sorted(OUTCOME_STATUSES)),
    st.integers(0, 2**63 - 1),
    st.integers(1, 2**63 - 1),
    st.text(max_size=30),
    _texts,
)
_pairs = st.dictionaries(_texts, st.integers(-(2**63), 2**63 - 1), max_size=6).map(
    lambda d: tuple(d.items())
)


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(0, 2**63 - 1),
    outcomes=st.lists(_outcomes, max_size=8).map(tuple),
    positions=_pairs,
    limits=_pairs,
)
def test_a_context_decodes_from_its_encoding_equal(
    seq: int,
    outcomes: tuple[Outcome, ...],
    positions: tuple[tuple[str, int], ...],
    limits: tuple[tuple[str, int], ...],
) -> None:
    """Why the fast path may skip the context's encoding: every Context the constructor
    accepts comes back equal, field for field, from its one encoding."""
    context = Context(seq, outcomes, positions, limits)
    back = decode_context(encode_context(context), seq=seq)
    assert back == context
    assert repr(back) == repr(context)
