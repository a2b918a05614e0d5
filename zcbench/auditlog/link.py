"""The link between runs: what a continuing run's boot names of the run before it.

A run that continues another (``zcbench run BUILD --continue RUN_DIR``) boots with the previous
run's final checkpoint (origin, size, root: the newest checkpoint its log verified to) and the
positions that run's durable records carry at its end. The enclave puts them into its boot
attestation document's ``user_data`` as canonical CBOR ``{"previous": {"origin": text,
"size": uint, "root": 32 bytes, "positions": [[symbol, int], ...]}}`` (positions sorted by
symbol, each named once, none zero), so the link is attested with the log key: a chain of runs
is checked by comparing one run's verified final checkpoint with what the next run's boot
names. A first run's boot document has no ``user_data``.

:func:`encode_link` is the one writer, :func:`decode_link` its strict, bounded reader (through
``zcbench._cbor``; any other encoding of the same content is refused). This module reads no
file and knows no key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from zcbench import _cbor
from zcbench._cbor import describe
from zcbench.errors import DataError

__all__ = ["MAX_LINK_BYTES", "RunLink", "decode_link", "encode_link"]

MAX_LINK_BYTES: Final = 1 << 20
"""Largest encoded link (a few hundred symbols' positions fit many times over)."""
_MAX_SYMBOLS: Final = 10_000
_MAX_TEXT: Final = 256
_INT64: Final = 2**63


@dataclass(frozen=True, slots=True)
class RunLink:
    """The previous run as a continuing run's boot names it: its log's ``origin``, the
    ``size`` and ``root`` of its final checkpoint, and its ``positions`` at its end (sorted
    ``(symbol, quantity)`` pairs, no zero quantity)."""

    origin: str
    size: int
    root: bytes
    positions: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if type(self.origin) is not str or not 0 < len(self.origin) <= _MAX_TEXT:
            raise DataError(f"run link: origin {describe(self.origin)} is not a short text")
        if type(self.size) is not int or not 0 < self.size < _INT64:
            raise DataError(f"run link: size {describe(self.size)} is not a positive int")
        if type(self.root) is not bytes or len(self.root) != 32:
            raise DataError(f"run link: root {describe(self.root)} is not 32 bytes")
        pairs = tuple(sorted((str(s), q) for s, q in self.positions))
        if len(pairs) > _MAX_SYMBOLS:
            raise DataError(f"run link: more than {_MAX_SYMBOLS} positions")
        names = [s for s, _ in pairs]
        if len(set(names)) != len(names):
            raise DataError("run link: a symbol's position is named twice")
        for s, q in pairs:
            if not 0 < len(s) <= _MAX_TEXT or type(q) is not int or not -_INT64 <= q < _INT64:
                raise DataError(f"run link: position {describe(s)} {describe(q)} is not "
                                "(symbol, int64)")
            if q == 0:
                raise DataError(f"run link: position {s} is zero (zero positions are left out)")
        object.__setattr__(self, "positions", pairs)

    @property
    def position_map(self) -> dict[str, int]:
        """The positions as a dict."""
        return dict(self.positions)

    def describe(self) -> str:
        """One line for people."""
        held = ", ".join(f"{s} {q:+,}" for s, q in self.positions) or "none"
        root = self.root.hex()[:16]
        return f"{self.origin} at size {self.size} (root {root}...), positions {held}"


def encode_link(link: RunLink) -> bytes:
    """The boot document's ``user_data`` naming ``link`` (canonical CBOR)."""
    doc = {"previous": {"origin": link.origin, "size": link.size, "root": link.root,
                        "positions": [[s, q] for s, q in link.positions]}}
    data: bytes = _cbor.encode_canonical(doc)
    return data


def decode_link(data: bytes | None) -> RunLink | None:
    """The link a boot document's ``user_data`` names (None when it has none); raises
    :class:`DataError` unless it is exactly :func:`encode_link`'s encoding of a valid link."""
    if data is None:
        return None
    if len(data) > MAX_LINK_BYTES:
        raise DataError(f"run link: {len(data)} bytes, at most {MAX_LINK_BYTES}")
    try:
        doc: Any = _cbor.decode(bytes(data), canonical=True, max_depth=5,
                                max_bytes=MAX_LINK_BYTES)
    except _cbor.CborError as exc:
        raise DataError(f"run link: not canonical CBOR: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"previous"}:
        raise DataError("run link: the boot user_data is not a map of exactly 'previous'")
    prev = doc["previous"]
    if not isinstance(prev, dict) or set(prev) != {"origin", "size", "root", "positions"}:
        raise DataError("run link: 'previous' must hold exactly origin, size, root, positions")
    positions = prev["positions"]
    if not isinstance(positions, list) or not all(
        isinstance(p, list) and len(p) == 2 and type(p[0]) is str for p in positions
    ):
        raise DataError("run link: positions must be [symbol, int] pairs")
    link = RunLink(prev["origin"], prev["size"], prev["root"],
                   tuple((p[0], p[1]) for p in positions))
    if encode_link(link) != bytes(data):
        raise DataError("run link: positions are not sorted by symbol")
    return link
