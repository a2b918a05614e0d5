"""Building a run's market data source: the one function the CLI, the demo and the live panel use.

Two kinds of source, each meaning one thing everywhere:

- **synthetic**: seeded ticks from :class:`~zcbench.marketdata.SyntheticConfig` (its defaults,
  with ``rate`` events per second and ``duration_s`` seconds of event time when given);
- **a data file**: an event file or daily OHLCV file (parquet or CSV), cut to its first
  ``duration_s`` seconds of event time when given.

Either is replayed by event time at ``speed`` × real time (``None``: as fast as the enclave
takes it), or, with ``live=True``, offered as arrivals of about a millisecond each at ``speed``
(default 1×) for at most ``duration_s`` seconds of wall time, batched by the proxy's
maximum-delay rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import polars as pl

from zcbench.errors import DataError, UsageError
from zcbench.host.proxy import LiveSource, ReplaySource
from zcbench.marketdata import (
    Account,
    BatchSpec,
    SyntheticConfig,
    default_instruments,
    generate_ticks,
    load_market_data,
)

__all__ = ["SYNTHETIC", "MarketSource", "account_of", "market_source"]

SYNTHETIC: Final = "synthetic"


@dataclass(frozen=True)
class MarketSource:
    """A run's market data: ``name`` (``"synthetic"`` or the file), every event it offers (for
    charts), the source the proxy reads, and the account its money counts in (the
    instruments its prices were read with, as the backtest's: ``run_live(account=...)``)."""

    name: str
    events: pl.DataFrame
    source: ReplaySource | LiveSource
    account: Account = field(default_factory=Account)


def _positive(value: float | None, what: str) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{what} must be a positive number, got {value:g}")


def market_source(
    spec: BatchSpec,
    *,
    data: Path | str | None = None,
    speed: float | None = None,
    duration_s: float | None = None,
    rate: float | None = None,
    seed: int = 7,
    synthetic: SyntheticConfig | None = None,
    live: bool = False,
    after_ns: int | None = None,
) -> MarketSource:
    """The source for a run batched by ``spec`` (module docstring); ``data=None`` or
    ``"synthetic"`` is the synthetic source, ``synthetic`` replaces its configuration.
    ``after_ns``: a data file resumes after this event time (a run continuing another one
    takes up the data after the previous run's last logged batch)."""
    _positive(speed, "the speed")
    _positive(duration_s, "the duration")
    _positive(rate, "the synthetic event rate")
    if data is None or str(data) == SYNTHETIC:
        config = synthetic or SyntheticConfig()
        if rate is not None:
            config = replace(config, rate=rate)
        if duration_s is not None:
            config = replace(config, duration_s=duration_s)
        events = generate_ticks(config, seed=seed)
        name = SYNTHETIC
    else:
        if rate is not None:
            raise UsageError("an event rate applies to synthetic data only; give a speed instead")
        name = str(data)
        events = load_market_data(Path(data).expanduser())
        if after_ns is not None:
            events = events.filter(events["ts"] > after_ns)
            if events.height == 0:
                raise UsageError(f"the source {name} has no events after the previous run's "
                                 "last batch: nothing is left to continue with")
        if duration_s is not None and events.height:
            start = int(events["ts"][0])
            events = events.filter(events["ts"] < start + int(duration_s * 1e9))
    if events.height == 0:
        raise UsageError(f"the source {name} has no events")
    account = account_of(events)
    if not live:
        return MarketSource(name, events, ReplaySource(events, spec, rate=speed), account)
    per_ms = max(1, events.height * 1_000_000 // max(1, _span_ns(events)))
    chunks = (events.slice(i, per_ms) for i in range(0, events.height, per_ms))
    return MarketSource(
        name, events, LiveSource(chunks, spec, rate=speed or 1.0, duration_s=duration_s),
        account,
    )


def account_of(events: pl.DataFrame) -> Account:
    """The account a run over ``events`` counts money in: the committed instruments' account
    for its symbols (:meth:`~zcbench.marketdata.Instruments.account`, the backtest's rule; the
    loaders read the prices with the same instruments)."""
    symbols = events.get_column("symbol").unique().drop_nulls().to_list()
    try:
        return default_instruments().account(symbols)
    except DataError as exc:
        raise UsageError(f"the run's data: {exc}") from None


def _span_ns(events: pl.DataFrame) -> int:
    ts = events.get_column("ts")
    return int(ts[-1]) - int(ts[0]) + 1
