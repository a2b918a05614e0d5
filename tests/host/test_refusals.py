"""Refusals as data: the execution layer journals each refusal's control, limit and attempted
value beside its text, and the feedback, the control history and the evidence read the fields,
never the text (a venue's own words that look like a limit's are not taken for one)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest

from zcbench.errors import UsageError
from zcbench.host.controls import ControlEvent, ControlHistory, ControlRecord, _journal_problems
from zcbench.host.execution import (
    JOURNAL_FILE,
    JOURNAL_SCHEMA,
    ExecutionLayer,
    Journal,
    RiskLimits,
    VerifiedSignals,
    read_journal,
)
from zcbench.host.feedback import FeedbackBuilder
from zcbench.risk import CONTROLS, BuyingPower, CapitalState, Refusal
from zcbench.strategy import Signal, decode_context
from zcbench.venue.orders import Cancel, Execution, Order, Replace

S = 1_000_000_000


def _market(ex: ExecutionLayer, px: int, symbol: str = "AAA") -> None:
    ex.on_market(pl.DataFrame({"ts": [1], "symbol": [symbol], "price": [px]}))


def _batch(*signals: Signal, seq: int = 0, out_index: int = 2) -> VerifiedSignals:
    return VerifiedSignals(seq, out_index, out_index + 1, tuple(signals))


def _rejects(ex: ExecutionLayer) -> list[tuple[str, int | None, int | None, str]]:
    j = ex.journal().filter(pl.col("event") == "reject")
    return list(zip(j["control"], j["limit_value"], j["attempted_value"], j["reason"],
                    strict=True))


def test_every_limit_journals_its_control_limit_and_attempted_value() -> None:
    limits = RiskLimits(max_position=10, max_notional=50_000, max_orders_per_s=3,
                        price_collar_bps=500)
    ex = ExecutionLayer(limits)
    ex.act(_batch(Signal("BBB", "buy", 1)), now_ns=S)
    _market(ex, 1000)
    ex.act(_batch(
        Signal("AAA", "buy", 1, limit_price=1100),  # 1,000 bp from the market
        Signal("AAA", "buy", 11),  # past max_position
        Signal("AAA", "buy", 8),  # 8,000 > 50,000? no: fills
        Signal("AAA", "buy", 1, limit_price=990),  # inside the collar, the market through it
        Signal("AAA", "buy", 1),  # the third order of the second
        Signal("AAA", "buy", 1),  # the fourth: over the rate
        seq=1, out_index=4), now_ns=S)
    ex.kill("operator stop")
    ex.act(_batch(Signal("AAA", "sell", 1), seq=2, out_index=6), now_ns=2 * S)
    # the texts people read are the ones the journal always held
    assert _rejects(ex) == [
        ("no_market_price", None, None, "no market price yet for BBB"),
        ("price_collar_bps", 500, 1100, "limit 1100 outside the 500 bp collar around 1000"),
        ("max_position", 10, 11, "position would be 11, limit 10"),
        ("limit_not_reached", 990, 1000, "market 1000 through limit 990"),
        ("max_orders_per_s", 3, 4, "order rate over 3/s"),
        ("kill_switch", 1, None, "kill switch: operator stop"),
    ]
    notional = ExecutionLayer(RiskLimits(max_notional=5_000))
    _market(notional, 1000)
    notional.act(_batch(Signal("AAA", "buy", 6), Signal("AAA", "buy", 4),
                        Signal("AAA", "buy", 2)), now_ns=S)
    assert _rejects(notional) == [
        ("max_notional", 5_000, 6_000, "order notional 6000 over 5000"),
        ("max_notional", 5_000, 6_000, "gross notional would be 6000, limit 5000"),
    ]



def test_notional_counts_in_the_account_unit_across_instruments_of_different_decimals() -> None:
    # EURUSD quoted to 1/100,000 (1 account unit a price unit), AAA to 1/10,000 (10): 100 AAA at
    # 150.0000 is 15,000.00000 USD = 1.5e9 account ticks, over a limit of 10,000 USD (1e9); in
    # AAA's own price unit it would have been 1.5e8, under the limit
    limit = 1_000_000_000
    ex = ExecutionLayer(RiskLimits(max_notional=limit, max_position=10**9),
                        units={"AAA": 10, "EURUSD": 1})
    _market(ex, 1_500_000, "AAA")
    _market(ex, 108_000, "EURUSD")
    ex.act(_batch(Signal("AAA", "buy", 100), Signal("AAA", "buy", 60),
                  Signal("EURUSD", "buy", 5_000)), now_ns=S)
    # 60 AAA is 9e8: taken; then 5,000 EURUSD (5.4e8) takes the gross to 1.44e9, over the limit
    assert _rejects(ex) == [
        ("max_notional", limit, 1_500_000_000, "order notional 1500000000 over 1000000000"),
        ("max_notional", limit, 1_440_000_000,
         "gross notional would be 1440000000, limit 1000000000"),
    ]
    assert ex.positions == {"AAA": 60}


def test_a_refusal_checks_its_fields() -> None:
    assert Refusal("max_position", limit=3, attempted=4).text == "position would be 4, limit 3"
    with pytest.raises(UsageError, match="control"):
        Refusal("max_positions", limit=3)
    with pytest.raises(UsageError, match="int"):
        Refusal("max_position", limit=3.5)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="order' or 'gross"):
        Refusal("max_notional", limit=3, attempted=4)
    assert len(set(CONTROLS)) == len(CONTROLS)
    assert {"kill_switch", "max_position", "max_notional", "max_orders_per_s",
            "price_collar_bps"} <= set(CONTROLS)  # every RiskLimits field is a control


class _RejectingVenue:
    """A venue that rejects every order with its own words (a real venue's are its own)."""

    name = "rejecting"

    def __init__(self, text: str) -> None:
        self.text = text

    def on_market(self, events: pl.DataFrame) -> Sequence[Execution]:
        return []

    def submit(self, order: Order) -> Sequence[Execution]:
        return [Execution("e1", "o1", order.cl_ord_id, "rejected", "rejected", order.symbol,
                          order.side, order.quantity, text=self.text)]

    def cancel(self, request: Cancel) -> Sequence[Execution]:
        return []

    def replace(self, request: Replace) -> Sequence[Execution]:
        return []

    def close(self) -> None:
        pass


@pytest.mark.parametrize("text", [
    "limit price not on the venue's tick",  # the text reader took it for the collar
    "position would be 20, limit 10 at the venue",  # ... and this one for max_position
    "order rate over 10/s",  # a venue's own throttle
])
def test_a_venue_reject_that_reads_like_a_limit_is_named_venue(text: str) -> None:
    ex = ExecutionLayer(RiskLimits(), venue=_RejectingVenue(text), order_prefix="run-1")
    feedback = FeedbackBuilder(ex)
    _market(ex, 1000)
    [result] = ex.act(_batch(Signal("AAA", "buy", 1)), now_ns=S)
    assert (result.status, result.reason) == ("rejected", text)
    assert result.refusal == Refusal("venue", detail=text)
    body = feedback.take(1)
    assert body is not None
    refused = decode_context(body, seq=1).refusals()
    assert [(o.limit, o.reason) for o in refused] == [("venue", text)]


def test_feedback_names_the_control_whatever_the_text_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Refusal, "text", property(lambda self: "reworded: not allowed"))
    ex = ExecutionLayer(RiskLimits(max_position=3))
    feedback = FeedbackBuilder(ex)
    _market(ex, 1000)
    ex.act(_batch(Signal("AAA", "buy", 4), Signal("AAA", "buy", 1, limit_price=990)), now_ns=S)
    body = feedback.take(1)
    assert body is not None
    outcomes = decode_context(body, seq=1).outcomes
    assert [(o.status, o.limit, o.reason) for o in outcomes] == [
        ("sent", "", ""),
        ("refused", "max_position", "reworded: not allowed"),
        ("sent", "", ""),
        ("expired", "", "reworded: not allowed"),  # an IOC without a price: not a refusal
    ]


def _history(limits: RiskLimits) -> ControlHistory:
    values = {k: int(v) for k, v in
              ((f, getattr(limits, f)) for f in RiskLimits.__dataclass_fields__)}
    start = ControlRecord("start", "alice", 1, {}, values)
    return ControlHistory((ControlEvent(0, 1, start),), ())


def test_the_control_history_reads_the_limit_value_not_the_text(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / JOURNAL_FILE, run_id="r", origin="o", image="b")
    venue = ExecutionLayer(RiskLimits(), journal, venue=_RejectingVenue("order rate over 10/s"),
                           order_prefix="r")
    _market(venue, 1000)
    venue.act(_batch(Signal("AAA", "buy", 1)), now_ns=S)
    venue.close()
    # the venue's throttle is no max_orders_per_s of 10 against the logged 100
    assert _journal_problems(_history(RiskLimits()), tmp_path) == []
    other = tmp_path / "other"
    other.mkdir()
    journal = Journal.create(other / JOURNAL_FILE, run_id="r", origin="o", image="b")
    mine = ExecutionLayer(RiskLimits(max_position=10), journal)
    _market(mine, 1000)
    mine.act(_batch(Signal("AAA", "buy", 11)), now_ns=S)
    mine.close()
    [problem] = _journal_problems(_history(RiskLimits()), other)
    assert "max_position = 10" in problem
    assert "in force was 1000" in problem


_LEGACY_ROW = {"time_ns": 1, "seq": 0, "log_index": 2, "symbol": "AAA", "side": "buy",
               "quantity": 1, "limit_price_ticks": None, "price_ticks": None,
               "position_after": 0, "cl_ord_id": "", "exec_id": ""}


@pytest.mark.parametrize(("event", "reason", "control", "limit", "attempted"), [
    ("reject", "kill switch: operator", "kill_switch", None, None),
    ("reject", "limit 1200 outside the 500 bp collar around 1000", "price_collar_bps", 500, 1200),
    ("reject", "position would be 1100, limit 1000", "max_position", 1000, 1100),
    ("reject", "order notional 99 over 10", "max_notional", 10, 99),
    ("reject", "gross notional would be 99, limit 10", "max_notional", 10, 99),
    ("reject", "order rate over 100/s", "max_orders_per_s", 100, None),
    ("reject", "no market price yet for AAA", "no_market_price", None, None),
    ("reject", "market 1003 through limit 1000", "limit_not_reached", 1000, 1003),
    ("reject", "unknown symbol at the venue", "venue", None, None),
    ("order", "", "", None, None),
])
def test_a_journal_written_before_refusals_were_data_still_reads(
    tmp_path: Path, event: str, reason: str, control: str, limit: int | None,
    attempted: int | None,
) -> None:
    header = {"schema": "zcbench.journal/1", "run_id": "r", "origin": "o", "image": "b",
              "price_unit": "tick"}
    row = {**_LEGACY_ROW, "event": event, "reason": reason}
    (tmp_path / JOURNAL_FILE).write_text(
        json.dumps(header) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    [read] = read_journal(tmp_path).rows.to_dicts()
    assert read == {**row, "control": control, "limit_value": limit, "attempted_value": attempted}
    assert list(read) == list(JOURNAL_SCHEMA)


def test_a_current_journal_row_without_its_refusal_fields_is_no_row(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / JOURNAL_FILE, run_id="r", origin="o", image="b")
    journal.append([{**_LEGACY_ROW, "event": "reject", "reason": "order rate over 100/s"}])
    journal.close()
    read = read_journal(tmp_path)
    assert read.rows.height == 0
    assert read.torn is not None
    assert read.torn.reason == "not a journal row"


def _statuses(ex: ExecutionLayer, *signals: Signal) -> list[tuple[str, str]]:
    return [(r.status, r.refusal.control if r.refusal else "")
            for r in ex.act(_batch(*signals), now_ns=S)]


def test_capital_binds_by_the_backtests_rule() -> None:
    ex = ExecutionLayer(RiskLimits(), capital=10_000)
    _market(ex, 1000)
    assert _statuses(ex, Signal("AAA", "buy", 8), Signal("AAA", "buy", 3)) == [
        ("filled", ""), ("rejected", "insufficient_cash")]
    [(_, limit, attempted, text)] = _rejects(ex)
    assert (limit, attempted) == (10_000, 11_000)
    assert text == "insufficient_cash: the account after the order needs 11000 of equity and " \
                   "would have 10000"
    assert ex.capital + ex.cash == 2_000  # type: ignore[operator]
    # what reduces exposure always passes; a short needs its notional in equity
    assert _statuses(ex, Signal("AAA", "sell", 8), Signal("AAA", "sell", 10),
                     Signal("AAA", "sell", 1)) == [
        ("filled", ""), ("filled", ""), ("rejected", "insufficient_margin")]
    assert _statuses(ex, Signal("AAA", "buy", 10)) == [("filled", "")]
    # leverage lets cash go below zero, as far as the rule allows
    levered = ExecutionLayer(RiskLimits(), capital=10_000, buying_power=BuyingPower(leverage=2))
    _market(levered, 1000)
    assert _statuses(levered, Signal("AAA", "buy", 20), Signal("AAA", "buy", 1)) == [
        ("filled", ""), ("rejected", "insufficient_margin")]
    assert levered.capital + levered.cash == -10_000  # type: ignore[operator]
    # a symbol quoted in a coarser unit counts ``units`` account units per price unit
    coarse = ExecutionLayer(RiskLimits(), capital=10_000, units={"AAA": 10})
    _market(coarse, 1000)
    assert _statuses(coarse, Signal("AAA", "buy", 1), Signal("AAA", "buy", 1)) == [
        ("filled", ""), ("rejected", "insufficient_cash")]
    # without capital it does not bind (a library caller's default)
    free = ExecutionLayer(RiskLimits())
    _market(free, 1000)
    assert _statuses(free, Signal("AAA", "buy", 1000)) == [("filled", "")]
    with pytest.raises(UsageError, match="capital"):
        ExecutionLayer(capital=0)


def test_the_account_under_the_rule_and_its_refusals_are_reported_as_they_stand() -> None:
    """What the panel and the summary show: cash, equity, the buying power the positions use
    (the rule's requirement), and the refusals counted by the control that refused."""
    ex = ExecutionLayer(RiskLimits(), capital=10_000)
    assert ex.capital_state() == CapitalState(cash=10_000, equity=10_000, used=0)
    _market(ex, 1000)
    _statuses(ex, Signal("AAA", "buy", 8), Signal("AAA", "buy", 3))
    assert ex.capital_state() == CapitalState(cash=2_000, equity=10_000, used=8_000)
    assert ex.refusals() == {"insufficient_cash": 1}
    _market(ex, 1250)  # marks move equity, not cash
    assert ex.capital_state() == CapitalState(cash=2_000, equity=12_000, used=10_000)
    # a short: its proceeds are cash, its notional (at short_margin 1) is needed in equity
    _statuses(ex, Signal("AAA", "sell", 16), Signal("AAA", "sell", 2))
    assert ex.capital_state() == CapitalState(cash=22_000, equity=12_000, used=10_000)
    assert ex.refusals() == {"insufficient_cash": 1, "insufficient_margin": 1}
    # leverage 2: a long needs half its notional (rounded up to the account's unit)
    levered = ExecutionLayer(RiskLimits(), capital=10_000, buying_power=BuyingPower(leverage=2))
    _market(levered, 1001)
    _statuses(levered, Signal("AAA", "buy", 3))
    assert levered.capital_state() == CapitalState(cash=6_997, equity=10_000, used=1_502)
    # other controls are counted by their own names; without capital there is no account
    free = ExecutionLayer(RiskLimits(max_position=1))
    _market(free, 1000)
    _statuses(free, Signal("AAA", "buy", 2))
    assert (free.capital_state(), free.refusals()) == (None, {"max_position": 1})


def test_a_row_naming_no_known_control_is_no_row(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / JOURNAL_FILE, run_id="r", origin="o", image="b")
    row = {**_LEGACY_ROW, "event": "reject", "reason": "x", "limit_value": None,
           "attempted_value": None}
    journal.append([{**row, "control": "venue"}, {**row, "control": "max_positions"}])
    journal.close()
    read = read_journal(tmp_path)
    assert read.rows["control"].to_list() == ["venue"]
    assert read.torn is not None
    assert read.torn.reason == "bad control"


def test_on_quotes_capital_is_checked_at_the_side_the_order_takes() -> None:
    """A buy takes the ask (the paper venue's fill, the backtest's): checked at the mid, an
    order worth the whole capital there would take cash below zero at the ask."""
    from zcbench.venue import PaperVenue

    quote = pl.DataFrame({"ts": [1], "symbol": ["AAA"], "kind": ["quote"], "bid": [990],
                          "ask": [1010], "bid_size": [100], "ask_size": [100]})
    at_mid = ExecutionLayer(RiskLimits(), capital=10_000, venue=PaperVenue(), order_prefix="r")
    at_mid.on_market(quote)
    [refused] = at_mid.act(_batch(Signal("AAA", "buy", 10)), now_ns=S)  # 10,000 at the mid
    assert refused.refusal == Refusal("insufficient_cash", limit=10_000, attempted=10_100)
    enough = ExecutionLayer(RiskLimits(), capital=10_100, venue=PaperVenue(), order_prefix="r")
    enough.on_market(quote)
    [filled] = enough.act(_batch(Signal("AAA", "buy", 10)), now_ns=S)
    assert (filled.status, filled.fill_price) == ("filled", 1010)
    assert enough.capital + enough.cash == 0  # type: ignore[operator]
    # a sale takes the bid: a short of 10 needs 9,900 of equity
    short = ExecutionLayer(RiskLimits(), capital=9_899, venue=PaperVenue(), order_prefix="r")
    short.on_market(quote)
    [no] = short.act(_batch(Signal("AAA", "sell", 10)), now_ns=S)
    assert no.refusal is not None
    assert (no.refusal.control, no.refusal.attempted) == ("insufficient_margin", 9_900)
