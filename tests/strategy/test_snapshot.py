"""The optional snapshot contract, its record's one encoding, and the crossover's state."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest

from zcbench.errors import DataError
from zcbench.examples import MACrossover
from zcbench.marketdata import load_ohlcv, sample_daily_path
from zcbench.strategy import (
    Batch,
    SnapshotNote,
    SnapshotSource,
    StrategyError,
    apply_strategy,
    decode_snapshot_note,
    encode_snapshot_note,
    encode_state,
    restore_snapshot,
    take_snapshot,
    takes_snapshot,
)
from zcbench.strategy._contract import make_strategy

PARAMS = {"fast": 3, "slow": 8, "quantity": 100, "allow_short": True}


def _batches(n: int) -> list[Batch]:
    bars = load_ohlcv(sample_daily_path()).slice(2_000, n)
    return [Batch(i, bars.slice(i, 1).select("ts", "symbol", "close")) for i in range(n)]


def _signals(strategy: MACrossover, batches: list[Batch]) -> list[object]:
    return [apply_strategy(strategy, b) for b in batches]


def test_a_restored_crossover_signals_as_the_uninterrupted_one() -> None:
    batches = _batches(60)
    whole = make_strategy(MACrossover, PARAMS)
    expected = _signals(whole, batches)  # type: ignore[arg-type]
    first = make_strategy(MACrossover, PARAMS)
    head = _signals(first, batches[:25])  # type: ignore[arg-type]
    state = take_snapshot(first, seq=25)
    assert state == take_snapshot(first, seq=25)  # the same state, the same bytes
    second = make_strategy(MACrossover, PARAMS)
    restore_snapshot(second, state, seq=25)
    assert take_snapshot(second, seq=25) == state
    assert head + _signals(second, batches[25:]) == expected  # type: ignore[arg-type]
    assert any(expected[25:])  # the tail trades: the windows matter
    # without the state the tail differs (the windows start empty)
    fresh = make_strategy(MACrossover, PARAMS)
    assert head + _signals(fresh, batches[25:]) != expected  # type: ignore[arg-type]


def test_strategies_without_the_contract_are_unaffected_and_bad_snapshots_are_named() -> None:
    from zcbench.examples import OrderFlowImbalance as OrderFlow  # keeps no snapshot

    assert takes_snapshot(MACrossover)
    assert not takes_snapshot(OrderFlow)
    crossover = make_strategy(MACrossover, PARAMS)
    with pytest.raises(StrategyError, match="restoring its snapshot"):
        restore_snapshot(crossover, b"\xa0", seq=0)  # an empty map: not a crossover state
    with pytest.raises(StrategyError, match="restoring"):
        restore_snapshot(crossover, encode_state({"closes": {"A": [1] * 9}, "target": {},
                                                  "held": {}}), seq=0)  # window > slow

    class Big(MACrossover):
        def snapshot(self) -> bytes:
            return b"x" * (1024 * 1024 + 1)

    with pytest.raises(StrategyError, match="at most"):
        take_snapshot(make_strategy(Big, PARAMS), seq=3)
    with pytest.raises(DataError):
        encode_state({"x": 1.5j})


def test_a_snapshot_record_has_one_encoding() -> None:
    digest = hashlib.sha256(b"state").digest()
    taken = SnapshotNote("taken", 12, digest, 5)
    restored = SnapshotNote("restored", 0, digest, 5,
                            SnapshotSource("x.example/zcbench/ab/run-1", 30, b"\x01" * 32, 27))
    for note in (taken, restored):
        body = encode_snapshot_note(note)
        assert decode_snapshot_note(body) == note
        assert note.matches(b"state")
        assert not note.matches(b"other")
        for bad in (body + b"\x00", body[:-1], body.replace(b"action", b"actioN")):
            with pytest.raises(DataError):
                decode_snapshot_note(bad)
    with pytest.raises(DataError):
        SnapshotNote("taken", 1, digest, 5, restored.source)
    with pytest.raises(DataError):
        SnapshotNote("restored", 1, digest, 5)
    with pytest.raises(DataError):
        SnapshotSource("o", 3, b"\x01" * 32, 3)  # the record lies outside its checkpoint
    assert pl.__name__  # polars is what the batches are made of
