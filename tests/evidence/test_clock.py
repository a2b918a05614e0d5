"""Clock evidence: the host clock's bound from the kernel (a real adjtimex call), the ClockBound
segment read by its documented version 2 layout, and the verdict against RTS 25's limits."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import cbor2
import polars as pl
import pytest

from zcbench.auditlog.frame import iter_records
from zcbench.errors import DataError, EnvError
from zcbench.evidence import (
    RTS25_LIMITS_NS,
    ClockBoundSource,
    ClockReading,
    HostClock,
    judge,
    parse_clockbound,
)
from zcbench.evidence.clock import (
    ClockNote,
    decode_clock_note,
    encode_clock_note,
    is_clock_note,
    record_bounds,
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
                                         "since", 15_000)
    shm.write_bytes(segment(generation=3))  # the daemon never finishes its update
    with pytest.raises(EnvError, match="mid-update"):
        source.read()
    with pytest.raises(EnvError, match="clockbound daemon"):
        ClockBoundSource(tmp_path / "absent").read()


def _note(reading_ns: int, bound: int | None, previous: int | None, *, drift: int = 1_000_000,
          synced: bool = True) -> ClockNote:
    body = encode_clock_note(ClockReading("test source", reading_ns, bound, synced, "t", drift),
                             previous)
    assert is_clock_note(body)
    return decode_clock_note(body)


def test_record_bounds_from_the_round_trip_by_hand() -> None:
    # note A at index 1: read at 1,000, stamped by the enclave at 1,300, its reply back at 1,500
    # (carried by note B); source bound 40. Offset in [1,300 - 1,500, 1,300 - 1,000]: |.| <= 300,
    # plus 40 = 340. Drift 1,000,000 ppb (0.1 %), rounded up: a record 100 ns before A grows by
    # 1, one 10,000 ns after it by 10, one 19,100 ns after it by 20 (B has no reply: A serves)
    a = _note(1_000, 40, None)
    b = _note(20_000, 40, 1_500)
    notes = [(1, 1_300, a), (5, 20_200, b)]
    bounds = record_bounds([(0, 1_200), (2, 11_300), (6, 20_400)], notes)
    assert [c.bound_ns for c in bounds] == [341, 350, 360]
    assert all("test source (clock record 1)" in c.source and not c.flag for c in bounds)
    # an unsynchronised reading gives no bound, and nothing is assumed
    lost = record_bounds([(2, 11_300)], [(1, 1_300, _note(1_000, None, None, synced=False)),
                                         (5, 20_200, b)])
    assert lost[0].bound_ns is None
    assert "no synchronised clock record" in lost[0].flag
    none = record_bounds([(0, 5)], [])
    assert none[0].bound_ns is None
    assert "no clock record" in none[0].flag
    # a reply time before the reading is no round trip
    assert record_bounds([(2, 5)], [(1, 1_300, a), (5, 20_200, _note(2, 4, 999))])[0].flag


def test_clock_records_are_strict() -> None:
    body = encode_clock_note(ClockReading("s", 1, 2, True, "d", 3), 4)
    doc = cbor2.loads(body)
    for key, value in (("bound_ns", -1), ("synchronised", 1), ("extra", 0), ("note", "x")):
        with pytest.raises(DataError, match="clock record"):
            decode_clock_note(cbor2.dumps({**doc, key: value}, canonical=True))
    with pytest.raises(DataError, match="clock record"):
        decode_clock_note(body + b"\x00")


class _Steady:
    """A synchronised source with a fixed bound: what a disciplined clock reports."""

    name = "steady test clock"

    def read(self) -> ClockReading:
        return ClockReading(self.name, time.time_ns(), 20_000, True, "fixed", 15_000)


@pytest.mark.slow
def test_a_live_run_logs_clock_records_and_the_pack_bounds_every_record(tmp_path: Path) -> None:
    from zcbench.evidence import collect_evidence
    from zcbench.examples import order_flow
    from zcbench.host import ReplaySource
    from zcbench.host.live import ModuleImage, run_live
    from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks

    events = generate_ticks(SyntheticConfig(rate=2_000, duration_s=2.0), seed=3)
    run = tmp_path / "run"
    summary = run_live(ModuleImage(Path(order_flow.__file__)), run,
                       ReplaySource(events, BatchSpec(count=100), rate=4.0),
                       clock_source=_Steady(), clock_every_s=0.02)
    assert summary.status == "completed", summary.reason
    notes = [(r.index, r.time_ns, decode_clock_note(r.body))
             for r, _ in iter_records(run) if r.kind == "note" and is_clock_note(r.body)]
    assert len(notes) >= 3
    assert all(n.source == "steady test clock" and n.bound_ns == 20_000 for _, _, n in notes)
    assert notes[0][2].previous_reply_ns is None
    assert all(n.previous_reply_ns is not None for _, _, n in notes[1:])
    clock = collect_evidence([run], trust="dev", rts25="voice").tables["clock"]
    assert clock["bound_ns"].null_count() == 0
    assert clock["within_limit"].all()
    assert (clock["bound_ns"] >= 20_000).all()
    # against 100 µs some record may fall outside: each is flagged, none silently within
    hft = collect_evidence([run], trust="dev", rts25="hft").tables["clock"]
    outside = hft.filter(~pl.col("within_limit"))
    assert (outside["flag"].str.contains("exceeds the limit")).all()
