"""One enclave session, shared by live runs and replays: launch, boot, key release, log, shut down.

:func:`open_session` launches the enclave (the local process for the image by default, any
:class:`~zcbench.host.launcher.EnclaveProcess` from ``launcher`` otherwise), connects, boots it
as run ``run_id`` (:func:`zcbench.host._boot.boot_enclave`: the boot request, the key release
relayed to the broker, the boot document verified against the image's PCRs under ``trust``),
writes ``boot.cbor`` and opens the host's log writer over a new ``log/`` in the folder, with the
boot record and its checkpoint written and verified. :meth:`EnclaveSession.shutdown` asks the
enclave to stop (``shutdown`` -> ``bye``); :meth:`EnclaveSession.close` closes the connection and
the log and kills an enclave still alive, whatever happened before. Both runs go through here,
so a replay enclave is booted and its log written exactly as a live one's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zcbench.auditlog._fs import FileSystem
from zcbench.auditlog.link import RunLink
from zcbench.auditlog.storage import LogStore
from zcbench.channel import Connection, Message
from zcbench.errors import ZcbenchError
from zcbench.host._boot import boot_enclave
from zcbench.host.images import EnclaveImage
from zcbench.host.launcher import EnclaveProcess, launch_local
from zcbench.host.logwriter import HostLog

if TYPE_CHECKING:
    from zcbench.keys import KeyBroker

__all__ = ["EnclaveSession", "open_session"]


@dataclass
class EnclaveSession:
    """A booted enclave, its connection and the host's log of it (see the module docstring)."""

    enclave: EnclaveProcess
    conn: Connection | None
    booted: Message | None
    store: LogStore | None
    log: HostLog | None

    @property
    def origin(self) -> str:
        """The log's origin (the boot reply's, checked against the boot document)."""
        assert self.booted is not None
        origin: str = self.booted["origin"]
        return origin

    def shutdown(self, reason: str, *, timeout: float = 5.0) -> None:
        """Ask a live enclave to stop and wait for its ``bye`` (best effort), then close."""
        conn = self.conn
        if conn is not None and self.enclave.alive() and conn.closed_reason is None:
            with contextlib.suppress(ZcbenchError, TimeoutError):
                conn.send(Message("shutdown", {"reason": reason}))
                while conn.recv(timeout=timeout).type != "bye":
                    pass
        if conn is not None:
            conn.close("session closed")

    def close(self) -> None:
        """Close the connection and the log; kill the enclave if it is still alive."""
        if self.conn is not None:
            self.conn.close("session closed")
        if self.log is not None:
            self.log.close()  # a writer process stops after what was submitted
        if self.store is not None:
            self.store.close()
        if self.enclave.alive():
            self.enclave.kill()
        self.enclave.stop(timeout=5)


def open_session(
    image: EnclaveImage,
    folder: Path,
    run_id: str,
    *,
    trust: str,
    broker: KeyBroker | None = None,
    launcher: Callable[[Path], EnclaveProcess] | None = None,
    isolate_network: bool | None = None,
    enclave_env: Mapping[str, str] | None = None,
    boot_timeout: float = 60.0,
    log_fs: FileSystem | None = None,
    image_args: list[str] | None = None,
    previous: RunLink | None = None,
) -> EnclaveSession:
    """Launch, boot and open the log of one enclave in ``folder``; on any failure the enclave is
    killed and the error raised (the caller has nothing to close). ``image_args``: the image's
    launch arguments when already computed (a missing image then failed before anything).
    ``previous``: the run this one continues (its boot document names it)."""
    if launcher is not None:
        enclave = launcher(folder)
    else:
        enclave = launch_local(
            image_args if image_args is not None else image.launch_args(),
            isolate_network=isolate_network,
            stderr_path=folder / "enclave.stderr",
            env=enclave_env,
        )
    session = EnclaveSession(enclave, None, None, None, None)
    try:
        session.conn = enclave.connect(timeout=boot_timeout)
        booted = boot_enclave(
            session.conn, run_id, image, trust, enclave, broker, timeout=boot_timeout,
            previous=previous,
        )
        session.booted = booted
        (folder / "boot.cbor").write_bytes(booted["document"])
        session.store = LogStore.create(folder / "log", fs=log_fs)
        session.log = HostLog(session.store, booted["public_key"], booted["origin"])
        session.log.open(booted["record"], booted["checkpoint"], booted["document"])
    except BaseException:
        session.close()
        raise
    return session
