"""The Strategy contract, Signal and Batch (DESIGN.md, "The strategy contract").

A strategy is a class with a name, a frozen parameters dataclass, the event fields it reads and
``on_batch(batch) -> signals``. It must be deterministic: the same parameters and batches give
byte-identical signals. The packager's lint enforces the "no clock, file, network or environment"
half of that; this module enforces the shapes.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import inspect
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import polars as pl

from zcbench.errors import DataError, UsageError, ZcbenchError
from zcbench.strategy._feedback import Context
from zcbench.strategy._schema import EVENT_SCHEMA, REQUIRED_FIELDS

__all__ = [
    "Batch",
    "HintValue",
    "Side",
    "Signal",
    "Strategy",
    "StrategyError",
    "apply_strategy",
    "find_strategy",
    "make_strategy",
]

Side = Literal["buy", "sell"]
HintValue = int | str


class StrategyError(ZcbenchError):
    """A strategy raised, or returned something that is not a list of Signals.

    Carries the batch sequence number it failed on; the message never includes strategy
    internals beyond the exception type, so it is safe to send out of an enclave.
    """

    def __init__(self, message: str, *, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


@dataclass(frozen=True, slots=True)
class Signal:
    """What the strategy wants done, never how: the execution layer decides how.

    ``quantity`` is a positive number of units; ``limit_price`` is in ticks (None: the execution
    layer's collar applies); ``hints`` are risk hints the execution layer may use, as sorted
    ``(name, value)`` pairs so the signal stays hashable and encodes deterministically.
    """

    symbol: str
    side: Side
    quantity: int
    limit_price: int | None = None
    hints: tuple[tuple[str, HintValue], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise DataError(f"Signal.symbol must be a non-empty string, got {self.symbol!r}")
        if self.side not in ("buy", "sell"):
            raise DataError(f"Signal.side must be 'buy' or 'sell', got {self.side!r}")
        if type(self.quantity) is not int or self.quantity <= 0:
            raise DataError(f"Signal.quantity must be a positive int, got {self.quantity!r}")
        if self.limit_price is not None and (
            type(self.limit_price) is not int or self.limit_price <= 0
        ):
            raise DataError(
                f"Signal.limit_price must be None or a positive int of ticks, "
                f"got {self.limit_price!r}"
            )
        try:
            pairs = [(name, value) for name, value in self.hints]
        except (TypeError, ValueError):
            raise DataError(
                f"Signal.hints must be (name, value) pairs, got {self.hints!r}"
            ) from None
        for name, value in pairs:
            if not isinstance(name, str) or type(value) not in (int, str):
                raise DataError(f"Signal hint {name!r}={value!r}: names are str, values int|str")
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise DataError(f"Signal hints name {sorted(names)}: each name at most once")
        # sorted by name alone: values of one name may not compare (int against str)
        object.__setattr__(self, "hints", tuple(sorted(pairs, key=lambda h: h[0])))


@dataclass(frozen=True, slots=True)
class Batch:
    """One event-time batch as the strategy sees it.

    ``seq`` is the batch's sequence number in its stream (0-based, no gaps); ``events`` holds only
    the fields the strategy declared plus ``ts`` and ``symbol``, sorted by event time as the
    source delivered them.
    """

    seq: int
    events: pl.DataFrame

    def __len__(self) -> int:
        return self.events.height


class Strategy(abc.ABC):
    """Base class of every strategy.

    Subclasses set ``name``, ``params_type`` (a frozen dataclass) and ``input_fields`` (names in
    ``EVENT_SCHEMA``) and implement ``on_batch``. State kept between batches lives on the instance.

    A strategy that wants feedback declares a second parameter, ``on_batch(self, batch,
    context=None)``: it then gets the :class:`~zcbench.strategy.Context` logged before the
    batch (outcomes of its signals since the previous batch, positions, limits), or None when
    no feedback was logged. ``on_batch(batch)`` alone keeps working and sees market data only.
    """

    name: ClassVar[str]
    params_type: ClassVar[type[Any]]
    input_fields: ClassVar[tuple[str, ...]]

    def __init__(self, params: Any) -> None:
        if not isinstance(params, self.params_type):
            raise UsageError(
                f"{type(self).__name__} takes {self.params_type.__name__}, "
                f"got {type(params).__name__}"
            )
        self.params = params

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "__abstractmethods__", None):
            return
        _check_declaration(cls)

    @abc.abstractmethod
    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        """The signals for this batch (often none)."""

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """Every field a batch for this strategy carries, in the wire's canonical order."""
        return REQUIRED_FIELDS + tuple(sorted(set(cls.input_fields) - set(REQUIRED_FIELDS)))


def _check_declaration(cls: type[Strategy]) -> None:
    where = f"strategy class {cls.__name__}"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise UsageError(f"{where}: set `name` to a non-empty string")
    params_type = getattr(cls, "params_type", None)
    if not (isinstance(params_type, type) and dataclasses.is_dataclass(params_type)):
        raise UsageError(f"{where}: set `params_type` to a frozen dataclass")
    if not params_type.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise UsageError(f"{where}: params_type {params_type.__name__} must be frozen=True")
    fields = getattr(cls, "input_fields", None)
    if not isinstance(fields, tuple) or not all(isinstance(f, str) for f in fields):
        raise UsageError(f"{where}: set `input_fields` to a tuple of field names")
    unknown = sorted(set(fields) - set(EVENT_SCHEMA))
    if unknown:
        raise UsageError(f"{where}: unknown input fields {unknown}; known: {sorted(EVENT_SCHEMA)}")


def make_strategy(cls: type[Strategy], params: Mapping[str, Any] | None = None) -> Strategy:
    """An instance of ``cls`` with its parameters' defaults overridden by ``params``."""
    names = {f.name for f in dataclasses.fields(cls.params_type)}
    given = dict(params or {})
    unknown = sorted(set(given) - names)
    if unknown:
        raise UsageError(f"{cls.__name__}: unknown parameters {unknown}; known: {sorted(names)}")
    try:
        return cls(cls.params_type(**given))
    except TypeError as exc:
        raise UsageError(f"{cls.__name__}: bad parameters: {exc}") from None


def find_strategy(namespace: types.ModuleType | Mapping[str, Any]) -> type[Strategy]:
    """The one concrete Strategy subclass defined in a module or namespace."""
    items = vars(namespace) if isinstance(namespace, types.ModuleType) else namespace
    found = [
        v
        for v in items.values()
        if isinstance(v, type)
        and issubclass(v, Strategy)
        and v is not Strategy
        and not getattr(v, "__abstractmethods__", None)
    ]
    if len(found) != 1:
        names = sorted(v.__name__ for v in found)
        raise UsageError(
            f"expected exactly one concrete Strategy subclass, found {names or 'none'}"
        )
    return found[0]


@functools.cache
def _takes_context(cls: type[Strategy]) -> bool:
    """Whether ``cls.on_batch`` accepts a second positional argument (the feedback context)."""
    try:
        params = list(inspect.signature(cls.on_batch).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return len([p for p in params if p.kind in positional]) >= 2 or any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in params
    )


def takes_context(strategy: Strategy | type[Strategy]) -> bool:
    """Whether ``strategy`` (an instance or its class) takes the feedback context: its
    ``on_batch`` has a second positional parameter."""
    return _takes_context(strategy if isinstance(strategy, type) else type(strategy))


def apply_strategy(
    strategy: Strategy, batch: Batch, context: Context | None = None
) -> list[Signal]:
    """Run one batch through ``strategy``: the single call path for backtest, enclave and replay.

    ``context`` (the feedback logged before the batch) reaches strategies whose ``on_batch``
    takes a second argument (see :class:`Strategy`); others get the batch alone. Any exception
    from the strategy becomes a :class:`StrategyError` naming the batch; so does a return value
    that is not a sequence of :class:`Signal`.
    """
    try:
        if _takes_context(type(strategy)):
            out = strategy.on_batch(batch, context)  # type: ignore[call-arg]
        else:
            out = strategy.on_batch(batch)
    except Exception as exc:
        raise StrategyError(
            f"strategy {strategy.name!r} raised {type(exc).__name__} on batch {batch.seq}",
            seq=batch.seq,
        ) from exc
    if not isinstance(out, (list, tuple)) or (out and not all(isinstance(s, Signal) for s in out)):
        raise StrategyError(
            f"strategy {strategy.name!r} returned {type(out).__name__} on batch {batch.seq}; "
            "on_batch must return a list of Signal",
            seq=batch.seq,
        )
    return list(out)
