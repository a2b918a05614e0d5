"""Records: deterministic encoding, strict decoding (every non-canonical or ill-typed form is
refused), a fuzzed decoder, and the benchmark's smoke run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog.records import KINDS, Record, decode_record, encode_record

REPO = Path(__file__).resolve().parents[2]


def _doc(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {"v": 1, "index": 3, "kind": "in", "seq": 1, "time_ns": 10,
                              "event_time_ns": 9, "body": b"batch"}
    doc.update(changes)
    return doc


def test_round_trip_and_determinism() -> None:
    data = encode_record(index=3, kind="in", seq=1, time_ns=10, event_time_ns=9, body=b"batch")
    assert data == cbor2.dumps(_doc(), canonical=True)
    assert decode_record(data) == Record(3, "in", 1, 10, 9, b"batch")
    # Canonical key order: shorter keys first, then bytewise.
    assert list(cbor2.loads(data)) == ["v", "seq", "body", "kind", "index", "time_ns",
                                       "event_time_ns"]
    boot = encode_record(index=0, kind="boot", time_ns=-5, body=b"")
    assert decode_record(boot).seq is None


@given(
    index=st.integers(0, 2**64 - 1),
    kind=st.sampled_from(KINDS),
    seq=st.integers(0, 2**64 - 1),
    time_ns=st.integers(-(2**63), 2**63 - 1),
    event_time_ns=st.none() | st.integers(-(2**63), 2**63 - 1),
    body=st.binary(max_size=300),
)
@settings(max_examples=200, deadline=None)
def test_a_record_is_the_canonical_encoding_of_its_fields(
    index: int, kind: str, seq: int, time_ns: int, event_time_ns: int | None, body: bytes
) -> None:
    # written as built, in canonical key order: the bytes a canonical writer gives, whatever the
    # fields' values (a seq only for a batch's records)
    seq_or_none = seq if kind in ("in", "out") else None
    data = encode_record(index=index, kind=kind, seq=seq_or_none,  # type: ignore[arg-type]
                         time_ns=time_ns, event_time_ns=event_time_ns, body=body)
    assert data == cbor2.dumps(_doc(index=index, kind=kind, seq=seq_or_none, time_ns=time_ns,
                                    event_time_ns=event_time_ns, body=body), canonical=True)
    assert decode_record(data) == Record(index, kind, seq_or_none, time_ns,  # type: ignore[arg-type]
                                         event_time_ns, body)


@pytest.mark.parametrize(
    "doc",
    [
        _doc(v=2),
        _doc(v=True),
        _doc(index=-1),
        _doc(index=True),
        _doc(index=2**64),
        _doc(kind="IN"),
        _doc(kind=b"in"),
        _doc(seq=None),
        _doc(kind="boot"),  # boot with a batch seq
        _doc(time_ns=2**63),
        _doc(time_ns=1.5),
        _doc(event_time_ns="9"),
        _doc(body="text"),
        _doc(extra=1),
        {k: v for k, v in _doc().items() if k != "body"},
    ],
)
def test_ill_formed_records_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(LogFormatError):
        decode_record(cbor2.dumps(doc, canonical=True))


def test_non_canonical_encodings_are_refused() -> None:
    good = encode_record(index=3, kind="in", seq=1, time_ns=10, event_time_ns=9, body=b"batch")
    # The same map in insertion (non-canonical) key order.
    unordered = cbor2.dumps(_doc(), canonical=False)
    assert unordered != good
    # An integer in a longer form than needed: 0x18 0x03 instead of 0x03 for index 3.
    long_int = good.replace(b"eindex\x03", b"eindex\x18\x03")
    assert long_int != good
    # An indefinite-length map.
    indefinite = b"\xbf" + good[1:] + b"\xff"
    for data in (unordered, long_int, indefinite, good + b"\x00", good[:-1], b"", b"\xa0"):
        with pytest.raises(LogFormatError):
            decode_record(data)


def test_encode_refuses_bad_fields() -> None:
    with pytest.raises(ValueError, match="kind"):
        encode_record(index=0, kind="bogus", time_ns=0, body=b"")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seq"):
        encode_record(index=0, kind="out", time_ns=0, body=b"")
    with pytest.raises(ValueError, match="body"):
        encode_record(index=0, kind="note", time_ns=0, body=bytearray(b"x"))  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    index=st.integers(0, 2**64 - 1),
    kind=st.sampled_from(KINDS),
    seq=st.integers(0, 2**64 - 1),
    time_ns=st.integers(-(2**63), 2**63 - 1),
    event=st.none() | st.integers(-(2**63), 2**63 - 1),
    body=st.binary(max_size=300),
)
def test_round_trip_property(index: int, kind: str, seq: int, time_ns: int,
                             event: int | None, body: bytes) -> None:
    batch = kind in ("in", "out")
    data = encode_record(index=index, kind=kind, seq=seq if batch else None,  # type: ignore[arg-type]
                         time_ns=time_ns, event_time_ns=event, body=body)
    record = decode_record(data)
    assert (record.index, record.kind, record.body) == (index, kind, body)
    assert encode_record(index=record.index, kind=record.kind, seq=record.seq,
                         time_ns=record.time_ns, event_time_ns=record.event_time_ns,
                         body=record.body) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_fuzz_only_raises_log_format_error(data: bytes) -> None:
    try:
        record = decode_record(data)
    except LogFormatError:
        return
    # Whatever decodes is canonical: it encodes back to exactly the same bytes.
    assert encode_record(index=record.index, kind=record.kind, seq=record.seq,
                         time_ns=record.time_ns, event_time_ns=record.event_time_ns,
                         body=record.body) == data


@pytest.mark.slow
def test_benchmark_quick_run_completes() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_auditlog.py"), "--quick"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "RATIO verification time / floor time" in proc.stdout
    assert "RATIO append events/s / 100,000 target" in proc.stdout
