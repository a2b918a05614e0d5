"""The Strategy contract: declarations checked at class creation, Signal shapes, the one call
path ``apply_strategy``, and ``make_strategy`` / ``find_strategy``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import pytest

from zcbench.errors import DataError, UsageError
from zcbench.strategy import (
    Batch,
    Signal,
    Strategy,
    StrategyError,
    apply_strategy,
    find_strategy,
    make_strategy,
    price_to_ticks,
)


@dataclass(frozen=True)
class P:
    n: int = 1


class Good(Strategy):
    name = "good"
    params_type = P
    input_fields = ("size", "price")

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        return [Signal("A", "buy", self.params.n)] if len(batch) else []


def _batch(seq: int = 0, n: int = 1) -> Batch:
    return Batch(seq, pl.DataFrame({"ts": list(range(n)), "symbol": ["A"] * n}))


def test_fields_are_canonical() -> None:
    assert Good.fields() == ("ts", "symbol", "price", "size")


@pytest.mark.parametrize(
    ("attrs", "needle"),
    [
        ({"name": ""}, "name"),
        ({"params_type": dict}, "frozen dataclass"),
        ({"params_type": dataclass(type("Loose", (), {"__annotations__": {}}))}, "frozen=True"),
        ({"input_fields": ["price"]}, "tuple"),
        ({"input_fields": ("colour",)}, "unknown input fields"),
    ],
)
def test_bad_declarations_are_refused_at_class_creation(attrs: dict[str, Any], needle: str) -> None:
    body = {"name": "x", "params_type": P, "input_fields": (), "on_batch": Good.on_batch, **attrs}
    with pytest.raises(UsageError, match=needle):
        type("Bad", (Strategy,), body)


def test_signal_validation() -> None:
    assert Signal("A", "sell", 2, 5).limit_price == 5
    for kwargs in (
        {"symbol": ""},
        {"side": "hold"},
        {"quantity": 0},
        {"quantity": 1.0},
        {"quantity": True},
        {"limit_price": 0},
        {"limit_price": 1.5},
    ):
        args: dict[str, Any] = {"symbol": "A", "side": "buy", "quantity": 1, **kwargs}
        with pytest.raises(DataError):
            Signal(**args)


def test_apply_strategy_names_the_batch() -> None:
    class Raises(Good):
        name = "raises"

        def on_batch(self, batch: Batch) -> Sequence[Signal]:
            raise KeyError("secret internals")

    class Returns(Good):
        name = "returns"

        def on_batch(self, batch: Batch) -> Sequence[Signal]:
            return "buy"  # type: ignore[return-value]

    assert apply_strategy(Good(P(3)), _batch()) == [Signal("A", "buy", 3)]
    with pytest.raises(StrategyError, match="raised KeyError on batch 7") as info:
        apply_strategy(Raises(P()), _batch(7))
    assert info.value.seq == 7
    assert "secret" not in str(info.value)
    with pytest.raises(StrategyError, match="returned str on batch 2"):
        apply_strategy(Returns(P()), _batch(2))


def test_make_and_find_strategy() -> None:
    assert make_strategy(Good, {"n": 4}).params == P(4)
    with pytest.raises(UsageError, match="unknown parameters"):
        make_strategy(Good, {"m": 1})
    with pytest.raises(UsageError, match="takes P"):
        Good({"n": 1})
    assert find_strategy({"Good": Good, "Strategy": Strategy, "x": 1}) is Good
    with pytest.raises(UsageError, match="exactly one"):
        find_strategy({"x": 1})


def test_price_to_ticks_rounds_half_away_from_zero() -> None:
    assert price_to_ticks(101.25) == 1_012_500
    assert price_to_ticks(0.00005) == 1
    assert price_to_ticks(-0.00005) == -1
    assert price_to_ticks(0.00004) == 0
