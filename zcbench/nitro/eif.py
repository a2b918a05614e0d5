"""Enclave Image Format (EIF) files: a strict reader, a small writer, and PCR0/1/2/8.

Owns the EIF layout and the measurement algorithm nitro-cli uses (aws/aws-nitro-enclaves-image-
format ``src/defs/mod.rs`` and ``src/utils/mod.rs``): every section's data, in file order, streams
into plain SHA-384 hashers; kernel and cmdline feed PCR0 and PCR1, the first ramdisk PCR0 and PCR1,
later ramdisks PCR0 and PCR2, the signing certificate PCR8, metadata nothing; each register is then
``SHA384(48 zero bytes || digest)``. The local image is measured by the same code
(:func:`pcrs_for_sections`), so a local PCR means exactly what a Nitro PCR means.

The reader is strict and bounded: it refuses a bad magic or version, more sections than the header
can hold, sections past the end of the file, overlapping or out-of-order sections, trailing bytes,
unknown section types and a wrong CRC, each with an :class:`EifError` naming the offset or section.
It never reads more than one chunk at a time, so a large EIF costs no more memory than a small one.
This module does not verify the signature section's COSE signature; it reports PCR8 only.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from zcbench import _cbor
from zcbench.errors import DataError

__all__ = [
    "EIF_HEADER_SIZE",
    "EIF_MAGIC",
    "MAX_METADATA_SIZE",
    "MAX_NUM_SECTIONS",
    "MAX_SIGNATURE_SIZE",
    "PCR_EMPTY",
    "SECTION_HEADER_SIZE",
    "EifError",
    "EifHeader",
    "EifMeasurement",
    "EifSection",
    "SectionType",
    "format_pcrs",
    "measure_eif",
    "measure_eif_file",
    "pcrs_for_sections",
    "write_eif",
]

EIF_MAGIC: Final = b".eif"
EIF_HEADER_SIZE: Final = 548
SECTION_HEADER_SIZE: Final = 12
MAX_NUM_SECTIONS: Final = 32
MAX_SIGNATURE_SIZE: Final = 32768
MAX_METADATA_SIZE: Final = 1 << 20
SUPPORTED_VERSIONS: Final = (2, 3, 4)
_HEADER: Final = struct.Struct(">4sHHQQHH32Q32QII")
_SECTION: Final = struct.Struct(">HHQ")
_CRC_OFFSET: Final = 0x220
_CHUNK: Final = 1 << 20
_ZERO48: Final = bytes(48)

PCR_EMPTY: Final = bytes.fromhex(
    "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c"
    "10edb30948c90ba67310f7b964fc500a"
)
"""A PCR that nothing was measured into, e.g. PCR2 of an image with a single ramdisk."""


class EifError(DataError):
    """An EIF file is malformed; the message names the offset or section and what was wrong."""


class SectionType(enum.IntEnum):
    """EIF section types (0 and anything above 5 are invalid)."""

    KERNEL = 1
    CMDLINE = 2
    RAMDISK = 3
    SIGNATURE = 4
    METADATA = 5


@dataclass(frozen=True, slots=True)
class EifHeader:
    """The fixed 548-byte EIF header (only the first ``num_sections`` table entries are used)."""

    version: int
    flags: int
    default_mem: int
    default_cpus: int
    num_sections: int
    section_offsets: tuple[int, ...]
    section_sizes: tuple[int, ...]
    crc32: int


@dataclass(frozen=True, slots=True)
class EifSection:
    """One section as found in the file: where it is, its type and flags, its data size."""

    index: int
    offset: int
    type: SectionType
    flags: int
    size: int


@dataclass(frozen=True, slots=True)
class EifMeasurement:
    """What reading an EIF gives: the header, the section table and the PCRs.

    ``pcrs`` holds 0, 1 and 2, plus 8 when the image is signed; each value is 48 bytes.
    ``metadata`` is the metadata section's JSON object (build facts; never measured).
    """

    header: EifHeader
    sections: tuple[EifSection, ...]
    pcrs: Mapping[int, bytes]
    metadata: Mapping[str, object] | None = None

    @property
    def signed(self) -> bool:
        return 8 in self.pcrs


def _register(digest: bytes) -> bytes:
    return hashlib.sha384(_ZERO48 + digest).digest()


class _Measurer:
    """Streaming PCR0/1/2/8 state fed section by section in file order."""

    def __init__(self) -> None:
        self.h0 = hashlib.sha384()
        self.h1 = hashlib.sha384()
        self.h2 = hashlib.sha384()
        self.h8: bytes | None = None
        self.ramdisks = 0

    def feed(self, kind: SectionType, chunk: bytes) -> None:
        if kind in (SectionType.KERNEL, SectionType.CMDLINE):
            self.h0.update(chunk)
            self.h1.update(chunk)
        elif kind is SectionType.RAMDISK:
            self.h0.update(chunk)
            (self.h1 if self.ramdisks == 0 else self.h2).update(chunk)

    def end_section(self, kind: SectionType) -> None:
        if kind is SectionType.RAMDISK:
            self.ramdisks += 1

    def pcrs(self) -> dict[int, bytes]:
        out = {
            0: _register(self.h0.digest()),
            1: _register(self.h1.digest()),
            2: _register(self.h2.digest()),
        }
        if self.h8 is not None:
            out[8] = _register(self.h8)
        return out


def pcrs_for_sections(sections: Iterable[tuple[SectionType, bytes]]) -> dict[int, bytes]:
    """PCR0/1/2 (and 8 for a signature section) of sections given in file order.

    This is the measurement of :func:`measure_eif` without the container, used for the local
    image, whose sections are separate files.
    """
    m = _Measurer()
    for kind, data in sections:
        kind = SectionType(kind)
        if kind is SectionType.SIGNATURE:
            m.h8 = hashlib.sha384(_signing_certificate_der(data, where="signature")).digest()
            continue
        m.feed(kind, data)
        m.end_section(kind)
    return m.pcrs()


def format_pcrs(pcrs: Mapping[int, bytes]) -> dict[str, str]:
    """PCRs as the JSON shape every zcbench document uses: ``{"0": lowercase hex, ...}``."""
    return {str(i): pcrs[i].hex() for i in sorted(pcrs)}


def _signing_certificate_der(data: bytes, *, where: str) -> bytes:
    """DER of the first entry's ``signing_certificate`` (a PEM stored as an array of uints)."""
    try:  # written by nitro-cli, not by zcbench: any valid encoding, but exactly one item
        value = _cbor.decode(data, canonical=False, indefinite=True, max_depth=3,
                             max_bytes=MAX_SIGNATURE_SIZE)
    except _cbor.CborError as exc:
        raise EifError(f"EIF {where}: signature section is not one CBOR item ({exc})") from None
    if not isinstance(value, list) or not value or not isinstance(value[0], dict):
        raise EifError(f"EIF {where}: signature section must be a non-empty array of maps")
    pem_ints = value[0].get("signing_certificate")
    if not isinstance(pem_ints, list) or not all(
        type(b) is int and 0 <= b <= 255 for b in pem_ints
    ):
        raise EifError(f"EIF {where}: signing_certificate must be an array of byte values")
    try:
        cert = x509.load_pem_x509_certificate(bytes(pem_ints))
    except ValueError as exc:
        raise EifError(
            f"EIF {where}: signing_certificate is not a PEM certificate ({exc})"
        ) from None
    return cert.public_bytes(serialization.Encoding.DER)


def _metadata(data: bytes, *, where: str) -> dict[str, object]:
    """The metadata section: a JSON object, as nitro-cli requires (it is never measured)."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EifError(f"EIF {where}: metadata section is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise EifError(f"EIF {where}: metadata section must be a JSON object")
    return value


def _read_exact(fp: BinaryIO, n: int, *, where: str) -> bytes:
    data = fp.read(n)
    if len(data) != n:
        raise EifError(f"EIF truncated at {where}: wanted {n} bytes, got {len(data)}")
    return data


def _parse_header(raw: bytes) -> EifHeader:
    fields = _HEADER.unpack(raw)
    magic, version, flags, mem, cpus, _reserved, num = fields[:7]
    offsets = tuple(fields[7 : 7 + 32])
    sizes = tuple(fields[39 : 39 + 32])
    crc = fields[72]
    if magic != EIF_MAGIC:
        raise EifError(f"EIF header at offset 0: bad magic {magic!r}, expected {EIF_MAGIC!r}")
    if version not in SUPPORTED_VERSIONS:
        raise EifError(
            f"EIF header at offset 0x4: version {version} is not supported "
            f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    if num == 0 or num > MAX_NUM_SECTIONS:
        raise EifError(
            f"EIF header at offset 0x1a: num_sections {num} must be 1..{MAX_NUM_SECTIONS}"
        )
    for i in range(num, MAX_NUM_SECTIONS):
        if offsets[i] or sizes[i]:
            raise EifError(f"EIF header: section table entry {i} is set past num_sections {num}")
    return EifHeader(version, flags, mem, cpus, num, offsets, sizes, crc)


def measure_eif(source: bytes | BinaryIO, *, size: int | None = None) -> EifMeasurement:
    """Read and check an EIF (bytes or a seekable binary file) and compute its PCRs.

    ``size`` is the file's length when ``source`` is a file object (found by seeking otherwise).
    Raises :class:`EifError` on any malformation, naming where.
    """
    fp: BinaryIO = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    if size is None:
        fp.seek(0, io.SEEK_END)
        size = fp.tell()
    fp.seek(0)
    if size < EIF_HEADER_SIZE:
        raise EifError(f"EIF is {size} bytes, shorter than its {EIF_HEADER_SIZE}-byte header")
    raw = _read_exact(fp, EIF_HEADER_SIZE, where="header")
    header = _parse_header(raw)
    crc = zlib.crc32(raw[:_CRC_OFFSET])
    m = _Measurer()
    metadata: dict[str, object] | None = None
    sections: list[EifSection] = []
    expected_offset = EIF_HEADER_SIZE
    counts: dict[SectionType, int] = dict.fromkeys(SectionType, 0)
    for i in range(header.num_sections):
        offset, declared = header.section_offsets[i], header.section_sizes[i]
        where = f"section {i} (offset {offset})"
        if offset != expected_offset:
            raise EifError(
                f"EIF {where}: expected the section to start at {expected_offset} "
                "(sections are contiguous and in table order)"
            )
        if offset + SECTION_HEADER_SIZE > size or declared > size - offset - SECTION_HEADER_SIZE:
            raise EifError(
                f"EIF {where}: section of {declared} bytes runs past the end of the "
                f"{size}-byte file"
            )
        fp.seek(offset)
        sraw = _read_exact(fp, SECTION_HEADER_SIZE, where=where)
        stype, sflags, ssize = _SECTION.unpack(sraw)
        if ssize != declared:
            raise EifError(
                f"EIF {where}: section header says {ssize} bytes, header table says {declared}"
            )
        try:
            kind = SectionType(stype)
        except ValueError:
            raise EifError(f"EIF {where}: invalid section type {stype}") from None
        counts[kind] += 1
        if kind is SectionType.SIGNATURE and ssize > MAX_SIGNATURE_SIZE:
            raise EifError(
                f"EIF {where}: signature section of {ssize} bytes exceeds {MAX_SIGNATURE_SIZE}"
            )
        if kind is SectionType.METADATA and ssize > MAX_METADATA_SIZE:
            raise EifError(
                f"EIF {where}: metadata section of {ssize} bytes exceeds {MAX_METADATA_SIZE}"
            )
        crc = zlib.crc32(sraw, crc)
        if kind is SectionType.METADATA:
            data = _read_exact(fp, ssize, where=where)
            crc = zlib.crc32(data, crc)
            metadata = _metadata(data, where=where)
        elif kind is SectionType.SIGNATURE:
            data = _read_exact(fp, ssize, where=where)
            crc = zlib.crc32(data, crc)
            m.h8 = hashlib.sha384(_signing_certificate_der(data, where=where)).digest()
        else:
            remaining = ssize
            while remaining:
                chunk = _read_exact(fp, min(_CHUNK, remaining), where=where)
                remaining -= len(chunk)
                crc = zlib.crc32(chunk, crc)
                m.feed(kind, chunk)
            m.end_section(kind)
        sections.append(EifSection(i, offset, kind, sflags, ssize))
        expected_offset = offset + SECTION_HEADER_SIZE + ssize
    if expected_offset != size:
        raise EifError(
            f"EIF has {size - expected_offset} trailing bytes after the last section "
            f"(offset {expected_offset})"
        )
    _check_section_counts(header.version, counts)
    if crc != header.crc32:
        raise EifError(
            f"EIF header at offset 0x220: CRC32 mismatch, header says {header.crc32:08x}, "
            f"contents give {crc:08x}"
        )
    return EifMeasurement(header, tuple(sections), m.pcrs(), metadata)


def _check_section_counts(version: int, counts: Mapping[SectionType, int]) -> None:
    for kind in (SectionType.KERNEL, SectionType.CMDLINE):
        if counts[kind] != 1:
            raise EifError(
                f"EIF must hold exactly one {kind.name.lower()} section, has {counts[kind]}"
            )
    if counts[SectionType.RAMDISK] == 0:
        raise EifError("EIF holds no ramdisk section")
    if counts[SectionType.SIGNATURE] > 1 or counts[SectionType.METADATA] > 1:
        raise EifError("EIF holds more than one signature or metadata section")
    if counts[SectionType.SIGNATURE] and version < 3:
        raise EifError(f"EIF version {version} cannot hold a signature section (needs 3+)")
    if version >= 4 and counts[SectionType.METADATA] != 1:
        raise EifError(f"EIF version {version} must hold a metadata section")
    if counts[SectionType.METADATA] and version < 4:
        raise EifError(f"EIF version {version} cannot hold a metadata section (needs 4+)")


def measure_eif_file(path: str | Path) -> EifMeasurement:
    """:func:`measure_eif` over a file on disk, read chunk by chunk."""
    p = Path(path)
    try:
        with p.open("rb") as fp:
            return measure_eif(fp, size=p.stat().st_size)
    except EifError as exc:
        raise EifError(f"{p.name}: {exc}") from None


def write_eif(
    sections: Sequence[tuple[SectionType, bytes]],
    *,
    version: int = 4,
    flags: int = 0,
    default_mem: int = 0,
    default_cpus: int = 0,
    section_flags: int = 0,
) -> bytes:
    """An EIF holding ``sections`` in the given order, with a correct header and CRC.

    Meant for tests and tools that need small images; it does not enforce nitro-cli's section
    order, so tests can build unusual (but well-formed) files too.
    """
    if not 0 < len(sections) <= MAX_NUM_SECTIONS:
        raise EifError(f"an EIF holds 1..{MAX_NUM_SECTIONS} sections, got {len(sections)}")
    offsets = [0] * MAX_NUM_SECTIONS
    sizes = [0] * MAX_NUM_SECTIONS
    body = bytearray()
    pos = EIF_HEADER_SIZE
    for i, (kind, data) in enumerate(sections):
        offsets[i] = pos
        sizes[i] = len(data)
        body += _SECTION.pack(int(kind), section_flags, len(data)) + data
        pos += SECTION_HEADER_SIZE + len(data)
    head = _HEADER.pack(
        EIF_MAGIC,
        version,
        flags,
        default_mem,
        default_cpus,
        0,
        len(sections),
        *offsets,
        *sizes,
        0,
        0,
    )
    crc = zlib.crc32(bytes(body), zlib.crc32(head[:_CRC_OFFSET]))
    return head[:_CRC_OFFSET] + struct.pack(">I", crc) + bytes(body)
