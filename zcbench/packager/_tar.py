"""Deterministic tar archives: the same members give the same bytes on any machine.

Entries are sorted by name; every entry is a regular file with mtime ``SOURCE_DATE_EPOCH``,
uid/gid 0, empty owner names and mode 0644 (0755 when marked executable); the format is plain
USTAR, so no PAX header can carry host data (atime, ctime, user names). Nothing here reads the
file system: members are given as bytes.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from typing import Final

from zcbench.errors import DataError, UsageError

__all__ = ["deterministic_tar", "read_tar_members"]

MAX_MEMBERS: Final = 10_000


def deterministic_tar(
    members: Mapping[str, bytes],
    *,
    source_date_epoch: int,
    executable: frozenset[str] = frozenset(),
) -> bytes:
    """A USTAR archive of ``members`` (name -> bytes), byte-identical for the same inputs."""
    if type(source_date_epoch) is not int or not 0 <= source_date_epoch < 8**11:
        raise UsageError(
            f"SOURCE_DATE_EPOCH must be an int in [0, 8**11), got {source_date_epoch!r}"
        )
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(members):
            if name.startswith("/") or ".." in name.split("/") or not name:
                raise UsageError(f"tar member name {name!r} must be relative and stay inside")
            data = members[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = source_date_epoch
            info.mode = 0o755 if name in executable else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def read_tar_members(data: bytes, *, max_total: int = 256 * 1024 * 1024) -> dict[str, bytes]:
    """The regular-file members of a tar written by :func:`deterministic_tar` (strict)."""
    out: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                if not info.isreg() or info.name.startswith("/") or ".." in info.name.split("/"):
                    raise DataError(f"tar member {info.name!r} is not a plain relative file")
                if info.name in out or len(out) >= MAX_MEMBERS:
                    raise DataError(f"tar member {info.name!r} repeated or too many members")
                total += info.size
                if total > max_total:
                    raise DataError("tar members exceed the size bound")
                f = tar.extractfile(info)
                assert f is not None
                out[info.name] = f.read()
    except tarfile.TarError as exc:
        raise DataError(f"not a readable tar archive: {exc}") from None
    return out
