"""A signal is named by its batch and its position among that batch's signals, never by the log
index of its OUT record: clock records land between batches at wall-clock moments, so the same
data puts the OUT records at other indices from run to run, and the feedback bytes, ClOrdIDs
and start states must not follow them."""

from __future__ import annotations

import polars as pl

from zcbench.host.execution import ExecutionLayer, RiskLimits, VerifiedSignals
from zcbench.host.feedback import FeedbackBuilder
from zcbench.strategy import Signal, decode_context
from zcbench.venue import Execution, Order, PaperVenue, cl_ord_id_for, signal_of_cl_ord_id

T0 = 1_700_000_000_000_000_000


def _quote(ts: int, ask_size: int) -> pl.DataFrame:
    return pl.DataFrame({"ts": [ts], "symbol": ["AAA"], "kind": ["quote"], "bid": [99],
                         "ask": [101], "bid_size": [100], "ask_size": [ask_size]})


def _run(out_indices: list[int]) -> tuple[list[bytes], pl.DataFrame]:
    """Three batches through the execution layer and the paper venue, their OUT records at
    ``out_indices``; the feedback each batch after them is given, and the journal."""
    layer = ExecutionLayer(RiskLimits(max_position=60), venue=PaperVenue(), order_prefix="r1")
    builder = FeedbackBuilder(layer)
    batches = [
        (Signal("AAA", "buy", 50), Signal("AAA", "buy", 10, 101, hints=(("tif", "GTC"),))),
        (Signal("AAA", "buy", 500),),  # over max_position: refused
        (Signal("AAA", "sell", 5), Signal("AAA", "sell", 5)),
        # refused by the order's own check: its reason names the order, not the log index
        (Signal("AAA", "buy", 1, hints=(("order_type", "stop"), ("stop_price", "high"))),),
    ]
    bodies = []
    for seq, (signals, index) in enumerate(zip(batches, out_indices, strict=True)):
        layer.on_market(_quote(T0 + seq, ask_size=30))
        layer.act(VerifiedSignals(seq, index, index + 1, signals), now_ns=seq,
                  market_ns=T0 + seq)
        body = builder.take(seq + 1)
        assert body is not None
        bodies.append(body)
    return bodies, layer.journal()


def test_feedback_and_cl_ord_ids_do_not_depend_on_where_the_out_records_are() -> None:
    # no clock records (the backtest's count), and clock records before some batches
    plain, plain_journal = _run([3, 5, 7, 9])
    shifted, shifted_journal = _run([4, 9, 12, 20])
    assert plain == shifted
    assert plain_journal.drop("log_index").equals(shifted_journal.drop("log_index"))
    assert plain_journal["log_index"].to_list() != shifted_journal["log_index"].to_list()
    outcomes = [o for seq, body in enumerate(plain, start=1)
                for o in decode_context(body, seq=seq).outcomes]
    # each outcome names (batch, position): the refusal is batch 1's only signal
    limit, hint = [o for o in outcomes if o.status == "refused"]
    assert (limit.batch, limit.signal, limit.limit) == (1, 0, "max_position")
    assert (hint.batch, hint.signal) == (3, 0)
    assert "r1-3-0" in hint.reason  # its order, whatever the OUT record's log index
    assert {(o.batch, o.signal) for o in outcomes} == {(0, 0), (0, 1), (1, 0), (2, 0), (2, 1),
                                                       (3, 0)}
    ids = set(plain_journal.filter(pl.col("cl_ord_id") != "")["cl_ord_id"].to_list())
    assert ids == {"r1-0-0", "r1-0-1", "r1-1-0", "r1-2-0", "r1-2-1", "r1-3-0"}


def test_a_cl_ord_id_reads_back_as_the_signal_it_names() -> None:
    for prefix, seq, k in (("run-a1b2", 0, 0), ("run-parity", 12, 3), ("Z", 2**40, 7)):
        assert signal_of_cl_ord_id(cl_ord_id_for(prefix, seq, k)) == (prefix, seq, k)
    for other in ("", "r1", "r1-3", "-1-2", "r1-a-1", "r1-1-b", "r1-01-2", "r1-1-+2",
                  "r1-1-\u0663", "r1-1-" + "9" * 20):
        assert signal_of_cl_ord_id(other) is None, other


class _Carrying:
    """A venue still working an earlier run's order: the next market events fill it."""

    name = "fix"

    def __init__(self) -> None:
        self.pending = [Execution("E1", "O1", "run-before-5-1", "trade", "filled", "AAA", "buy",
                                  4, last_qty=4, last_px=101, cum_qty=4, cum_notional=404,
                                  log_index=23)]

    def on_market(self, events: pl.DataFrame) -> list[Execution]:
        out, self.pending = self.pending, []
        return out

    def submit(self, order: Order) -> list[Execution]:
        raise AssertionError("nothing is sent")

    def cancel(self, request: object) -> list[Execution]:
        raise AssertionError("nothing is cancelled")

    def replace(self, request: object) -> list[Execution]:
        raise AssertionError("nothing is replaced")

    def close(self) -> None:
        pass


def test_a_carried_order_s_fill_names_the_signal_its_start_state_named() -> None:
    # a continuing run's start state names an open order's signal by (batch, position) in the
    # run that sent it; the fill of that order names the same, not the batch it arrived in
    layer = ExecutionLayer(venue=_Carrying(), order_prefix="run-now")
    layer.on_market(_quote(T0, ask_size=30))
    layer.act(VerifiedSignals(2, 9, 10, ()), now_ns=1, market_ns=T0)
    body = FeedbackBuilder(layer).take(3)
    assert body is not None
    [fill] = decode_context(body, seq=3).outcomes
    assert (fill.batch, fill.signal, fill.status, fill.quantity) == (5, 1, "filled", 4)
    assert layer.positions == {"AAA": 4}
