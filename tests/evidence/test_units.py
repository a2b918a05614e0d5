"""Small pieces of the evidence pack: times in UTC, the limits."""

from __future__ import annotations

import pytest

from zcbench.errors import UsageError
from zcbench.evidence import RTS25_LIMITS_NS, collect_evidence, iso_ns


def test_iso_ns_keeps_every_nanosecond() -> None:
    assert iso_ns(0) == "1970-01-01T00:00:00.000000000Z"
    assert iso_ns(1_796_290_900_324_924_179) == "2026-12-03T09:41:40.324924179Z"


def test_rts25_limits_and_refusals() -> None:
    assert RTS25_LIMITS_NS == {"hft": 100_000, "algo": 1_000_000, "voice": 1_000_000_000}
    with pytest.raises(UsageError, match="rts25"):
        collect_evidence([], rts25="fast")
    with pytest.raises(UsageError, match="at least one run"):
        collect_evidence([])
