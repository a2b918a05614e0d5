"""The file-system calls the log store makes, behind a small interface.

Tests swap in a fake (tests/auditlog/test_crash.py) to show that nothing is acknowledged before
its fsync, and what survives a power loss; :class:`OsFileSystem` is the real one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

__all__ = ["AppendFile", "FileSystem", "OsFileSystem", "file_size", "read_range"]


class AppendFile(Protocol):
    """A file opened for appending."""

    def write(self, data: bytes) -> None:
        """Append all of ``data`` (may stay in the page cache until :meth:`fsync`)."""

    def fsync(self) -> None:
        """Make everything written so far durable; raises OSError on failure."""

    def close(self) -> None:
        """Close the file."""


class FileSystem(Protocol):
    """What the store needs from a file system."""

    def open_append(self, path: Path, *, create: bool) -> AppendFile:
        """Open ``path`` for appending; ``create`` makes a new file and fails if it exists."""

    def read_bytes(self, path: Path) -> bytes:
        """The whole content of ``path``."""

    def list_dir(self, path: Path) -> list[str]:
        """The names in folder ``path``."""

    def exists(self, path: Path) -> bool:
        """Whether ``path`` exists."""

    def make_dir(self, path: Path) -> None:
        """Create folder ``path`` (and parents); fine if it exists."""

    def truncate(self, path: Path, size: int) -> None:
        """Cut ``path`` to ``size`` bytes and make that durable."""

    def fsync_dir(self, path: Path) -> None:
        """Make the entries of folder ``path`` durable (new files, removals)."""


class _OsAppendFile:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def fsync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class OsFileSystem:
    """The real file system (POSIX calls)."""

    def open_append(self, path: Path, *, create: bool) -> AppendFile:
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        if create:
            flags |= os.O_CREAT | os.O_EXCL
        return _OsAppendFile(os.open(path, flags, 0o644))

    def read_bytes(self, path: Path) -> bytes:
        return path.read_bytes()

    def read_range(self, path: Path, offset: int, length: int | None = None) -> bytes:
        """``length`` bytes of ``path`` from ``offset`` (None: to the end)."""
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read() if length is None else handle.read(length)

    def size(self, path: Path) -> int:
        return path.stat().st_size

    def list_dir(self, path: Path) -> list[str]:
        return sorted(os.listdir(path))

    def exists(self, path: Path) -> bool:
        return path.exists()

    def make_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)

    def truncate(self, path: Path, size: int) -> None:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_range(fs: FileSystem, path: Path, offset: int, length: int | None = None) -> bytes:
    """``length`` bytes of ``path`` from ``offset`` (None: to the end), read as a range when
    the file system can (:meth:`OsFileSystem.read_range`), else cut from the whole file."""
    ranged = getattr(fs, "read_range", None)
    if ranged is not None:
        data: bytes = ranged(path, offset, length)
        return data
    whole = fs.read_bytes(path)
    return whole[offset:] if length is None else whole[offset:offset + length]


def file_size(fs: FileSystem, path: Path) -> int:
    """The size of ``path`` in bytes (without reading it when the file system can say)."""
    sized = getattr(fs, "size", None)
    if sized is not None:
        size: int = sized(path)
        return size
    return len(fs.read_bytes(path))
