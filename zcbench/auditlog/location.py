"""What a path handed to the audit log is: a run folder, a log folder, an exported slice, or none.

Every reader of a log (verify, show, export, replay, the DataFrame view, the widgets) resolves its
path here first, so each says the same thing about a path that is not a log: a build folder, an
attestation document or a JSON file is refused as a usage error (exit 2), never read as an empty
or corrupt log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from zcbench.auditlog._frames import CHECKPOINT_FILE, segment_number
from zcbench.errors import UsageError

__all__ = ["SLICE_LEAD", "LogLocation", "locate_log", "origin_hint", "resolve_log_path"]

SLICE_LEAD: Final = b"\xa5\x64boot"
"""How every exported slice begins: a canonical CBOR map of five keys whose first is "boot"."""

_RUN_FILES: Final = ("summary.json", "boot.cbor")


@dataclass(frozen=True, slots=True)
class LogLocation:
    """A resolved log path: ``kind``, the log folder or slice file, and the run folder if any."""

    kind: Literal["log", "slice"]
    target: Path
    run_folder: Path | None


def _holds_log_files(folder: Path) -> bool:
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return False
    return CHECKPOINT_FILE in names or any(segment_number(n) is not None for n in names)


def _what_it_looks_like(path: Path) -> str:
    if path.is_dir():
        if (path / "commitment.json").is_file():
            return "it is a build folder (it holds commitment.json); pass the run folder"
        return "it holds no log segments, no log/ folder and no run files"
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError:
        return "it cannot be read"
    if not head:
        return "it is empty"
    if head[:1] in (b"{", b"["):
        return "it is a JSON file"
    if head[:1] in (b"\x84", b"\xd2"):
        return ("it looks like an attestation document (COSE_Sign1): use 'zcbench verify "
                "attestation'")
    return "it does not start like a zcbench.log-slice/1 file"


def locate_log(path: str | Path) -> LogLocation:
    """Resolve ``path``; raises :class:`UsageError` when it is missing or is not a log at all.

    A run folder is recognised by its ``log/`` folder or its run files (a run whose ``log/``
    was deleted is still a run: verifying it reports the missing log as damage); a log folder
    by its segment or checkpoint files; a slice by its leading bytes.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist: give a run folder, a log folder or an "
                         "exported slice")
    if path.is_file():
        try:
            with path.open("rb") as handle:
                lead = handle.read(len(SLICE_LEAD))
        except OSError as exc:
            raise UsageError(f"{path} cannot be read: {exc.strerror}") from None
        if lead == SLICE_LEAD:
            return LogLocation("slice", path, None)
        raise UsageError(f"{path} is not a log: {_what_it_looks_like(path)}")
    if (path / "log").is_dir() or any((path / name).is_file() for name in _RUN_FILES):
        return LogLocation("log", path / "log", path)
    if _holds_log_files(path):
        run = path.parent if any((path.parent / n).is_file() for n in _RUN_FILES) else None
        return LogLocation("log", path, run)
    raise UsageError(f"{path} is not a log: {_what_it_looks_like(path)}")


def resolve_log_path(path: str | Path) -> tuple[Literal["log", "slice"], Path, Path | None]:
    """:func:`locate_log` as a tuple ``(kind, log folder or slice file, run folder or None)``."""
    where = locate_log(path)
    return where.kind, where.target, where.run_folder


def origin_hint(path: str | Path) -> str | None:
    """The origin the newest parsable checkpoint of the log at ``path`` names, unverified (a
    lookup key, e.g. for witness state); None for a slice or a log without one."""
    from zcbench.auditlog._errors import LogFormatError
    from zcbench.auditlog._fs import OsFileSystem
    from zcbench.auditlog._walk import LogWalk
    from zcbench.auditlog.checkpoint import parse_checkpoint_note

    where = locate_log(path)
    if where.kind != "log":
        return None
    notes, _, _ = LogWalk(where.target, OsFileSystem()).checkpoint_notes()
    for note, _ in reversed(notes):
        try:
            return parse_checkpoint_note(note).origin
        except LogFormatError:
            continue  # an unparsable note is simply not a hint
    return None
