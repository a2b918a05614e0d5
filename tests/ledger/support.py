"""Helpers of the ledger's tests: counting what is read from a ledger's segment files."""

from __future__ import annotations

from pathlib import Path

import pytest

from zcbench.auditlog._fs import OsFileSystem


class CountingFs(OsFileSystem):
    """The real file system, counting the bytes read from the ledger's segment files."""

    def __init__(self) -> None:
        self.segment_bytes = 0

    def read_bytes(self, path: Path) -> bytes:
        data = super().read_bytes(path)
        if path.name.startswith("seg-"):
            self.segment_bytes += len(data)
        return data

    def read_range(self, path: Path, offset: int, length: int | None = None) -> bytes:
        data = super().read_range(path, offset, length)
        if path.name.startswith("seg-"):
            self.segment_bytes += len(data)
        return data


def count_reads(monkeypatch: pytest.MonkeyPatch) -> CountingFs:
    """Have the log store and the ledger read through one :class:`CountingFs` from now on."""
    counting = CountingFs()
    monkeypatch.setattr("zcbench.auditlog.storage.OsFileSystem", lambda: counting)
    monkeypatch.setattr("zcbench.ledger.store.OsFileSystem", lambda: counting)
    return counting
