"""A live run's control socket: fresh attestations from its enclave, for the proof service, and
the one path by which an operator changes a running run's risk limits.

The run (``zcbench run``) opens ``<run>/control/attest.sock`` (an owner-only folder) once its
enclave has booted, through ``run_live``'s ``on_booted`` hook, and removes it when the run ends;
the proof service connects to it. The protocol is the channel's (:mod:`zcbench.channel`):
``attest {nonce}`` is answered by ``document {document}`` (the enclave's own document: the
caller's nonce, the latest checkpoint in ``user_data``) or ``error {code, reason}``;
``control {action, operator, values, reason}`` (``zcbench limits set``, ``zcbench kill``,
``zcbench enable``: :func:`control_run`) by ``controlled {index, limits}`` once the control
record is durable in the run's signed log (:mod:`zcbench.host.controls`), or an error. Nothing
else is accepted; a bad frame gets an error and the connection stays usable. The folder is the
run owner's only (0700): whoever can reach the socket can change the limits, and names
themselves as the operator.

A socket file that is present but refuses connections is a run that ended without cleaning up
(a killed host): :func:`attest_run` reports it as no enclave running.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from zcbench.channel import (
    ChannelClosed,
    Connection,
    FrameError,
    Listener,
    Message,
    UnixTransport,
    error_message,
)
from zcbench.errors import EnvError, UsageError, ZcbenchError

__all__ = ["CONTROL_DIR", "CONTROL_SOCKET", "ControlSocket", "NoEnclave", "attest_run",
           "control_run", "control_socket"]

CONTROL_DIR: Final = "control"
CONTROL_SOCKET: Final = "attest.sock"
MAX_NONCE: Final = 64  # an NSM nonce is at most 512 bytes; an LP's needs no more than 64
_MAX_FRAME: Final = 1 << 20
_MAX_CLIENTS: Final = 16


class NoEnclave(EnvError):
    """No enclave answers for this run (it ended, or never opened its control socket)."""


def control_socket(run_dir: Path) -> Path:
    """Where a run's control socket lives."""
    return Path(run_dir) / CONTROL_DIR / CONTROL_SOCKET


class ControlSocket:
    """The run side: ``attach`` is the ``on_booted`` hook, ``close`` ends it (idempotent)."""

    def __init__(self, run_dir: Path, *, on_error: Callable[[str], object] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self._on_error = on_error
        self._listener: Listener | None = None
        self._attest: Callable[[bytes], bytes] | None = None
        self._control: Callable[..., tuple[int, dict[str, int]]] | None = None
        self._stop = threading.Event()
        self._clients = threading.BoundedSemaphore(_MAX_CLIENTS)
        self._thread: threading.Thread | None = None

    def attach(self, handle: Any) -> None:
        """Open the socket for a booted run (``handle``: a ``RunHandle``, or any object with
        ``attest(nonce, timeout=)``). A failure is reported and the run goes on without it."""
        try:
            self.open(lambda nonce: handle.attest(nonce, timeout=10.0),
                      getattr(handle, "control", None))
        except (ZcbenchError, OSError) as exc:
            if self._on_error is not None:
                self._on_error(f"no attestation socket for the proof service: {exc}")

    def open(self, attest: Callable[[bytes], bytes],
             control: Callable[..., tuple[int, dict[str, int]]] | None = None) -> None:
        """Listen; each ``attest`` request calls ``attest(nonce)``, each ``control`` request
        ``control(action, operator=, values=, reason=)`` (refused when it is None)."""
        folder = self.run_dir / CONTROL_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        path = folder / CONTROL_SOCKET
        path.unlink(missing_ok=True)  # a socket left by a killed run of this folder
        self._attest = attest
        self._control = control
        self._listener = UnixTransport().listen(str(path), max_frame=_MAX_FRAME, backlog=16)
        self._thread = threading.Thread(target=self._serve, name="zcbench-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn = self._listener.accept(timeout=0.2)
            except (TimeoutError, OSError):
                continue
            if not self._clients.acquire(blocking=False):
                conn.close("too many clients")
                continue
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: Connection) -> None:
        try:
            while not self._stop.is_set():
                try:
                    request = conn.recv(timeout=30)
                except FrameError as exc:
                    if exc.fatal:
                        return
                    conn.reject(exc)
                    continue
                except (ChannelClosed, TimeoutError):
                    return
                conn.send(self._answer(request))
        except ZcbenchError:
            return
        finally:
            conn.close("control client done")
            self._clients.release()

    def _answer(self, request: Message) -> Message:
        if request.type == "control":
            return self._answer_control(request)
        if request.type != "attest":
            return error_message("unsupported", f"the control socket answers attest and "
                                 f"control, not {request.type}")
        nonce = request["nonce"]
        if not 0 < len(nonce) <= MAX_NONCE:
            return error_message("nonce", f"a nonce is 1 to {MAX_NONCE} bytes")
        assert self._attest is not None
        try:
            return Message("document", {"document": self._attest(nonce)})
        except ZcbenchError as exc:
            return error_message("attest", str(exc))

    def _answer_control(self, request: Message) -> Message:
        if self._control is None:
            return error_message("unsupported", "this run takes no control requests")
        values = request["values"]
        if len(values) > 16 or not all(isinstance(k, str) and type(v) is int
                                       for k, v in values.items()):
            return error_message("control", "values: a map of limit names to whole numbers")
        try:
            index, limits = self._control(request["action"], operator=request["operator"],
                                          values=values or None, reason=request["reason"])
        except UsageError as exc:
            return error_message("usage", str(exc))
        except ZcbenchError as exc:
            return error_message("control", str(exc))
        return Message("controlled", {"index": index, "limits": limits})

    def close(self) -> None:
        """Stop answering and remove the socket and its folder."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with contextlib.suppress(OSError):
            (self.run_dir / CONTROL_DIR).rmdir()


def attest_run(run_dir: Path, nonce: bytes, *, timeout: float = 15.0) -> bytes:
    """A fresh document from the enclave of the run in ``run_dir``.

    Raises :class:`NoEnclave` when no enclave answers, :class:`~zcbench.errors.EnvError` when it
    refuses, :class:`~zcbench.errors.UsageError` for a nonce out of bounds.
    """
    if not 0 < len(nonce) <= MAX_NONCE:
        raise UsageError(f"a nonce is 1 to {MAX_NONCE} bytes")
    path = control_socket(run_dir)
    if not path.exists():
        raise NoEnclave(f"no enclave runs for {Path(run_dir).name}")
    try:
        conn = UnixTransport().connect(str(path), timeout=2.0, max_frame=_MAX_FRAME)
    except EnvError:
        raise NoEnclave(f"the enclave of {Path(run_dir).name} does not answer") from None
    try:
        conn.send(Message("attest", {"nonce": nonce}))
        reply = conn.recv(timeout=timeout)
    except (ZcbenchError, TimeoutError) as exc:
        raise NoEnclave(f"the enclave of {Path(run_dir).name} did not answer: {exc}") from None
    finally:
        conn.close("done")
    if reply.type != "document":
        raise EnvError(f"the enclave refused to attest: {reply.fields.get('reason', reply.type)}")
    document: bytes = reply["document"]
    return document


def control_run(run_dir: Path, action: str, *, operator: str,
                values: dict[str, int] | None = None, reason: str = "",
                timeout: float = 30.0) -> tuple[int, dict[str, int]]:
    """Ask the run in ``run_dir`` to ``set`` limits, ``kill`` or ``enable``, as ``operator``;
    returns the control record's log index and the limits in force after it.

    Raises :class:`NoEnclave` when no run answers, :class:`~zcbench.errors.UsageError` for a
    request the run refuses as malformed (an unknown limit, a bad name),
    :class:`~zcbench.errors.EnvError` when the run could not log it.
    """
    path = control_socket(run_dir)
    if not path.exists():
        raise NoEnclave(f"no run is live in {Path(run_dir).name}: a run's limits change only "
                        "while it runs (start it with zcbench run)")
    try:
        conn = UnixTransport().connect(str(path), timeout=2.0, max_frame=_MAX_FRAME)
    except EnvError:
        raise NoEnclave(f"the run in {Path(run_dir).name} does not answer") from None
    try:
        conn.send(Message("control", {"action": action, "operator": operator,
                                      "values": dict(values or {}), "reason": reason}))
        reply = conn.recv(timeout=timeout)
    except (ZcbenchError, TimeoutError) as exc:
        raise NoEnclave(f"the run in {Path(run_dir).name} did not answer: {exc}") from None
    finally:
        conn.close("done")
    if reply.type == "controlled":
        return int(reply["index"]), {str(k): int(v) for k, v in reply["limits"].items()}
    reason_text = str(reply.fields.get("reason", reply.type))
    if reply.type == "error" and reply.fields.get("code") == "usage":
        raise UsageError(reason_text)
    raise EnvError(f"the run refused the change: {reason_text}")
