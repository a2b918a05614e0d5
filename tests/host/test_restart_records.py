"""Restart continuity's two records: the link a continuing run's boot document attests (its
``user_data``) and the venue's state at start (the first IN record), each with one canonical
encoding and a strict reader; the enclave attests the link, logs the start state before
batch 0 and hands its positions to the strategy."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import cbor2
import polars as pl
import pytest

from zcbench.auditlog.link import RunLink, decode_link, encode_link
from zcbench.auditlog.merkle import leaf_hash
from zcbench.auditlog.records import encode_record
from zcbench.auditlog.verify import nitro_boot_verifier
from zcbench.channel import Message
from zcbench.enclave import EnclaveRuntime
from zcbench.enclave.runtime import boot_reply
from zcbench.errors import DataError, VerificationError
from zcbench.nitro import DevCA, NsmEmulator
from zcbench.strategy import (
    Batch,
    Context,
    Signal,
    StartExecution,
    StartOrder,
    StartState,
    Strategy,
    decode_signals,
    decode_start,
    encode_batch,
    encode_start,
    is_context,
    is_start,
)

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
PCRS = {0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}
LINK = RunLink("zcbench/0101010101010101/run-a", 42, b"\x07" * 32, (("BBB", -5), ("AAA", 3)))


def _state() -> StartState:
    return StartState(
        venue="fix",
        positions=(("BBB", -5), ("AAA", 103)),
        open_orders=(StartOrder("run-a-9-0", "AAA", "buy", 10, 4, 9, 0),),
        orders=(StartOrder("run-a-11-0", "AAA", "buy", 100, 0, 11, 0),),
        executions=(StartExecution("SE1", "run-a-11-0", "trade", "AAA", "buy", 100, 100, 1_000_000,
                                   100, 0),),
        not_acted=(("zcbench/0101010101010101/run-a", 13, 1),),
    )


def test_link_round_trips_and_sorts_positions() -> None:
    data = encode_link(LINK)
    assert decode_link(data) == LINK
    assert LINK.positions == (("AAA", 3), ("BBB", -5))
    assert decode_link(None) is None


@pytest.mark.parametrize(
    "doc",
    [
        {"previous": {"origin": "o", "size": 1, "root": b"\x00" * 32}},  # a key missing
        {"previous": {"origin": "o", "size": 0, "root": b"\x00" * 32, "positions": []}},
        {"previous": {"origin": "o", "size": 1, "root": b"\x00" * 31, "positions": []}},
        {"previous": {"origin": "o", "size": 1, "root": b"\x00" * 32, "positions": [["A", 0]]}},
        {"previous": {"origin": "o", "size": 1, "root": b"\x00" * 32,
                      "positions": [["B", 1], ["A", 1]]}},  # unsorted: another encoding
        {"previous": {"origin": "o", "size": 1, "root": b"\x00" * 32,
                      "positions": [["A", 1], ["A", 2]]}},
        {"checkpoint": b"note"},
    ],
)
def test_link_reader_refuses_every_other_shape(doc: object) -> None:
    with pytest.raises(DataError):
        decode_link(cbor2.dumps(doc, canonical=True))


def test_link_reader_refuses_a_non_canonical_encoding() -> None:
    data = encode_link(LINK)
    loose = cbor2.dumps(cbor2.loads(data), canonical=False)
    longer = data[:-1] + b"\x18" + data[-1:] if data[-1] < 24 else None
    for bad in [x for x in (loose, longer, data + b"\x00") if x is not None and x != data]:
        with pytest.raises(DataError):
            decode_link(bad)


def test_start_state_round_trips_and_is_told_apart() -> None:
    state = _state()
    body = encode_start(state)
    assert decode_start(body) == state
    assert is_start(body)
    assert not is_context(body)
    batch = encode_batch(Batch(0, pl.DataFrame({"ts": [1], "symbol": ["A"], "price": [1]})))
    assert not is_start(batch)
    assert state.position_map == {"AAA": 103, "BBB": -5}
    assert state.executions[0].signed_qty == 100


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("not_acted"),
        lambda d: d.update(v=1),  # the version naming signals by log index
        lambda d: d.update(positions=[["AAA", 0]]),
        lambda d: d.update(positions=[["BBB", 1], ["AAA", 1]]),
        lambda d: d["executions"][0].update(side="short"),
        lambda d: d["executions"][0].update(last_qty=-1),
        lambda d: d["open_orders"][0].pop("leaves_qty"),
        lambda d: d.update(not_acted=[[13, 1]]),
        lambda d: d.update(extra=1),
    ],
)
def test_start_state_reader_refuses_damage(change: object) -> None:
    doc = cbor2.loads(encode_start(_state()))
    change(doc)  # type: ignore[operator]
    with pytest.raises(DataError):
        decode_start(cbor2.dumps(doc, canonical=True))


@dataclasses.dataclass(frozen=True)
class P:
    pass


class Holder(Strategy):
    """Sells what the context says it holds (nothing without a context)."""

    name = "holder"
    params_type = P
    input_fields = ("price",)

    def on_batch(self, batch: Batch, context: Context | None = None) -> Sequence[Signal]:
        if context is None or not context.position("AAA"):
            return []
        return [Signal("AAA", "sell", context.position("AAA"))]


def _runtime() -> tuple[EnclaveRuntime, DevCA]:
    ca = DevCA.load_or_create(now=NOW)
    nsm = NsmEmulator(pcrs=PCRS, ca=ca, clock=lambda: NOW)
    return EnclaveRuntime(Holder(P()), nsm, pcr0=PCRS[0], clock=lambda: 1_000), ca


def test_the_boot_document_attests_the_link() -> None:
    runtime, _ = _runtime()
    booted = boot_reply(runtime, Message("boot", {"run_id": "run-b",
                                                  "config": {"previous": encode_link(LINK)}}))
    assert booted.type == "booted"
    identity = nitro_boot_verifier()(booted["document"], "dev")
    assert identity.previous == LINK
    first, _ = _runtime()
    plain = boot_reply(first, Message("boot", {"run_id": "run-a", "config": {}}))
    assert nitro_boot_verifier()(plain["document"], "dev").previous is None


def test_the_enclave_refuses_a_malformed_link() -> None:
    runtime, _ = _runtime()
    bad = cbor2.dumps({"previous": {"origin": "o"}}, canonical=True)
    reply = boot_reply(runtime, Message("boot", {"run_id": "run-b", "config": {"previous": bad}}))
    assert reply.type == "error"
    assert reply["code"] == "bad_previous"


def test_a_boot_document_with_other_user_data_is_no_boot() -> None:
    ca = DevCA.load_or_create(now=NOW)
    nsm = NsmEmulator(pcrs=PCRS, ca=ca, clock=lambda: NOW)
    document = nsm.attestation(user_data=b"\x01", nonce=b"run-x", public_key=b"k" * 44)
    with pytest.raises(VerificationError):
        nitro_boot_verifier()(document, "dev")


def test_the_start_state_is_logged_before_batch_0_and_seen_by_the_strategy() -> None:
    runtime, _ = _runtime()
    runtime.boot("run-b", encode_link(LINK))
    body = encode_start(_state())
    reply = runtime.start(body)
    assert reply.type == "start_logged"
    assert reply["seq"] == 0
    record = encode_record(index=1, kind="in", seq=0, body=body, time_ns=reply["time_ns"])
    assert reply["leaf"] == leaf_hash(record)
    batch = encode_batch(Batch(0, pl.DataFrame({"ts": [5], "symbol": ["AAA"], "price": [9]})))
    signals = decode_signals(runtime.ingest(0, batch)["signals"])
    assert [(s.symbol, s.side, s.quantity) for s in signals] == [("AAA", "sell", 103)]
    with pytest.raises(Exception, match="right after boot"):
        runtime.start(body)
