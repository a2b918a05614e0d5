"""Shared pieces of the host log tests: a one-signal strategy booted in the runtime over a
fresh log store."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from zcbench.auditlog.storage import LogStore
from zcbench.enclave import EnclaveRuntime
from zcbench.host import HostLog
from zcbench.nitro import DevCA, NsmEmulator
from zcbench.strategy import Batch, Signal, Strategy, encode_batch

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
