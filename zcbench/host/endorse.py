"""Entries signed by the live version's enclave: ``zcbench ledger announce|revoke --by``, and
the archive entries of ``zcbench archive --ledger DIR --by``.

The ledger's rules are that a successor is announced, and a version revoked, by the running
attested enclave of the live version: the measured code endorses what follows it.
:func:`endorse` boots the live build's enclave in a session of its own (a run in the ledger,
like a replay: its run-start, the endorsement, a final run-checkpoint of its log), passes the
ledger's gate (:class:`zcbench.ledger.runs.LedgerRunHook`), asks for the entry and stores what
the enclave signed; the host only carries. The enclave refuses unless the gate passed and its
PCR0 is the live version at its own clock (``endorse_live``), and the ledger's rules refuse an
endorsement that breaks one (a revocation of the only live version, say).
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from zcbench.channel import Message
from zcbench.errors import UsageError
from zcbench.host._boot import ledger_exchange
from zcbench.host.images import EnclaveImage
from zcbench.host.launcher import EnclaveProcess
from zcbench.host.session import open_session
from zcbench.keys import KeyBroker
from zcbench.ledger.entries import EntryBody, encode_entry
from zcbench.ledger.runs import LedgerRunHook
from zcbench.ledger.store import Appended

__all__ = ["Endorsed", "announce_request", "archive_request", "endorse", "revoke_request"]


def announce_request(pcr0: bytes, commitment_sha256: bytes, notice_ns: int) -> Message:
    """The request for a successor's commitment, valid ``notice_ns`` after the enclave's now."""
    return Message("ledger_announce", {"pcr0": pcr0, "commitment_sha256": commitment_sha256,
                                       "notice_ns": notice_ns})


def revoke_request(pcr0: bytes, reason: str = "") -> Message:
    """The request for a revocation of ``pcr0``."""
    return Message("ledger_revoke", {"pcr0": pcr0, "reason": reason})


def archive_request(body: EntryBody) -> Message:
    """The request for an ``archive`` entry of ``body`` (:class:`~zcbench.ledger.entries.
    ArchiveEntry`); the enclave appends it at its own index and time."""
    return Message("ledger_archive", {"entry": encode_entry(index=0, time_ns=0, body=body)})


class Endorsed:
    """What the enclave signed: the entries as stored (the last as ``appended``) and the
    session's run."""

    def __init__(self, appended: Appended, run_origin: str,
                 every: tuple[Appended, ...] = ()) -> None:
        self.appended = appended
        self.run_origin = run_origin
        self.every = every or (appended,)


def endorse(image: EnclaveImage, ledger_dir: Path, request: Message | Sequence[Message], *,
            trust: str = "dev",
            broker: KeyBroker | None = None, keep_dir: Path | None = None,
            launcher: Callable[[Path], EnclaveProcess] | None = None,
            reply_timeout: float = 30.0, boot_timeout: float = 60.0) -> Endorsed:
    """Boot ``image`` (the live version's build), pass the ledger's gate, have it append
    ``request`` (:func:`announce_request`, :func:`revoke_request`, :func:`archive_request`, or
    several in order, in one session); see the module docstring.
    ``keep_dir`` keeps the session's log (new or empty folder). Raises
    :class:`~zcbench.ledger.ServeRefused` when the enclave refuses."""
    if keep_dir is not None:
        if keep_dir.exists() and any(keep_dir.iterdir()):
            raise UsageError(f"{keep_dir} is not empty; give a new folder for the session's log")
        keep_dir.mkdir(parents=True, exist_ok=True)
    scratch = None if keep_dir is not None else tempfile.TemporaryDirectory(
        prefix="zcbench-endorse-")
    folder = keep_dir if keep_dir is not None else Path(scratch.name)  # type: ignore[union-attr]
    hook = LedgerRunHook(ledger_dir, folder)
    session = None
    try:
        session = open_session(image, folder, f"endorse-{secrets.token_hex(8)}", trust=trust,
                               broker=broker, launcher=launcher, boot_timeout=boot_timeout)
        assert session.conn is not None
        exchange = ledger_exchange(session.conn, broker, reply_timeout)
        hook.gate(exchange, session.origin)
        requests = [request] if isinstance(request, Message) else list(request)
        if not requests:
            raise UsageError("nothing to endorse")
        every = tuple(hook.endorse(exchange, one) for one in requests)
        hook.final_checkpoint(exchange)
        session.shutdown("endorsed")
        return Endorsed(every[-1], session.origin, every)
    finally:
        hook.close()
        if session is not None:
            session.close()
        if scratch is not None:
            scratch.cleanup()
