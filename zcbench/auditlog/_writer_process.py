"""The host's log writer in a process of its own: durable writes, fsyncs and checkpoint checks.

:class:`WriterProcess` is the host side's :class:`~zcbench.auditlog.writer.HostLogWriter` moved
out of the process that receives the enclave's replies: the same writer (append, group commit,
the newest checkpoint verified under the attested key over the recomputed root, fsynced) runs in
a child (``python -m zcbench.auditlog._writer_process``, or, to compare, a thread of this
process) over the log folder the caller opened, reached over a Unix socket pair. The caller
stages records and checkpoints as it would with the writer, :meth:`WriterProcess.submit` hands
them over without waiting, and :meth:`WriterProcess.wait` tells how far the log is durable and
verified; nothing staged may be acted on before :meth:`~WriterProcess.wait` reports it durable.
While the child commits one group the caller receives and checks the next: that is the point.

The child takes every group waiting on its socket as one commit (one fsync of records, one of the
newest checkpoint), then reports the new durable size. The socket is bounded (the kernel's
buffers: a caller with too much unacknowledged blocks, within its deadline); a child that dies
closes its end, so the caller's next send or wait raises :class:`~zcbench.errors.EnvError`
naming the exit, never hangs; a child that answers nothing within the deadline is killed and
reported the same way. A check or write that fails in the child comes back as the error the
writer raised there (its class, message and fields), and the child stops. The child ignores
SIGINT and SIGTERM (the run that owns it ends it) and exits when its socket closes.

Messages are CBOR ``[kind, ...]`` frames of a 4-byte big-endian length; the first message the
child reads is its setup (folder, key, origin, the file system the store uses, pickled: the
caller's own object, so a fault-injecting one in tests reaches the child).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from zcbench import _cbor
from zcbench.auditlog._fs import FileSystem
from zcbench.errors import DataError, EnvError, UsageError, VerificationError, ZcbenchError

__all__ = ["WriterProcess"]

_HEADER: Final = struct.Struct(">I")
_MAX_TO_CHILD: Final = 256 * 1024 * 1024  # a group of 64 batches of 1,000 events is a few MB
_MAX_TO_PARENT: Final = 64 * 1024  # acknowledgements and errors are short
_BUFFER: Final = 4 * 1024 * 1024  # asked for both ways (the kernel may cap it)
_ERRORS: Final[dict[str, type[ZcbenchError]]] = {
    "VerificationError": VerificationError,
    "DataError": DataError,
    "EnvError": EnvError,
    "UsageError": UsageError,
}


def _frame(message: list[Any]) -> bytes:
    body = _cbor.encode(message)
    return _HEADER.pack(len(body)) + body


class WriterProcess:
    """The client of a log writer running in a child process (see the module docstring).

    Mirrors :class:`~zcbench.auditlog.writer.HostLogWriter`: :attr:`size`, :attr:`durable_size`,
    :attr:`last_checkpoint`, :meth:`stage`, a blocking :meth:`flush`; adds :meth:`submit`,
    :meth:`wait` and :meth:`fileno` to overlap commits with the caller's work.
    """

    def __init__(self, folder: Path, public_key_spki_der: bytes, origin: str, *,
                 size: int, fs: FileSystem | None = None, timeout: float = 30.0,
                 thread: bool = False) -> None:
        """Start a writer over the log in ``folder`` (opened, closed by its caller: ``size``
        records, all durable under its last checkpoint). ``timeout``: how long a send or a
        wait may take before the child counts as hung. ``thread``: run the writer on a thread of
        this process instead (the same code and socket; to measure what the process buys)."""
        self.folder = folder
        self.timeout = timeout
        self._size = size
        self.durable_size = size
        """Records covered by a verified, durable checkpoint (as the child last reported)."""
        self.last_checkpoint: bytes | None = None
        self.commits = 0
        """Group commits the child reported."""
        self._steps: list[list[Any]] = []  # staged, not yet submitted
        self._queued: list[list[Any]] = []  # submitted, sent once the commit in flight is done
        self._submitted = size  # records submitted (sent, or queued to be sent)
        self._sent = size  # records sent to the child
        self._failed: ZcbenchError | None = None
        self._rbuf = bytearray()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for sock in (ours, theirs):
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER)
        self._sock = ours
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        try:
            if thread:
                self._thread = threading.Thread(
                    target=_serve, args=(theirs,), name="zcbench-log-writer", daemon=True
                )
                self._thread.start()
            else:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "zcbench.auditlog._writer_process",
                     str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=_child_env(),
                )
                theirs.close()
            ours.setblocking(False)
            setup = {
                "folder": str(folder), "public_key": public_key_spki_der, "origin": origin,
                "size": size, "fs": pickle.dumps(fs) if fs is not None else None,
                "path": list(sys.path),
            }
            self._send(["setup", setup])
            reply = self._recv(self.timeout)
            if reply[0] != "ready" or reply[1] != size:
                raise EnvError(f"the log writer opened the log at {reply[1:]} records, "
                               f"not the {size} this host wrote")
        except BaseException:
            self.close(kill=True)
            raise

    # -- the writer's interface ---------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The child's process id (None on a thread)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def size(self) -> int:
        """Records staged or written (durable or not)."""
        return self._size

    @property
    def staged(self) -> int:
        """Steps staged and not yet submitted."""
        return len(self._steps)

    @property
    def unacknowledged(self) -> int:
        """Records submitted that the child has not yet reported durable."""
        return self._submitted - self.durable_size

    def stage(self, records: Sequence[bytes], checkpoint: bytes, *,
              leaves: Sequence[bytes] | None = None) -> None:
        """Take ``records`` and the checkpoint over the log after them (sent at :meth:`submit`).
        ``leaves``: their leaf hashes (the child recomputes none it is given)."""
        if leaves is not None and len(leaves) != len(records):
            raise UsageError(f"{len(records)} records but {len(leaves)} leaf hashes")
        self._steps.append([list(records), checkpoint, list(leaves) if leaves else None])
        self._size += len(records)

    def submit(self) -> int | None:
        """Hand what was staged to the child, without waiting for it to be durable; the size
        the log will have once it is (None when nothing was staged). One commit is in flight
        at a time: what is submitted meanwhile is sent, as one group, when it is reported (so
        a slow fsync makes the next group larger, not the number of commits)."""
        if not self._steps:
            return None
        self._queued += self._steps
        self._steps = []
        self._submitted = self._size
        self._send_queued()
        return self._size

    def _send_queued(self) -> None:
        if self._queued and self.durable_size >= self._sent:
            steps, self._queued = self._queued, []
            self._send(["steps", steps])
            self._sent = self._submitted

    def wait(self, timeout: float | None) -> int:
        """The durable size after taking every report that has arrived; when none of them
        moves it and records are outstanding, wait up to ``timeout`` seconds for one (0: do not
        wait; None: up to :attr:`timeout`, after which the child counts as hung and
        :class:`EnvError` is raised)."""
        if self._failed is not None:
            raise self._failed
        before = self.durable_size
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            while (message := self._recv_ready()) is not None:
                self._take(message)
            if self.durable_size > before or self.durable_size >= self._submitted:
                return self.durable_size
            left = deadline - time.monotonic()
            if left <= 0:
                if timeout is None:
                    self._fail(EnvError(
                        f"the log writer made nothing durable within {limit:g} s "
                        f"({self.unacknowledged} records waiting); the run stops"
                    ))
                return self.durable_size
            select.select([self._sock], [], [], left)

    def flush(self) -> int | None:
        """:meth:`submit` and wait until everything is durable: the durable size (None when
        nothing was staged or outstanding)."""
        if self.submit() is None and self.durable_size == self._submitted:
            return None
        while self.durable_size < self._submitted:
            self.wait(None)
        return self.durable_size

    def fileno(self) -> int:
        """The socket to wait on (readable: the child reported something)."""
        return self._sock.fileno()

    def close(self, *, kill: bool = False) -> None:
        """Stop the child after what was submitted (``kill``: at once); idempotent."""
        if not kill and self._failed is None and self._sock.fileno() >= 0:
            with contextlib.suppress(ZcbenchError, OSError):
                self.flush_acks()  # what was submitted is sent and committed first
                self._send(["close"])
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._proc is not None:
            if kill and self._proc.poll() is None:
                self._proc.kill()
            try:
                self._proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout)

    def flush_acks(self) -> None:
        """Wait (bounded) until the child has answered everything submitted."""
        while self.durable_size < self._submitted:
            self.wait(None)

    # -- the socket ---------------------------------------------------------------------------

    def _dead(self, what: str) -> EnvError:
        code = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(timeout=2)
        how = f"exited (code {code})" if code is not None else "went away"
        return EnvError(
            f"the log writer process {how} {what}; the log in {self.folder} holds "
            f"{self.durable_size} durable records, nothing after them was acted on"
        )

    def _fail(self, error: ZcbenchError) -> None:
        self._failed = error
        raise error

    def _send(self, message: list[Any]) -> None:
        if self._failed is not None:
            raise self._failed
        data = memoryview(_frame(message))
        deadline = time.monotonic() + self.timeout
        while data:
            try:
                sent = self._sock.send(data)
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._fail(EnvError(
                        f"the log writer took no records within {self.timeout:g} s; the run "
                        "stops"
                    ))
                select.select([], [self._sock], [], left)
                continue
            except OSError:  # EPIPE, ECONNRESET: the child is gone; what it said last counts
                self._fail(self._last_words()
                           or self._dead("while records were being handed to it"))
            data = data[sent:]

    def _last_words(self) -> ZcbenchError | None:
        """The error the child reported before it went away (a full disk, say), read from what
        it sent before closing; its durable reports on the way are taken too. None: it said
        nothing of the kind."""
        while True:
            try:
                chunk = self._sock.recv(_MAX_TO_PARENT)
            except OSError:  # nothing more (BlockingIOError), or the socket is gone
                break
            if not chunk:
                break
            self._rbuf += chunk
        while len(self._rbuf) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._rbuf)
            if length > _MAX_TO_PARENT or len(self._rbuf) < _HEADER.size + length:
                return None
            body = bytes(self._rbuf[_HEADER.size:_HEADER.size + length])
            del self._rbuf[:_HEADER.size + length]
            try:
                message = _decode_reply(body)
            except EnvError:
                return None
            if message[0] == "error":
                return _error_of(message)
            if message[0] == "durable":
                self._take(message)
        return None

    def _recv_ready(self) -> list[Any] | None:
        """One message when a whole one has arrived, else None (never waits)."""
        while True:
            if len(self._rbuf) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(self._rbuf)
                if length > _MAX_TO_PARENT:
                    self._fail(EnvError(f"the log writer sent an oversize frame ({length} B)"))
                if len(self._rbuf) >= _HEADER.size + length:
                    body = bytes(self._rbuf[_HEADER.size:_HEADER.size + length])
                    del self._rbuf[:_HEADER.size + length]
                    return _decode_reply(body)
            try:
                chunk = self._sock.recv(_MAX_TO_PARENT)
            except BlockingIOError:
                return None
            except OSError:
                chunk = b""
            if not chunk:
                self._fail(self._dead("before reporting its last commit"))
            self._rbuf += chunk

    def _recv(self, timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        while (message := self._recv_ready()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(EnvError(f"the log writer did not start within {timeout:g} s"))
            select.select([self._sock], [], [], left)
        if message[0] == "error":
            self._take(message)
        return message

    def _take(self, message: list[Any]) -> None:
        if message[0] == "durable":
            _, size, checkpoint, commits = message
            self.durable_size, self.last_checkpoint, self.commits = size, checkpoint, commits
            self._send_queued()
            return
        if message[0] == "error":
            self._fail(_error_of(message))
        self._fail(EnvError(f"the log writer sent an unexpected message: {message[0]!r}"))


def _child_env() -> dict[str, str]:
    """This process's environment, with the folder this zcbench was imported from first on the
    child's path (so the child runs this same code)."""
    import zcbench

    env = dict(os.environ)
    here = str(Path(zcbench.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


def _decode_reply(body: bytes) -> list[Any]:
    try:
        message = _cbor.decode(body, canonical=False, max_bytes=_MAX_TO_PARENT)
    except _cbor.CborError:
        raise EnvError("the log writer sent a frame that is not CBOR") from None
    if not isinstance(message, list) or not message or not isinstance(message[0], str):
        raise EnvError("the log writer sent a frame that is not a message")
    return message


def _error_of(message: list[Any]) -> ZcbenchError:
    """The error the child's writer raised, rebuilt: the same class, message and fields."""
    _, kind, text, fields = message
    cls = _ERRORS.get(kind, EnvError)
    if cls is VerificationError:
        return VerificationError(text, check=fields.get("check") or "log_writer",
                                 expected=fields.get("expected"), actual=fields.get("actual"))
    return cls(text)


# -- the child ------------------------------------------------------------------------------


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _read_message(sock: socket.socket) -> list[Any] | None:
    header = _read_exact(sock, _HEADER.size)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    if length > _MAX_TO_CHILD:
        raise UsageError(f"a group of {length} bytes is over the writer's {_MAX_TO_CHILD}")
    body = _read_exact(sock, length)
    if body is None:
        return None
    try:
        message = _cbor.decode(body, canonical=False, max_bytes=_MAX_TO_CHILD)
    except _cbor.CborError as exc:
        raise UsageError(f"the writer got a frame that is not CBOR: {exc}") from None
    if not isinstance(message, list) or not message:
        raise UsageError("the writer got a frame that is not a message")
    return message


def _waiting(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _serve(sock: socket.socket) -> None:
    """The writer's loop (in the child, or on a thread): setup, then commit every group waiting
    as one, report, until the socket closes or a ``close`` arrives."""
    from zcbench.auditlog.storage import LogStore
    from zcbench.auditlog.writer import HostLogWriter

    sock.setblocking(True)
    writer: HostLogWriter | None = None
    try:
        setup = _read_message(sock)
        if setup is None or setup[0] != "setup":
            return
        config = setup[1]
        for entry in config["path"]:
            if entry not in sys.path:
                sys.path.append(entry)
        # the parent that started this process pickled its own store's file system object
        fs = pickle.loads(config["fs"]) if config["fs"] is not None else None  # noqa: S301
        store = LogStore.open(Path(config["folder"]), fs=fs)
        writer = HostLogWriter(store, config["public_key"], config["origin"])
        sock.sendall(_frame(["ready", writer.durable_size]))
        closing = False
        while not closing:
            message = _read_message(sock)
            if message is None:
                return
            batch = [message]
            while _waiting(sock):  # group commit: every group already here, one fsync
                more = _read_message(sock)
                if more is None:
                    closing = True
                    break
                batch.append(more)
            for item in batch:
                if item[0] == "close":
                    closing = True
                    continue
                for records, checkpoint, leaves in item[1]:
                    writer.stage(records, checkpoint, leaves=leaves)
            if writer.staged:
                writer.flush()
                sock.sendall(_frame(["durable", writer.durable_size, writer.last_checkpoint,
                                     writer.commits]))
    except ZcbenchError as exc:
        fields = {k: getattr(exc, k, None) for k in ("check", "expected", "actual")}
        with contextlib.suppress(OSError):
            sock.sendall(_frame(["error", type(exc).__name__, str(exc),
                                 {k: v for k, v in fields.items() if isinstance(v, str)}]))
    except OSError:
        return  # the parent went away
    finally:
        if writer is not None:
            writer.close()
        with contextlib.suppress(OSError):
            sock.close()


def main(argv: Sequence[str]) -> int:
    """The child's entry point: ``python -m zcbench.auditlog._writer_process FD``."""
    # the run that owns this writer ends it (by closing the socket); Ctrl-C in a terminal and
    # a SIGTERM to the group must not stop it before the run has stopped acting
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    try:
        _serve(sock)
    except Exception as exc:  # told to the parent by closing the socket
        print(f"zcbench log writer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
