"""One stream connection: frames over anything with ``recv_into``/``sendall``/``close``.

Unix sockets, vsock sockets and the in-memory fake all go through this one class, so the code
tested here with ``AF_UNIX`` is the code that runs over ``AF_VSOCK`` on a Nitro host.

Memory stays bounded: a length prefix above the limit is refused before anything is allocated,
and a body is read into one buffer of exactly its declared length, plus at most one read-ahead
of 64 KiB (the start of the frames after it).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Protocol

from zcbench.channel._frames import (
    HEADER,
    MAX_FRAME,
    ChannelClosed,
    FrameError,
    Message,
    decode_body,
    encode_frame,
    error_message,
)

__all__ = ["ByteStream", "Connection"]

_READ_AHEAD = 65_536
_UNSET = object()


class ByteStream(Protocol):
    """What a connection needs from a socket-like object."""

    def recv_into(self, buffer: memoryview, nbytes: int = 0, /) -> int: ...

    def sendall(self, data: bytes, /) -> None: ...

    def settimeout(self, value: float | None, /) -> None: ...

    def close(self) -> None: ...


class Connection:
    """A framed, message-level connection over one byte stream.

    ``recv`` returns the next valid message or raises :class:`FrameError` (non-fatal: answer it
    with :meth:`reject` and keep going; fatal: the connection is closed already) or
    :class:`ChannelClosed`. ``send`` may be called from one thread while another receives.
    """

    def __init__(self, stream: ByteStream, *, max_frame: int = MAX_FRAME, name: str = "") -> None:
        self._stream = stream
        self._max_frame = max_frame
        self._send_lock = threading.Lock()
        self._closed: str | None = None
        self._rbuf = bytearray()  # received, not yet returned (at most one read-ahead)
        self._chunk = bytearray(_READ_AHEAD)
        self._timeout: float | object | None = _UNSET
        self.name = name

    @property
    def closed_reason(self) -> str | None:
        """Why the connection closed, or None while it is open."""
        return self._closed

    def send(self, message: Message) -> None:
        """Send one message whole (partial writes are completed or the connection closes)."""
        frame = encode_frame(message, max_frame=self._max_frame)
        self.send_frame(frame)

    def send_frame(self, frame: bytes) -> None:
        """Send bytes already framed by :func:`encode_frame` (tests also send garbage here)."""
        if self._closed is not None:
            raise ChannelClosed(self._closed)
        with self._send_lock:
            try:
                self._stream.sendall(frame)
            except (BrokenPipeError, ConnectionResetError) as exc:
                self._mark_closed(f"peer went away while sending ({type(exc).__name__})")
                raise ChannelClosed(self._closed or "") from None
            except OSError as exc:
                self._mark_closed(f"send failed: {exc.strerror or type(exc).__name__}")
                raise ChannelClosed(self._closed or "") from None

    def recv(self, timeout: float | None = None) -> Message:
        """The next message; ``timeout`` seconds bound the wait for its first byte and its rest."""
        if self._closed is not None:
            raise ChannelClosed(self._closed)
        if timeout != self._timeout:
            try:
                self._stream.settimeout(timeout)
            except OSError:  # closed by another thread (a failed send) since the check above
                raise ChannelClosed(self._closed or "closed while receiving") from None
            self._timeout = timeout
        header = self._read_exact(HEADER.size, at_boundary=True)
        (length,) = HEADER.unpack(header)
        if length > self._max_frame:
            self._mark_closed(f"oversize frame: {length} bytes, limit {self._max_frame}")
            raise FrameError(self._closed or "", code="oversize", fatal=True)
        body = self._read_exact(length, at_boundary=False)
        return decode_body(body)

    def ready(self) -> bool:
        """True when some bytes of a next frame have arrived (recv would not wait for them)."""
        if self._closed is not None:
            return True  # recv answers at once: ChannelClosed
        if self._rbuf:
            return True
        probe = getattr(self._stream, "ready", None)
        if callable(probe):
            return bool(probe())
        fileno = getattr(self._stream, "fileno", None)
        if not callable(fileno):
            return False
        try:
            readable, _, _ = select.select([fileno()], [], [], 0)
        except (OSError, ValueError):  # closed by another thread: recv will say so
            return True
        return bool(readable)

    def fileno(self) -> int | None:
        """The stream's descriptor, to wait on with ``select`` beside others (check
        :meth:`ready` first: bytes already read ahead do not wake it); None for a stream
        without one (in memory) or a closed connection."""
        fileno = getattr(self._stream, "fileno", None)
        if self._closed is not None or not callable(fileno):
            return None
        try:
            fd = fileno()
        except (OSError, ValueError):
            return None
        return fd if isinstance(fd, int) and fd >= 0 else None

    def reject(self, error: FrameError, seq: int | None = None) -> None:
        """Answer a bad frame with an error frame (best effort: the peer may be gone)."""
        with contextlib.suppress(ChannelClosed):
            self.send(error_message(error.code, str(error), seq))

    def close(self, reason: str = "closed by this side") -> None:
        """Close the connection; later calls raise :class:`ChannelClosed` with ``reason``."""
        self._mark_closed(reason)

    def _mark_closed(self, reason: str) -> None:
        if self._closed is None:
            self._closed = reason
            try:
                if isinstance(self._stream, socket.socket):
                    self._stream.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._stream.close()

    def _read_exact(self, n: int, *, at_boundary: bool) -> bytes:
        """``n`` bytes: from what was read ahead, then from the stream, reading up to
        ``_READ_AHEAD`` bytes at a time (replies in flight arrive together: one receive takes
        several frames, so a pipelined peer costs one system call per burst, not two per frame).
        """
        buf = self._rbuf
        while len(buf) < n:
            got = len(buf)
            want = max(n - got, _READ_AHEAD)
            view = memoryview(self._chunk)[: min(want, len(self._chunk))]
            try:
                k = self._stream.recv_into(view, len(view))
            except TimeoutError:
                if at_boundary and got == 0:
                    raise
                self._mark_closed(f"truncated frame: peer stalled after {got} of {n} bytes")
                raise FrameError(self._closed or "", code="truncated", fatal=True) from None
            except (ConnectionResetError, BrokenPipeError):
                k = 0
            except OSError as exc:
                if self._closed is not None:
                    raise ChannelClosed(self._closed) from None
                self._mark_closed(f"receive failed: {exc.strerror or type(exc).__name__}")
                raise ChannelClosed(self._closed or "") from None
            if k == 0:
                if at_boundary and got == 0:
                    self._mark_closed("peer closed the connection")
                    raise ChannelClosed(self._closed or "")
                self._mark_closed(f"truncated frame: peer closed after {got} of {n} bytes")
                raise FrameError(self._closed or "", code="truncated", fatal=True)
            buf += view[:k]
        out = bytes(buf[:n])
        del buf[:n]  # from the front of a bytearray: no copy of the rest
        return out
