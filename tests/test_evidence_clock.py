"""Clock evidence: the host clock's bound from the kernel (a real adjtimex call), the ClockBound
segment read by its documented version 2 layout, and the verdict against RTS 25's limits."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from zcbench.errors import DataError, EnvError
from zcbench.evidence import (
    RTS25_LIMITS_NS,
    ClockBoundSource,
    ClockReading,
    HostClock,
    judge,
    parse_clockbound,
)

# docs/PROTOCOL.md of aws/clock-bound, version 2: magic, segment size, version, generation,
# as-of (s, ns), void-after (s, ns), bound ns, disruption marker, max drift ppb, clock status,
# disruption support, padding to 80 bytes; little-endian on x86_64 and Graviton.
MAGIC = bytes((0x41, 0x4D, 0x5A, 0x4E, 0x43, 0x42, 0x02, 0x00))
S = 10**9


def segment(*, bound: int = 40_000, drift_ppb: int = 15_000, status: int = 1,
            generation: int = 2, as_of: int = 100 * S, void_after: int = 200 * S,
            version: int = 2, magic: bytes = MAGIC) -> bytes:
    return struct.pack("<8sIHHqqqqqQIiB7x", magic, 80, version, generation, as_of // S,
                       as_of % S, void_after // S, void_after % S, bound, 0, drift_ppb,
                       status, 0)


def test_host_clock_reads_the_kernel_discipline() -> None:
    reading = HostClock().read()
    assert abs(reading.time_ns - time.time_ns()) < 10 * S
    assert "kernel maximum error" in reading.detail
    assert (reading.bound_ns is not None) == reading.synchronised
    within, flag = judge(reading, RTS25_LIMITS_NS["voice"])
    if not reading.synchronised:
        assert not within
        assert "not synchronised" in flag


def test_clockbound_bound_grows_with_drift_and_is_judged() -> None:
    reading = parse_clockbound(segment(), monotonic_ns=110 * S, realtime_ns=5)
    assert reading.synchronised
    assert reading.bound_ns == 40_000 + 10 * 15_000  # 10 s at 15,000 ppb
    assert judge(reading, RTS25_LIMITS_NS["algo"]) == (True, "")
    within, flag = judge(reading, RTS25_LIMITS_NS["hft"])
    assert not within
    assert "exceeds the limit of 100,000 ns" in flag


@pytest.mark.parametrize(("data", "detail"), [
    (segment(), "void"),
    (segment(status=2), "free running"),
    (segment(status=3), "disrupted"),
])
def test_clockbound_without_a_bound(data: bytes, detail: str) -> None:
    monotonic = 300 * S if detail == "void" else 110 * S
    reading = parse_clockbound(data, monotonic_ns=monotonic, realtime_ns=5)
    assert not reading.synchronised
    assert reading.bound_ns is None
    assert detail in reading.detail
    assert judge(reading, RTS25_LIMITS_NS["voice"])[0] is False


@pytest.mark.parametrize("data", [
    segment(magic=b"AMZNCB\x01\x00"), segment(version=1), segment()[:79], b"",
    segment(bound=-1),
])
def test_clockbound_malformed_segments(data: bytes) -> None:
    with pytest.raises(DataError):
        parse_clockbound(data, monotonic_ns=110 * S, realtime_ns=5)


def test_clockbound_source_reads_the_file(tmp_path: Path) -> None:
    shm = tmp_path / "shm0"
    shm.write_bytes(segment())
    source = ClockBoundSource(shm, monotonic=lambda: 100 * S, realtime=lambda: 7)
    assert source.read() == ClockReading("AWS ClockBound", 7, 40_000, True,
                                         "bound 40,000 ns at its computation, drift 15000 ppb "
                                         "since")
    shm.write_bytes(segment(generation=3))  # the daemon never finishes its update
    with pytest.raises(EnvError, match="mid-update"):
        source.read()
    with pytest.raises(EnvError, match="clockbound daemon"):
        ClockBoundSource(tmp_path / "absent").read()
