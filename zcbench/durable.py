"""Whole-file writes that survive a crash, and outputs that may be a device or a pipe.

:func:`write_atomically` writes a regular file aside, fsyncs it, renames it into place and
fsyncs the folder: after a crash the path holds the old content or the new, never a torn or
empty file. :func:`write_output` is what a command's ``--out FILE`` uses: the same for a
regular (or not yet existing) file, but straight into a path that already exists and is not a
regular file (a named pipe, ``/dev/full``) or lies under ``/dev`` or ``/proc``, which a rename
would replace instead of writing to; ``/dev/stdout`` and ``/dev/fd/N`` are written through the
process's own descriptor. OSErrors propagate; callers turn them into
:class:`~zcbench.errors.EnvError` with :func:`~zcbench.errors.describe_os_error`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["write_atomically", "write_output"]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened for reading cannot be fsynced either
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _named(path: Path) -> Iterator[None]:
    """Give an OSError without a file name (a failed write or fsync) the path written."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def write_atomically(path: Path, data: bytes, mode: int = 0o644, *,
                     exclusive: bool = False) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``, not filtered by the umask).

    With ``exclusive`` the file is created only if ``path`` does not exist (the whole file is
    linked into place, so two writers racing end with one of theirs, whole): raises
    :class:`FileExistsError` otherwise, leaving the file there as it was.
    """
    path = Path(path)
    with _named(path):
        _replace(path, data, mode, exclusive)


def _replace(path: Path, data: bytes, mode: int, exclusive: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)  # FileExistsError when another got there first
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_folder(path.parent)


_STD_NAMES = {"/dev/stdout": 1, "/dev/stderr": 2}
_FD_PREFIXES = ("/dev/fd/", "/proc/self/fd/")


def _own_descriptor(path: Path) -> int | None:
    """The descriptor of this process that ``path`` names (``/dev/stdout``, ``/dev/fd/N``,
    ``/proc/self/fd/N``), or None: writing through it shares its offset with what the process
    itself writes there, so the output and the command's messages never overwrite each other."""
    name = os.path.abspath(path)
    if name in _STD_NAMES:
        return _STD_NAMES[name]
    for prefix in _FD_PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return int(name[len(prefix) :])
    return None


def _is_stream(path: Path) -> bool:
    """Whether ``path`` names a stream to write into rather than a file to replace: anything
    that exists and is not a regular file, and any path under ``/dev`` or ``/proc``."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    return not stat.S_ISREG(info.st_mode) or os.path.abspath(path).startswith(
        ("/dev/", "/proc/")
    )


def write_output(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a command's output ``path``: through this process's own descriptor
    for ``/dev/stdout`` and its kin, into another device or pipe directly (appending), into a
    regular file atomically (:func:`write_atomically`)."""
    path = Path(path)
    own = _own_descriptor(path)
    if own is not None:
        with _named(path):
            for stream in (sys.stdout, sys.stderr):  # what was printed before comes before
                with contextlib.suppress(Exception):
                    stream.flush()
            _write_all(own, data)
        return
    if not _is_stream(path):
        write_atomically(path, data, mode)
        return
    with _named(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            _write_all(fd, data)
            if stat.S_ISREG(os.fstat(fd).st_mode):  # a pipe or a terminal has nothing to fsync
                os.fsync(fd)
        finally:
            os.close(fd)
