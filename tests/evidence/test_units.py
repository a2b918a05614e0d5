"""Small pieces of the evidence pack: which control a reject names, times in UTC, the limits."""

from __future__ import annotations

import pytest

from zcbench.errors import UsageError
from zcbench.evidence import RTS25_LIMITS_NS, collect_evidence, control_of, iso_ns


@pytest.mark.parametrize(("reason", "control"), [
    ("kill switch: operator", "kill_switch"),
    ("limit 1200 outside the 500 bp collar around 1000", "price_collar"),
    ("position would be 1100, limit 1000", "max_position"),
    ("order notional 99 over 10", "max_notional"),
    ("gross notional would be 99, limit 10", "max_notional"),
    ("order rate over 100/s", "max_orders_per_s"),
    ("no market price yet for AAA", "no_market_price"),
    ("market 1003 through limit 1000", "limit_not_reached"),
    ("something new", "other"),
])
def test_control_of_each_reject_reason(reason: str, control: str) -> None:
    assert control_of(reason) == control


def test_iso_ns_keeps_every_nanosecond() -> None:
    assert iso_ns(0) == "1970-01-01T00:00:00.000000000Z"
    assert iso_ns(1_796_290_900_324_924_179) == "2026-12-03T09:41:40.324924179Z"


def test_rts25_limits_and_refusals() -> None:
    assert RTS25_LIMITS_NS == {"hft": 100_000, "algo": 1_000_000, "voice": 1_000_000_000}
    with pytest.raises(UsageError, match="rts25"):
        collect_evidence([], rts25="fast")
    with pytest.raises(UsageError, match="at least one run"):
        collect_evidence([])
