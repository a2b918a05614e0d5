"""The log's surfaces name a feedback IN record as such: described, flagged and searched by its
outcomes and positions (a batch decoder raised on it)."""

from __future__ import annotations

import cbor2
import polars as pl
import pytest

from zcbench.auditlog.frame import strategy_summary
from zcbench.auditlog.listing import describe_body, describe_feedback
from zcbench.auditlog.records import Record
from zcbench.auditlog.select import strategy_symbols
from zcbench.errors import DataError
from zcbench.strategy import (
    Batch,
    Context,
    Outcome,
    encode_batch,
    encode_context,
)


def _in(body: bytes, seq: int = 3) -> Record:
    return Record(index=7, kind="in", seq=seq, time_ns=1, event_time_ns=None, body=body)


def test_a_feedback_record_is_described_by_its_outcomes_and_positions() -> None:
    context = Context(
        3,
        (Outcome(2, 0, "AAA", "refused", 200, limit="max_notional", reason="order notional"),
         Outcome(2, 1, "BBB", "filled", 40, price=1_250_000)),
        (("CCC", -100),),
    )
    record = _in(encode_context(context))
    text = describe_body(record)
    assert text.startswith("feedback for batch 3: ")
    assert "refused 200 AAA (signal 0 of batch 2) by max_notional" in text
    assert "filled 40 BBB (signal 1 of batch 2) at 1250000 ticks" in text
    assert text.endswith("positions CCC -100")
    assert strategy_symbols(record) == {"AAA", "BBB", "CCC"}
    assert strategy_summary(record) == {"feedback": True, "outcomes": 2,
                                        "symbols": ["AAA", "BBB", "CCC"]}


def test_a_batch_is_still_its_events() -> None:
    events = pl.DataFrame({"ts": [1, 2], "symbol": ["AAA", "BBB"], "price": [10, 11]})
    record = _in(encode_batch(Batch(3, events)))
    assert describe_body(record) == "2 events: AAA, BBB"
    assert strategy_symbols(record) == {"AAA", "BBB"}


def test_a_feedback_records_seq_is_the_records_as_for_its_decoder() -> None:
    """describe_feedback(data, seq=) takes the seq as decode_context does: from the record. One
    version 3 body is the same bytes before any batch; a version 2 body's own seq is held to the
    record's, and a mismatch is an undecodable body, not a line naming either seq."""
    context = Context(3, (Outcome(2, 0, "AAA", "filled", 5, price=10),), (("AAA", 5),))
    data = encode_context(context)
    assert describe_feedback(data, seq=9).startswith("feedback for batch 9: filled 5 AAA")
    assert describe_body(_in(data, seq=9)) == describe_feedback(data, seq=9)
    legacy = cbor2.dumps({**cbor2.loads(data), "v": 2, "seq": 3}, canonical=True)
    assert describe_feedback(legacy, seq=3) == describe_feedback(data, seq=3)
    with pytest.raises(DataError, match="its bytes say seq 3, it was given as 4"):
        describe_feedback(legacy, seq=4)
    assert describe_body(_in(legacy, seq=4)).startswith("undecodable body: feedback: its bytes")
