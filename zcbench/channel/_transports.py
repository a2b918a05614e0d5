"""Transports: where a connection's byte stream comes from.

``unix`` (``AF_UNIX``, the local default), ``vsock`` (``AF_VSOCK``, Nitro; a thin subclass of the
same socket code) and ``memory`` (an in-process pair for tests). Addresses are strings:
``unix:/path/to/socket``, ``vsock:CID:PORT``. A registry maps the scheme to its transport.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import tempfile
import threading
from pathlib import Path
from typing import ClassVar, Final

from zcbench.channel._frames import MAX_FRAME
from zcbench.channel._stream import Connection
from zcbench.errors import EnvError, UsageError

__all__ = [
    "SOCKET_BUFFER",
    "TRANSPORTS",
    "VMADDR_CID_ANY",
    "Listener",
    "MemoryStream",
    "SocketTransport",
    "UnixTransport",
    "VsockTransport",
    "connect",
    "listen",
    "memory_pair",
    "private_socket_dir",
]

VMADDR_CID_ANY: Final = 0xFFFFFFFF


SOCKET_BUFFER: Final = 4 * 1024 * 1024
"""Send and receive buffer asked for on every stream socket (the kernel may cap it)."""


def _big_buffers(sock: socket.socket) -> None:
    # With the default ~200 KB a pipelined host has only about four 50 KB batches in the pipe,
    # and either side stalls in sendall while the other is busy: measured here, the live run's
    # throughput doubles with a few MB. Best effort: a smaller cap only costs throughput.
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)


class Listener:
    """A listening socket that hands out framed connections."""

    def __init__(self, sock: socket.socket, *, max_frame: int, cleanup: Path | None = None):
        self._sock = sock
        self._max_frame = max_frame
        self._cleanup = cleanup

    def accept(self, timeout: float | None = None) -> Connection:
        """The next connection; raises ``TimeoutError`` after ``timeout`` seconds."""
        self._sock.settimeout(timeout)
        conn, _ = self._sock.accept()
        conn.settimeout(None)
        _big_buffers(conn)
        return Connection(conn, max_frame=self._max_frame, name="accepted")

    def close(self) -> None:
        """Stop listening (and remove the Unix socket file)."""
        self._sock.close()
        if self._cleanup is not None:
            self._cleanup.unlink(missing_ok=True)


class SocketTransport:
    """Stream-socket transport; subclasses say the address family and how to parse addresses."""

    scheme: ClassVar[str] = ""
    family: ClassVar[int] = -1

    def parse(self, address: str) -> object:
        raise NotImplementedError

    def listen(self, address: str, *, max_frame: int = MAX_FRAME, backlog: int = 1) -> Listener:
        """Bind and listen on ``address``."""
        sock = self._socket()
        try:
            sock.bind(self.parse(address))  # type: ignore[arg-type]
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            raise EnvError(f"cannot listen on {self.scheme}:{address}: {exc}") from None
        return Listener(sock, max_frame=max_frame)

    def connect(
        self, address: str, *, timeout: float = 10.0, max_frame: int = MAX_FRAME
    ) -> Connection:
        """Connect to ``address``; raises :class:`EnvError` if nobody answers."""
        sock = self._socket()
        sock.settimeout(timeout)
        try:
            sock.connect(self.parse(address))  # type: ignore[arg-type]
        except OSError as exc:
            sock.close()
            raise EnvError(
                f"cannot connect to {self.scheme}:{address}: {exc.strerror or exc}; "
                "is the enclave running?"
            ) from None
        sock.settimeout(None)
        _big_buffers(sock)
        return Connection(sock, max_frame=max_frame, name=f"{self.scheme}:{address}")

    def _socket(self) -> socket.socket:
        try:
            return socket.socket(self.family, socket.SOCK_STREAM)
        except (OSError, AttributeError) as exc:
            raise EnvError(f"{self.scheme} sockets are not available here: {exc}") from None


class UnixTransport(SocketTransport):
    """``AF_UNIX`` stream sockets; the socket file must sit in an owner-only folder."""

    scheme = "unix"
    family = socket.AF_UNIX

    def parse(self, address: str) -> object:
        if not address:
            raise UsageError("unix address needs a socket path")
        return address

    def listen(self, address: str, *, max_frame: int = MAX_FRAME, backlog: int = 1) -> Listener:
        path = Path(address)
        mode = path.parent.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise EnvError(
                f"socket folder {path.parent} is mode {stat.S_IMODE(mode):o}; "
                "make it owner-only (0700)"
            )
        listener = super().listen(address, max_frame=max_frame, backlog=backlog)
        listener._cleanup = path
        return listener


class VsockTransport(SocketTransport):
    """``AF_VSOCK`` stream sockets (Nitro); addresses are ``CID:PORT``."""

    scheme = "vsock"
    family = getattr(socket, "AF_VSOCK", -1)

    def parse(self, address: str) -> object:
        cid, sep, port = address.partition(":")
        if not sep or not cid.isdigit() or not port.isdigit():
            raise UsageError(f"vsock address must be CID:PORT, got {address!r}")
        return (int(cid), int(port))


TRANSPORTS: Final[dict[str, SocketTransport]] = {
    "unix": UnixTransport(),
    "vsock": VsockTransport(),
}


def _split(address: str) -> tuple[SocketTransport, str]:
    scheme, sep, rest = address.partition(":")
    if not sep or scheme not in TRANSPORTS:
        raise UsageError(
            f"channel address {address!r}: expected one of "
            + ", ".join(f"{s}:..." for s in sorted(TRANSPORTS))
        )
    return TRANSPORTS[scheme], rest


def listen(address: str, *, max_frame: int = MAX_FRAME) -> Listener:
    """Listen on ``unix:/path`` or ``vsock:CID:PORT``."""
    transport, rest = _split(address)
    return transport.listen(rest, max_frame=max_frame)


def connect(address: str, *, timeout: float = 10.0, max_frame: int = MAX_FRAME) -> Connection:
    """Connect to ``unix:/path`` or ``vsock:CID:PORT``."""
    transport, rest = _split(address)
    return transport.connect(rest, timeout=timeout, max_frame=max_frame)


class MemoryStream:
    """One end of an in-memory byte pipe pair: the fake behind :func:`memory_pair`.

    ``sendall`` may deliver in pieces (``chunk``) so partial reads are exercised; closing either
    end is seen by the other as end of stream.
    """

    def __init__(self, chunk: int = 0) -> None:
        self._inbox = bytearray()
        self._cond = threading.Condition()
        self._eof = False
        self._timeout: float | None = None
        self._chunk = chunk
        self.peer: MemoryStream | None = None

    def recv_into(self, buffer: memoryview, nbytes: int = 0, /) -> int:
        want = nbytes or len(buffer)
        with self._cond:
            if not self._cond.wait_for(lambda: self._inbox or self._eof, self._timeout):
                raise TimeoutError("memory stream: no data")
            limit = self._chunk or want
            k = min(want, len(self._inbox), limit)
            buffer[:k] = self._inbox[:k]
            del self._inbox[:k]
            return k

    def ready(self) -> bool:
        with self._cond:
            return bool(self._inbox) or self._eof

    def sendall(self, data: bytes, /) -> None:
        peer = self.peer
        if peer is None or self._eof:
            raise BrokenPipeError("memory stream closed")
        with peer._cond:
            if peer._eof:
                raise BrokenPipeError("memory stream closed")
            peer._inbox += data
            peer._cond.notify_all()

    def settimeout(self, value: float | None, /) -> None:
        self._timeout = value

    def close(self) -> None:
        for end in (self, self.peer):
            if end is not None:
                with end._cond:
                    end._eof = True
                    end._cond.notify_all()


def memory_pair(*, max_frame: int = MAX_FRAME, chunk: int = 0) -> tuple[Connection, Connection]:
    """Two connected in-memory connections (the transport fake)."""
    a, b = MemoryStream(chunk), MemoryStream(chunk)
    a.peer, b.peer = b, a
    return Connection(a, max_frame=max_frame, name="memory-a"), Connection(
        b, max_frame=max_frame, name="memory-b"
    )


def private_socket_dir(parent: Path | None = None) -> Path:
    """A fresh owner-only (0700) folder for a Unix socket (under ``parent``, else the temp dir).

    Socket paths are limited to about 100 bytes, hence the short default.
    """
    path = Path(tempfile.mkdtemp(prefix="zcbench-", dir=parent))
    os.chmod(path, 0o700)
    return path
