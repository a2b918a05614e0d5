"""A log's opening records: its boot record (record 0) and the log key its boot document
attests, and the venue's state at start a continuing run logged (record 1).

They are read from a run folder, a log folder or a slice alike; the boot document is verified by
a :data:`~zcbench.auditlog.boot.BootVerifier` (:mod:`zcbench.auditlog.boot`), which this module
only calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.boot import BootVerifier, nitro_boot_verifier
from zcbench.auditlog.checkpoint import log_verifier
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.location import locate_log
from zcbench.auditlog.records import Record, decode_record
from zcbench.auditlog.select import RecordFilter
from zcbench.auditlog.slice import LogSlice

if TYPE_CHECKING:
    from zcbench.strategy import StartState

__all__ = ["LogKey", "boot_record_of", "log_vkey", "start_state_of"]


@dataclass(frozen=True, slots=True)
class LogKey:
    """A log's verified signing key: its origin and C2SP verifier key (``vkey``)."""

    origin: str
    vkey: str
    simulated: bool
    warnings: tuple[str, ...]


def boot_record_of(path: str | Path) -> bytes:
    """The boot record's body (the boot attestation document) of the log or slice at ``path``,
    unverified; raises :class:`~zcbench.auditlog.LogFormatError` when there is none."""
    where = locate_log(path)
    if where.kind == "slice":
        first: Record | None = decode_record(LogSlice.read(where.target).boot.record)
    else:
        first = next((item.record for item in LogWalk(where.target, OsFileSystem()).records()),
                     None)
    if first is None:
        raise LogFormatError(f"{path} holds no readable record, not even a boot record")
    record = first
    if record.index != 0 or record.kind != "boot":
        raise LogFormatError(f"{path}: record 0 is not a boot record")
    return record.body


def log_vkey(
    path: str | Path, *, trust: str | Path = "aws", boot_verifier: BootVerifier | None = None
) -> LogKey:
    """Verify the boot document of the log or slice at ``path`` and return its log key as a
    C2SP verifier key under the log's origin (what witnesses and tlog tools are given)."""
    identity = (boot_verifier or nitro_boot_verifier())(boot_record_of(path), trust)
    vkey = log_verifier(identity.public_key, identity.origin).vkey
    return LogKey(identity.origin, vkey, identity.simulated, identity.warnings)


def start_state_of(path: str | Path) -> StartState | None:
    """The venue's state at start a continuing run logged as its first IN record (record 1,
    seq 0; :class:`zcbench.strategy.StartState`), strictly decoded, or None when it has none."""
    from zcbench.strategy import decode_start, is_start

    for record, _ in iter_records(path, RecordFilter(index_range=(1, 2))):
        if record.kind == "in" and record.seq == 0 and is_start(record.body):
            return decode_start(record.body)
    return None
