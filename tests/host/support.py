"""Shared pieces of the host tests: a one-signal strategy booted in the runtime over a fresh
log store, and a strategy whose GTC limit order rests across a restart, with its bars."""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.storage import LogStore
from zcbench.enclave import EnclaveRuntime
from zcbench.host import HostLog
from zcbench.marketdata import load_ohlcv, sample_daily_path
from zcbench.nitro import DevCA, NsmEmulator
from zcbench.strategy import (
    Batch,
    Signal,
    Strategy,
    decode_context,
    encode_batch,
    is_context,
)

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
PCRS = {0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}


@dataclasses.dataclass(frozen=True)
class P:
    pass


class Buy(Strategy):
    name = "buy"
    params_type = P
    input_fields = ("price",)

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        return [Signal("AAA", "buy", batch.seq + 1)]


def batch_bytes(seq: int) -> bytes:
    events = pl.DataFrame({"ts": [seq], "symbol": ["AAA"], "price": [100]})
    return encode_batch(Batch(seq, events))


def booted_log(tmp_path: Path) -> tuple[EnclaveRuntime, HostLog, LogStore]:
    nsm = NsmEmulator(pcrs=PCRS, ca=DevCA.load_or_create(now=NOW), clock=lambda: NOW)
    rt = EnclaveRuntime(Buy(P()), nsm, pcr0=PCRS[0])
    booted = rt.boot("run-1")
    store = LogStore.create(tmp_path / "log")
    log = HostLog(store, booted["public_key"], booted["origin"])
    log.open(booted["record"], booted["checkpoint"], booted["document"])
    return rt, log, store


# On its first bar a GTC limit buy of 300 a little under the close, which rests until the
# market comes down to it and fills in parts of 120 (the bars' volume); once the context says
# the position is at least 200, a market sell of it all. Its state (sent, sold) is kept
# across runs by the snapshot contract.
REST_THEN_SELL = textwrap.dedent('''
    from dataclasses import dataclass

    from zcbench.strategy import Signal, Strategy, decode_state, encode_state


    @dataclass(frozen=True)
    class RestParams:
        below_ticks: int = 20_000


    class RestThenSell(Strategy):
        name = "rest-then-sell"
        params_type = RestParams
        input_fields = ("close", "volume")

        def __init__(self, params):
            super().__init__(params)
            self.sent = False
            self.sold = False

        def on_batch(self, batch, context=None):
            closes = batch.events.get_column("close").to_list()
            symbol = batch.events.get_column("symbol")[0]
            if not self.sent:
                self.sent = True
                return [Signal(symbol, "buy", 300, limit_price=closes[-1] - self.params.below_ticks,
                               hints=(("tif", "GTC"),))]
            held = dict(context.positions).get(symbol, 0) if context is not None else 0
            if held >= 200 and not self.sold:
                self.sold = True
                return [Signal(symbol, "sell", held)]
            return []

        def snapshot(self):
            return encode_state({"sent": self.sent, "sold": self.sold})

        def restore(self, state):
            doc = decode_state(state)
            self.sent, self.sold = bool(doc["sent"]), bool(doc["sold"])
''')


def resting_bars() -> pl.DataFrame:
    bars = load_ohlcv(sample_daily_path()).slice(3_150, 60)
    return bars.with_columns(pl.lit(120, pl.Int64).alias("volume"))


def first_fill_batch(run: Path) -> int:
    """The seq of the first batch whose feedback reports a fill (its previous batch filled)."""
    for record, _ in iter_records(run):
        if record.kind == "in" and is_context(record.body):
            context = decode_context(record.body, seq=record.batch_seq)
            if any(o.status == "filled" for o in context.outcomes):
                return record.batch_seq
    raise AssertionError("no fill")
