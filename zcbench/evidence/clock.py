"""Clock evidence: where a time came from and how far from UTC it may be, tested against the
RTS 25 limit chosen.

A :class:`ClockSource` reads the clock and its error bound now, as a :class:`ClockReading`.
Two are real:

* :class:`HostClock`: the kernel's own account of the system clock (``adjtimex`` with no
  change asked: the NTP discipline's maximum error and whether the clock is synchronised). An
  unsynchronised clock has no bound worth the name and is reported so.
* :class:`ClockBoundSource`: AWS ClockBound's shared-memory segment (protocol version 2,
  ``/var/run/clockbound/shm0``), the documented source of a bounded clock on EC2 and, relayed
  from the parent instance or disciplined by ``/dev/ptp0``, for a Nitro enclave: the bound at the
  reading is the segment's bound plus the maximum drift since it was computed, void after its
  ``void_after`` or when the clock is not synchronised.

:func:`judge` turns a reading into a verdict against a limit; a missing bound is never within.
Nothing here decides what time it is for a record: callers record readings beside the times
they stamp.

**Clock records.** A live run logs a reading as a ``note`` record (:func:`encode_clock_note`,
``note`` = :data:`CLOCK_NOTE`) at its start, every ``clock_every_s`` and at its end: the
source, its time ``reading_ns`` when read (just before the note went to the enclave), its bound
and maximum drift, and ``previous_reply_ns``, when the host had the enclave's reply to the
previous clock note. The enclave stamps each note with its own clock (``time_ns`` of the
record), so for note *i* with stamp *e*, reading *h* and reply *r* (from note *i + 1*) the
enclave clock's offset from the source lies in [*e* − *r*, *e* − *h*], and

    offset bound = max(|e − h|, |e − r|) + the source's bound at the reading

:func:`record_bounds` gives every record of the log the smallest bound over the nearest notes
on either side that have a reply time, grown by the source's maximum drift over the time
between the record and the note (the enclave's clock is taken to drift no faster than the
source says it may; locally the enclave reads the host's own clock). A record with no such
note, or near only unsynchronised readings, has no bound: it is flagged, never assumed within.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from zcbench import _cbor
from zcbench.errors import DataError, EnvError

__all__ = [
    "CLOCKBOUND_PATH",
    "CLOCK_NOTE",
    "ClockBoundSource",
    "ClockNote",
    "ClockReading",
    "ClockSource",
    "HostClock",
    "RecordClock",
    "decode_clock_note",
    "encode_clock_note",
    "is_clock_note",
    "judge",
    "parse_clockbound",
    "record_bounds",
]

CLOCK_NOTE: Final = "zcbench.clock/1"

CLOCKBOUND_PATH: Final = Path("/var/run/clockbound/shm0")
_CB_MAGIC: Final = bytes((0x41, 0x4D, 0x5A, 0x4E, 0x43, 0x42, 0x02, 0x00))
# 80 bytes, protocol version 2, in the CPU's order: little-endian on x86_64 and Graviton
_CB_LAYOUT: Final = struct.Struct("<8sIHHqqqqqQIiB7x")
_CB_STATUS: Final = {0: "unknown", 1: "synchronized", 2: "free running", 3: "disrupted"}
_CLOCK_MONOTONIC_COARSE: Final = 6  # Linux; the clock ClockBound stamps its segment with
_STA_UNSYNC: Final = 0x0040
_TIME_ERROR: Final = 5


@dataclass(frozen=True, slots=True)
class ClockReading:
    """One reading: the source's name, the clock's time (ns since the epoch, UTC), its error
    bound in ns (None when it has none), whether it is synchronised, and why, in words."""

    source: str
    time_ns: int
    bound_ns: int | None
    synchronised: bool
    detail: str
    drift_ppb: int = 0
    """How fast the bound grows after the reading (parts per billion of elapsed time)."""


class ClockSource(Protocol):
    """A clock that says how far from UTC it may be."""

    name: str

    def read(self) -> ClockReading: ...


def judge(reading: ClockReading, limit_ns: int) -> tuple[bool, str]:
    """``(within, flag)``: within only when synchronised with a bound no larger than the limit."""
    if not reading.synchronised or reading.bound_ns is None:
        return False, f"not synchronised ({reading.detail}): no bound within the limit"
    if reading.bound_ns > limit_ns:
        return False, f"bound {reading.bound_ns:,} ns exceeds the limit of {limit_ns:,} ns"
    return True, ""


class _Timex(ctypes.Structure):
    # struct timex (Linux): the fields read, then room for the rest of the kernel's structure
    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
        ("reserved", ctypes.c_byte * 256),
    ]


class HostClock:
    """The host's ``CLOCK_REALTIME`` with the kernel's maximum error (``adjtimex``, read only)."""

    name = "host CLOCK_REALTIME (kernel NTP discipline)"

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock

    def read(self) -> ClockReading:
        path = ctypes.util.find_library("c")
        if path is None:
            raise EnvError("no C library to ask the kernel for the clock's error bound")
        libc = ctypes.CDLL(path, use_errno=True)
        timex = _Timex()  # modes 0: read, change nothing
        state = libc.adjtimex(ctypes.byref(timex))
        now = self._clock()
        if state < 0:
            raise EnvError(f"adjtimex failed (errno {ctypes.get_errno()}): the kernel did not "
                           "report the clock's error bound")
        synced = state != _TIME_ERROR and not timex.status & _STA_UNSYNC
        bound = int(timex.maxerror) * 1000
        detail = (f"kernel maximum error {timex.maxerror:,} µs, estimated {timex.esterror:,} µs"
                  + ("" if synced else "; the kernel marks the clock unsynchronised"))
        # the kernel grows its maximum error by the tolerance (ppm, 16-bit fraction) each second
        drift = int(timex.tolerance) * 1000 >> 16
        return ClockReading(self.name, now, bound if synced else None, synced, detail, drift)


def parse_clockbound(data: bytes, *, monotonic_ns: int, realtime_ns: int,
                     source: str = "AWS ClockBound") -> ClockReading:
    """A reading from a ClockBound v2 segment's bytes at the given ``CLOCK_MONOTONIC_COARSE``
    and ``CLOCK_REALTIME`` instants; raises :class:`DataError` for a segment that is not one,
    :class:`EnvError` for one caught mid-update (odd generation)."""
    if len(data) < _CB_LAYOUT.size:
        raise DataError(f"ClockBound segment is {len(data)} bytes, a version 2 one holds "
                        f"{_CB_LAYOUT.size}")
    (magic, size, version, generation, asof_s, asof_ns, void_s, void_ns, bound, _marker,
     drift_ppb, status, _disruption) = _CB_LAYOUT.unpack_from(data)
    if magic != _CB_MAGIC:
        raise DataError(f"ClockBound segment magic {magic.hex()}, expected {_CB_MAGIC.hex()}")
    if version != 2 or size < _CB_LAYOUT.size:
        raise DataError(f"ClockBound segment version {version}, size {size}: zcbench reads "
                        "version 2")
    if generation % 2:
        raise EnvError("the ClockBound segment is being updated (odd generation); read again")
    if bound < 0 or not 0 <= asof_ns < 10**9 or not 0 <= void_ns < 10**9:
        raise DataError("ClockBound segment holds a negative bound or a bad timestamp")
    as_of, void_after = asof_s * 10**9 + asof_ns, void_s * 10**9 + void_ns
    state = _CB_STATUS.get(status, f"status {status}")
    if monotonic_ns > void_after:
        return ClockReading(source, realtime_ns, None, False,
                            "its bound is void (the daemon stopped updating it)")
    if status != 1:
        return ClockReading(source, realtime_ns, None, False, f"clock {state}")
    grown = bound + max(0, monotonic_ns - as_of) * drift_ppb // 10**9
    return ClockReading(source, realtime_ns, grown, True,
                        f"bound {bound:,} ns at its computation, drift {drift_ppb} ppb since",
                        max(0, drift_ppb))


class ClockBoundSource:
    """The ClockBound daemon's segment at ``path`` (the adapter for Nitro hosts and enclaves)."""

    name = "AWS ClockBound"

    def __init__(self, path: Path = CLOCKBOUND_PATH, *,
                 monotonic: Callable[[], int] = lambda: time.clock_gettime_ns(
                     _CLOCK_MONOTONIC_COARSE),
                 realtime: Callable[[], int] = time.time_ns, attempts: int = 10) -> None:
        self.path, self._monotonic, self._realtime = Path(path), monotonic, realtime
        self._attempts = attempts

    def read(self) -> ClockReading:
        for _ in range(self._attempts):
            try:
                data = self.path.read_bytes()[:4096]
            except OSError as exc:
                raise EnvError(f"no ClockBound segment at {self.path} ({exc.strerror}): is the "
                               "clockbound daemon running?") from None
            try:
                return parse_clockbound(data, monotonic_ns=self._monotonic(),
                                        realtime_ns=self._realtime(), source=self.name)
            except EnvError:
                continue  # caught mid-update: the daemon finishes within microseconds
        raise EnvError(f"the ClockBound segment at {self.path} stayed mid-update")


@dataclass(frozen=True, slots=True)
class ClockNote:
    """A clock record's content (module docstring): a reading, and when the previous clock
    note's reply reached the host (None for the first)."""

    source: str
    reading_ns: int
    bound_ns: int | None
    synchronised: bool
    drift_ppb: int
    detail: str
    previous_reply_ns: int | None


_NOTE_KEYS: Final = frozenset({"note", "source", "reading_ns", "bound_ns", "synchronised",
                               "drift_ppb", "detail", "previous_reply_ns"})
_INT63: Final = 2**63


def encode_clock_note(reading: ClockReading, previous_reply_ns: int | None) -> bytes:
    """The note body recording ``reading`` (canonical CBOR)."""
    return _cbor.encode_canonical({
        "note": CLOCK_NOTE, "source": reading.source[:128], "reading_ns": reading.time_ns,
        "bound_ns": reading.bound_ns, "synchronised": reading.synchronised,
        "drift_ppb": reading.drift_ppb, "detail": reading.detail[:256],
        "previous_reply_ns": previous_reply_ns})


def is_clock_note(body: bytes) -> bool:
    """Whether a note body claims to be a clock record (:func:`decode_clock_note` checks it)."""
    return CLOCK_NOTE.encode() in body[:32]


def _uint(value: object, *, nullable: bool) -> bool:
    return (value is None and nullable) or (type(value) is int and 0 <= value < _INT63)


def decode_clock_note(body: bytes) -> ClockNote:
    """The clock record in a note body; :class:`DataError` unless exactly canonical and whole."""
    try:
        doc = _cbor.decode(bytes(body), canonical=True, max_depth=2, max_bytes=1024)
    except _cbor.CborError as exc:
        raise DataError(f"clock record: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != _NOTE_KEYS or doc["note"] != CLOCK_NOTE:
        raise DataError(f"clock record: a map with exactly {sorted(_NOTE_KEYS)} expected")
    if not (isinstance(doc["source"], str) and isinstance(doc["detail"], str)
            and type(doc["synchronised"]) is bool and _uint(doc["reading_ns"], nullable=False)
            and _uint(doc["bound_ns"], nullable=True) and _uint(doc["drift_ppb"], nullable=False)
            and _uint(doc["previous_reply_ns"], nullable=True)):
        raise DataError("clock record: a field of the wrong type or out of bounds")
    return ClockNote(doc["source"], doc["reading_ns"], doc["bound_ns"], doc["synchronised"],
                     doc["drift_ppb"], doc["detail"], doc["previous_reply_ns"])


@dataclass(frozen=True, slots=True)
class RecordClock:
    """Where one record's time came from and its bound (None: no bound, with ``flag`` why)."""

    source: str
    bound_ns: int | None
    flag: str


@dataclass(frozen=True, slots=True)
class _Anchor:
    index: int
    stamp_ns: int
    offset_bound_ns: int
    drift_ppb: int
    source: str


def _anchors(notes: Sequence[tuple[int, int, ClockNote]]) -> tuple[list[_Anchor], int]:
    """Notes with a usable offset bound (their reply time from the next note), and how many
    notes had none (unsynchronised, or no reply recorded)."""
    anchors, unusable = [], 0
    following: list[tuple[int, int, ClockNote] | None] = [*notes[1:], None]
    for (index, stamp, note), nxt in zip(notes, following[:len(notes)], strict=True):
        reply = nxt[2].previous_reply_ns if nxt is not None else None
        if (not note.synchronised or note.bound_ns is None or reply is None
                or reply < note.reading_ns):
            unusable += 1
            continue
        offset = max(abs(stamp - note.reading_ns), abs(stamp - reply)) + note.bound_ns
        anchors.append(_Anchor(index, stamp, offset, note.drift_ppb, note.source))
    return anchors, unusable


def record_bounds(records: Sequence[tuple[int, int]],
                  notes: Sequence[tuple[int, int, ClockNote]]) -> list[RecordClock]:
    """For each ``(log index, time_ns)`` record, its clock source and bound from the clock
    ``notes`` (``(log index, time_ns, note)`` in log order); module docstring."""
    anchors, _ = _anchors(notes)
    if not anchors:
        why = ("no clock record in the log" if not notes else
               "no synchronised clock record with a measured round trip")
        return [RecordClock("enclave clock (no reading recorded)", None,
                            f"{why}: cannot be shown within the limit")] * len(records)
    stamps = [a.stamp_ns for a in sorted(anchors, key=lambda a: a.stamp_ns)]
    ordered = sorted(anchors, key=lambda a: a.stamp_ns)
    out = []
    for _index, time_ns in records:
        at = bisect.bisect_left(stamps, time_ns)
        best: tuple[int, _Anchor] | None = None
        for anchor in ordered[max(0, at - 2): at + 2]:  # the nearest on either side
            grown = anchor.offset_bound_ns + -(-abs(time_ns - anchor.stamp_ns)
                                               * anchor.drift_ppb // 10**9)
            if best is None or grown < best[0]:
                best = (grown, anchor)
        assert best is not None
        bound, anchor = best
        out.append(RecordClock(
            f"enclave clock, checked against {anchor.source} (clock record {anchor.index})",
            bound, ""))
    return out
