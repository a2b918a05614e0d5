"""Reading a measurement commitment (``commitment.json``) for its expected PCRs.

Owns only the reading side of the contract in DESIGN.md (the packager writes the file)::

    {"schema": "zcbench.commitment/1", "strategy": name, "pcrs": {"0": hex, "1": hex, "2": hex},
     "strategy_sha256": hex, "lock_sha256": hex, "zcbench_version": str, "source_date_epoch": int}

Strict: anything malformed is a :class:`~zcbench.errors.DataError` naming the field. Fields this
reader does not use are checked only for presence of the schema tag, so the packager may add
facts without breaking verifiers; the PCRs must be 32, 48 or 64 bytes of lowercase or uppercase
hex under decimal index keys 0..31.
"""

from __future__ import annotations

import json
import os
import re

from zcbench.errors import DataError, EnvError, UsageError

__all__ = ["COMMITMENT_SCHEMA", "load_commitment_pcrs", "parse_commitment_pcrs", "pcr_index"]

COMMITMENT_SCHEMA = "zcbench.commitment/1"

_INDEX = re.compile(r"(?:0|[1-9][0-9]?)\Z")
_HEX = re.compile(r"[0-9a-fA-F]*\Z")
_MAX_BYTES = 1 << 20


def pcr_index(text: str) -> int | None:
    """The PCR index written in ``text`` (ASCII decimal 0..31, no sign, space or leading zero),
    or ``None``: the one rule for commitment keys and command-line ``N=HEX`` arguments.

    ``str.isdigit`` and ``int`` accept other scripts' digits ("²", Arabic-Indic "٠"); an index
    is only ever ASCII.
    """
    if not isinstance(text, str) or not _INDEX.match(text):
        return None
    index = int(text)
    return index if index <= 31 else None


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise DataError(f"commitment has the key {key!r} twice")
        out[key] = value
    return out


def parse_commitment_pcrs(text: str | bytes, *, source: str = "commitment") -> dict[int, bytes]:
    """The PCRs committed in a ``commitment.json`` body (see the module docstring)."""
    try:
        doc = json.loads(text, object_pairs_hook=_reject_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, DataError):
            raise DataError(f"{source}: {exc}") from exc
        raise DataError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{source} must be a JSON object")
    if doc.get("schema") != COMMITMENT_SCHEMA:
        raise DataError(
            f"{source} has schema {doc.get('schema')!r}; expected {COMMITMENT_SCHEMA!r}"
        )
    pcrs = doc.get("pcrs")
    if not isinstance(pcrs, dict) or not pcrs:
        raise DataError(f"{source}: 'pcrs' must be a non-empty object of index -> hex")
    out: dict[int, bytes] = {}
    for key, value in pcrs.items():
        if pcr_index(key) is None:
            raise DataError(f"{source}: PCR index {key!r} is not a decimal in 0..31")
        if not isinstance(value, str) or not _HEX.match(value) or len(value) not in (64, 96, 128):
            raise DataError(f"{source}: PCR{key} must be 64, 96 or 128 hex digits (32/48/64 bytes)")
        out[int(key)] = bytes.fromhex(value)
    return dict(sorted(out.items()))


def load_commitment_pcrs(path: str | os.PathLike[str]) -> dict[int, bytes]:
    """Read ``path`` (a ``commitment.json``) and return its PCRs, index -> bytes."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_BYTES + 1)
    except FileNotFoundError as exc:
        raise UsageError(f"commitment file {os.fspath(path)} does not exist") from exc
    except OSError as exc:
        raise EnvError(f"cannot read commitment file {os.fspath(path)}: {exc.strerror}") from exc
    if len(raw) > _MAX_BYTES:
        raise DataError(f"commitment file {os.fspath(path)} is larger than 1 MiB")
    return parse_commitment_pcrs(raw, source=os.fspath(path))
