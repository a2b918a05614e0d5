"""Property tests: random and mutated bytes get only the documented error, quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zcbench.nitro import AttestationError, check_attestation, parse_document
from zcbench.nitro._cbor import CborError, decode, encode

VECTORS = Path(__file__).parents[1] / "vectors" / "nitro"
REAL = [(VECTORS / f"doc_{n}.cbor").read_bytes() for n in (1, 2, 3, 4)]
AT = parse_document(REAL[0]).time
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Generous: one parse of a 20 kB input takes well under a millisecond; this bound catches
# only a blow-up (quadratic or exponential behaviour), never measures speed.
LIVENESS_SECONDS = 2.0


def _parse_or_documented_error(data: bytes) -> None:
    start = time.perf_counter()
    check = None
    try:
        parse_document(data)
    except AttestationError as exc:
        check = exc.check
    assert check in {None, "decode", "schema", "algorithm", "signature"}
    assert time.perf_counter() - start < LIVENESS_SECONDS


@FUZZ
@given(st.binary(max_size=20_000))
def test_random_bytes(data: bytes) -> None:
    _parse_or_documented_error(data)


@pytest.mark.slow
@FUZZ
@given(
    st.sampled_from(REAL),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=5000), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    ),
)
def test_mutated_real_documents(base: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(base)
    for position, value in edits:
        data[position % len(data)] = value
    _parse_or_documented_error(bytes(data))


@pytest.mark.slow
@FUZZ
@given(
    st.sampled_from(REAL),
    st.integers(min_value=0, max_value=5000),
    st.integers(min_value=0, max_value=64),
    st.binary(max_size=64),
)
def test_spliced_real_documents(base: bytes, at: int, cut: int, insert: bytes) -> None:
    position = at % (len(base) + 1)
    _parse_or_documented_error(base[:position] + insert + base[position + cut :])


def _certificate_regions(data: bytes) -> list[tuple[int, int]]:
    doc = parse_document(data)
    return [(data.index(der), len(der)) for der in (doc.certificate, *doc.cabundle[1:])]


REGIONS = [_certificate_regions(d) for d in REAL]


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=1100), st.integers(1, 255)),
        min_size=1,
        max_size=3,
    ),
)
def test_full_check_reports_damaged_certificates(
    which: int, region: int, edits: list[tuple[int, int]]
) -> None:
    # Damage inside the certificates must come back as a report naming a check, never as an
    # exception or a warning from the X.509 layer (pytest turns warnings into errors).
    data = bytearray(REAL[which])
    start, size = REGIONS[which][region]
    for offset, xor in edits:
        data[start + offset % size] ^= xor
    assume(bytes(data) != REAL[which])  # two edits may cancel out
    report = check_attestation(bytes(data), at=AT, unsafe_skip_pcr_check=True, allow_debug=True)
    assert not report.verified
    assert report.failed_check in {
        "decode", "schema", "certificate", "algorithm", "root", "chain", "validity",
        "ca_constraints", "key_usage", "signature",
    }  # fmt: skip


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**64), max_value=2**64 - 1)
        | st.binary(max_size=64)
        | st.text(max_size=32),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=8), children, max_size=5)
        ),
        max_leaves=20,
    )
)
def test_cbor_round_trip(value: object) -> None:
    assert decode(encode(value)) == value


@pytest.mark.parametrize("depth", [17, 100, 10_000])
def test_deep_nesting_is_refused_not_a_recursion_error(depth: int) -> None:
    with pytest.raises(CborError, match="nesting"):
        decode(b"\x81" * depth + b"\x00")
    with pytest.raises(AttestationError):
        parse_document(b"\x81" * depth + b"\x00")


def test_huge_declared_lengths_allocate_nothing() -> None:
    for head in (b"\x5b", b"\x7b", b"\x9b", b"\xbb"):
        with pytest.raises(CborError):
            decode(head + b"\x7f\xff\xff\xff\xff\xff\xff\xff")


def test_hostile_inputs_stay_within_a_memory_bound() -> None:
    import tracemalloc

    hostile = [
        b"\x9b" + b"\xff" * 8,  # array of 2**64-1 items
        b"\xbb" + b"\x7f" + b"\xff" * 7,  # map of 2**63-1 pairs
        b"\x5b" + b"\x7f" + b"\xff" * 7,  # byte string of 2**63-1 bytes
        b"\x9f" * 5000,  # indefinite arrays nested 5000 deep
        b"\x84\x44\xa1\x01\x38\x22\xa0\x5a\x7f\xff\xff\xff",  # payload claiming 2 GiB
        REAL[0][:-1] * 3,
    ]
    tracemalloc.start()
    try:
        for data in hostile:
            with pytest.raises(AttestationError):
                parse_document(data)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # far below any declared size above; a few copies of the input


@FUZZ
@given(st.sampled_from(REAL), st.binary(min_size=1, max_size=64))
def test_real_documents_with_any_trailing_junk_are_refused(base: bytes, junk: bytes) -> None:
    with pytest.raises(AttestationError, match="trailing bytes") as exc:
        parse_document(base + junk)
    assert exc.value.check == "decode"
