"""The replay enclave: a fresh enclave from a build, fed a log's IN batches, for
:func:`zcbench.auditlog.replay.check_replay`.

:class:`EnclaveReplayRunner` is a :class:`~zcbench.auditlog.replay.ReplayRunner`. Each
``replay`` opens a new enclave session from the image (:mod:`zcbench.host.session`, the one a
live run opens: the local launcher, or any ``launcher``), booted as a live run is: a new run id
prefixed ``replay-``, the sealed data key released by the key broker only to an attested enclave
whose PCR0 matches the policy, and the boot document verified against the build's committed
PCRs under ``trust``. It then sends every batch as an ``ingest`` frame, one at a time, and
yields the ``signals`` body of each reply.

The replay enclave keeps its own signed log. The runner stores and checks it exactly as a live
run does (:class:`~zcbench.host.logwriter.HostLog`: IN record = the batch sent, OUT record = the
signals returned, checkpoint signed by the attested key over the recomputed root), in a
temporary folder removed afterwards, or under ``keep_dir`` when given.

Sequence numbers: the enclave accepts batches ``0, 1, 2, ...`` only. A batch's seq is the
``ingest`` frame's and the log record's, not its bytes' (batch version 2), so every batch is sent
as logged, byte for byte: when the logged seqs are not ``0, 1, 2, ...`` (a range or a selection
that does not start at the first batch, or has gaps) the runner renumbers in the frame only, the
k-th batch sent as seq k (the strategy sees the new seq), and maps each reply back to the logged
seq before it is yielded. Only a version-1 body (logged before; it carries its own seq, which the
enclave holds to the frame's) is re-encoded when renumbered, as the current version.
A replay that starts from a strategy's snapshot (``batches.snapshot``) restores it first
(``restore``, after the venue's state at start when there is one) and sends the batches with
their logged seqs, from the snapshot's on.

The enclave is shut down (``shutdown`` → ``bye``), or killed, in ``finally``, whether the caller
consumed every reply or stopped early.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from zcbench.auditlog.verify import BootVerifier, resolve_log_path
from zcbench.auditlog.writer import batch_event_time
from zcbench.channel import ChannelClosed, Connection, FrameError, Message
from zcbench.errors import DataError, EnvError, UsageError
from zcbench.host._boot import ledger_exchange
from zcbench.host.images import BuildImage, EnclaveImage
from zcbench.host.launcher import EnclaveProcess
from zcbench.host.logwriter import HostLog
from zcbench.host.session import EnclaveSession, open_session
from zcbench.strategy import (
    Batch,
    Context,
    decode_batch,
    decode_context,
    encode_batch,
    encode_context,
)
from zcbench.strategy._feedback import context_carries_seq
from zcbench.strategy._wire import batch_carries_seq

if TYPE_CHECKING:
    from zcbench.auditlog.replay import ReplayReport
    from zcbench.auditlog.snapshots import LoggedSnapshot
    from zcbench.host.live import RunLedger
    from zcbench.keys import KeyBroker

__all__ = ["EnclaveReplayRunner", "ReplayEnclaveError", "build_of_run", "replay_log"]


class ReplayEnclaveError(DataError):
    """The replay enclave refused or failed a batch the live enclave had accepted."""


class EnclaveReplayRunner:
    """Replays batches through a fresh enclave loaded from ``build`` (a build folder or any
    :class:`~zcbench.host.images.EnclaveImage`).

    ``broker`` releases a sealed build's data key (default: the local key broker in the zcbench
    home, like a live run); ``trust`` is the root for the replay enclave's boot document
    (``dev`` for the local enclave: SIMULATED). ``launcher`` starts the enclave given a scratch
    folder (default: the local enclave process; on Nitro, e.g. ``lambda _: launch_nitro(eif)``
    with ``trust="aws"`` and a KMS broker, as for ``run_live``). ``keep_dir`` keeps the replay
    enclave's own log and boot document there (it must not exist yet or be empty). ``ledger``
    (a :class:`zcbench.ledger.runs.LedgerRunHook`): the replay enclave passes the ledger's gate
    first, as a live run's does (a build measured with a ledger requirement replays only so),
    and its run-start is in the ledger; after its last batch it appends a final run-checkpoint
    of its log (no run-end: it writes no summary), which the next run's run-start names.
    """

    def __init__(
        self,
        build: Path | EnclaveImage,
        *,
        broker: KeyBroker | None = None,
        trust: str = "dev",
        launcher: Callable[[Path], EnclaveProcess] | None = None,
        isolate_network: bool | None = None,
        enclave_env: Mapping[str, str] | None = None,
        keep_dir: Path | None = None,
        reply_timeout: float = 30.0,
        boot_timeout: float = 60.0,
        run_id: str | None = None,
        ledger: RunLedger | None = None,
    ) -> None:
        self.ledger = ledger
        self.image: EnclaveImage = BuildImage(Path(build)) if isinstance(build, Path) else build
        self.broker = broker
        self.trust = trust
        self.launcher = launcher
        self.isolate_network = isolate_network
        self.enclave_env = enclave_env
        self.keep_dir = keep_dir
        self.reply_timeout = reply_timeout
        self.boot_timeout = boot_timeout
        self.run_id = run_id
        self.last_run_id: str | None = None
        """The run id of the latest replay enclave (its log's origin names it)."""
        self.renumbered = False
        """Whether the latest replay had to renumber its batches (see the module docstring)."""

    @property
    def pcr0(self) -> bytes | None:
        """The PCR0 the replay enclave must attest to (the build's committed one)."""
        return self.image.expected_pcrs().get(0)

    def replay(self, batches: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
        """Launch, boot, ingest each batch, yield ``(logged seq, OUT body)``; always shut down."""
        image_args = self.image.launch_args() if self.launcher is None else []
        run_id = self.run_id or f"replay-{secrets.token_hex(8)}"
        self.last_run_id = run_id
        self.renumbered = False
        if self.keep_dir is not None:
            if self.keep_dir.exists() and any(self.keep_dir.iterdir()):
                raise UsageError(
                    f"{self.keep_dir} is not empty; give a new folder for the replay enclave's log"
                )
            self.keep_dir.mkdir(parents=True, exist_ok=True)
            scratch: tempfile.TemporaryDirectory[str] | None = None
            folder = self.keep_dir
        else:
            scratch = tempfile.TemporaryDirectory(prefix="zcbench-replay-")
            folder = Path(scratch.name)
        session: EnclaveSession | None = None
        try:
            session = open_session(
                self.image,
                folder,
                run_id,
                trust=self.trust,
                broker=self.broker,
                launcher=self.launcher,
                isolate_network=self.isolate_network,
                enclave_env=self.enclave_env,
                boot_timeout=self.boot_timeout,
                image_args=image_args if self.launcher is None else None,
            )
            conn, enclave, log = session.conn, session.enclave, session.log
            assert conn is not None
            assert log is not None
            if self.ledger is not None:  # a replay is a run the ledger holds too
                self.ledger.gate(ledger_exchange(conn, self.broker, self.reply_timeout),
                                 session.origin)
            snapshot = getattr(batches, "snapshot", None)
            first = 0 if snapshot is None else snapshot.seq
            for sent, (seq, body) in enumerate(batches, start=first):
                start = getattr(batches, "venue_start", None) if sent == first else None
                if start is not None:
                    self._start(conn, enclave, log, start)
                if snapshot is not None and sent == first:
                    self._restore(conn, enclave, log, snapshot)
                data = body
                events = decode_batch(body, seq=seq).events  # held to its record's seq
                if seq != sent:
                    self.renumbered = True
                    if batch_carries_seq(body):  # version 1: its bytes name the logged seq
                        data = encode_batch(Batch(sent, events))
                feedback = getattr(batches, "feedback", {}).pop(seq, None)
                if feedback is not None:
                    self._feed(conn, enclave, log, seq, sent, feedback)
                reply = self._ingest(conn, enclave, sent, data)
                signals: bytes = reply["signals"]
                # stored and checked like a live run's batch before its body is used
                newest = batch_event_time(events.get_column("ts"))
                log.stage_reply(sent, data, reply, event_time_ns=newest)
                log.flush()
                yield seq, signals
            if self.ledger is not None:  # the replay's log as it ends, in the ledger
                self.ledger.final_checkpoint(
                    ledger_exchange(conn, self.broker, self.reply_timeout))
            session.shutdown("replay done")
        finally:
            if self.ledger is not None:
                self.ledger.close()  # no run-end: a replay writes no summary (closed once)
            if session is not None:
                session.close()
            if scratch is not None:
                scratch.cleanup()

    def _feed(
        self, conn: Connection, enclave: EnclaveProcess, log: HostLog, logged: int, seq: int,
        body: bytes,
    ) -> None:
        """Feed the feedback logged before batch ``logged`` first, as that of batch ``seq``
        (they differ when renumbered), logged as the live run did: its bytes as logged (a
        context's bytes carry no seq), but a version 2 body's, which names the logged seq."""
        context = decode_context(body, seq=logged)  # held to its record's seq
        if seq != logged and context_carries_seq(body):
            body = encode_context(
                Context(seq, context.outcomes, context.positions, context.limits)
            )
        reply = self._request(conn, enclave, seq, Message("feedback", {"seq": seq, "body": body}))
        if reply.type != "feedback_logged" or reply["seq"] != seq:
            raise ReplayEnclaveError(
                f"the replay enclave did not log batch {seq}'s feedback: "
                f"{reply.fields.get('reason', reply.type)}"
            )
        log.stage_feedback(
            seq, body, reply["checkpoint"], time_ns=reply["time_ns"], leaf=reply["leaf"]
        )

    def _start(self, conn: Connection, enclave: EnclaveProcess, log: HostLog, body: bytes) -> None:
        """Feed a continuing run's venue state at start first, logged as the live run did."""
        reply = self._request(conn, enclave, 0, Message("start", {"body": body}))
        if reply.type != "start_logged":
            raise ReplayEnclaveError(
                "the replay enclave did not log the venue's state at start: "
                f"{reply.fields.get('reason', reply.type)}"
            )
        log.stage_start(body, reply["checkpoint"], time_ns=reply["time_ns"], leaf=reply["leaf"])

    def _restore(self, conn: Connection, enclave: EnclaveProcess, log: HostLog,
                 snapshot: LoggedSnapshot) -> None:
        """Restore the strategy from the logged snapshot, logged as the replay enclave did."""
        reply = self._request(conn, enclave, snapshot.seq,
                              Message("restore", snapshot.restore_fields()))
        if reply.type != "restored":
            raise ReplayEnclaveError(
                f"the replay enclave refused the snapshot at log index {snapshot.index}: "
                f"{reply.fields.get('reason', reply.type)}"
            )
        log.stage_note(reply["body"], reply["checkpoint"], time_ns=reply["time_ns"],
                       leaf=reply["leaf"])
        log.flush()

    def _request(
        self, conn: Connection, enclave: EnclaveProcess, seq: int, msg: Message
    ) -> Message:
        try:
            conn.send(msg)
            return conn.recv(timeout=self.reply_timeout)
        except TimeoutError:
            raise EnvError(
                f"the replay enclave gave no reply for batch {seq} within "
                f"{self.reply_timeout} s; {enclave.diagnostics()}"
            ) from None
        except (ChannelClosed, FrameError) as exc:
            raise EnvError(
                f"the replay enclave went away at batch {seq}: {exc}; {enclave.diagnostics()}"
            ) from None

    def _ingest(self, conn: Connection, enclave: EnclaveProcess, seq: int, data: bytes) -> Message:
        try:
            conn.send(Message("ingest", {"seq": seq, "batch": data}))
            reply = conn.recv(timeout=self.reply_timeout)
        except TimeoutError:
            raise EnvError(
                f"the replay enclave gave no reply for batch {seq} within "
                f"{self.reply_timeout} s; {enclave.diagnostics()}"
            ) from None
        except (ChannelClosed, FrameError) as exc:
            raise EnvError(
                f"the replay enclave went away at batch {seq}: {exc}; {enclave.diagnostics()}"
            ) from None
        if reply.type == "error":
            raise ReplayEnclaveError(
                f"the replay enclave refused batch {seq} ({reply['code']}): {reply['reason']}"
            )
        if reply.type != "signals" or reply["seq"] != seq:
            raise ReplayEnclaveError(
                f"the replay enclave sent {reply.type!r}, not the signals of batch {seq}"
            )
        return reply


def build_of_run(path: Path) -> Path:
    """The build folder named (``image``) in the ``summary.json`` of the run that ``path`` (a run
    folder or its ``log/`` folder) belongs to.

    Raises :class:`~zcbench.errors.UsageError` when there is no summary (a slice, a bare log
    folder) or the run used an unsealed module rather than a build: the caller must name the
    build; :class:`~zcbench.errors.EnvError` when the named folder is gone.
    """
    _, _, run_folder = resolve_log_path(path)
    summary = run_folder / "summary.json" if run_folder is not None else None
    if summary is None or not summary.is_file():
        raise UsageError(f"{path} has no run summary naming its build; name the build folder")
    try:
        image = json.loads(summary.read_text())["image"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f'{summary} names no build ("image"); name the build folder') from None
    build = Path(str(image))
    if build.is_file():
        raise UsageError(
            f"the run used an unsealed module image ({build.name}), not a build; "
            "name the build folder"
        )
    if not build.is_dir():
        raise EnvError(f"the build folder {build} named by {summary} does not exist")
    return build


def replay_log(
    path: Path,
    *,
    build: Path | EnclaveImage | None = None,
    trust: str | Path = "aws",
    boot_verifier: BootVerifier | None = None,
    index_range: tuple[int, int] | None = None,
    unsafe_skip_log_check: bool = False,
    keep_dir: Path | None = None,
    broker: KeyBroker | None = None,
    progress: bool | None = None,
    from_snapshot: bool = True,
) -> ReplayReport:
    """Verify the log at ``path`` and replay it through a fresh local enclave from ``build``
    (default: :func:`build_of_run`); :func:`zcbench.auditlog.replay.check_replay`'s report.

    ``trust`` and ``boot_verifier`` are for the *logged* boot document (``dev`` for local runs;
    a verifier holding it to a commitment's PCRs); the local replay enclave itself is checked
    against the build's committed PCRs under the development CA (SIMULATED). ``from_snapshot``
    (default): a range is replayed from the newest strategy snapshot logged before it
    (False: from the run's start).
    """
    from zcbench.auditlog.replay import check_replay

    runner = EnclaveReplayRunner(
        build if build is not None else build_of_run(path), broker=broker, keep_dir=keep_dir
    )
    return check_replay(
        path,
        runner,
        trust=trust,
        boot_verifier=boot_verifier,
        index_range=index_range,
        unsafe_skip_log_check=unsafe_skip_log_check,
        progress=progress,
        from_snapshot=from_snapshot,
    )
