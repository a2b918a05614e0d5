"""Submitting ledger checkpoints to witnesses (C2SP tlog-witness), and collecting the quorum.

:class:`WitnessClient` speaks ``add-checkpoint`` to one witness over one keep-alive HTTP
connection. :func:`witness_ledger` sends the ledger's newest checkpoint to every witness of a
tlog-policy that has a URL, with the consistency proof from the size it believes that witness
holds (remembered in the ledger folder's ``witness-sizes.json``, with the tree's compact range at
that size and where the next entry starts in the log); a 409 carrying the witness's size is
retried once with a proof from that size. The proof is built from that compact range (or the
verified record's, :meth:`Ledger.tree_from`) and the entries after it, so witnessing a grown
ledger reads only what it grew by, not the whole ledger. Each returned cosignature is verified
against the policy's key for that witness before it counts. When the quorum holds, the cosigned
checkpoint becomes the ledger's witnessed one (``checkpoint``); otherwise nothing is published
and the report says which witness refused and why.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from zcbench.auditlog import LogFormatError, NoteError
from zcbench.auditlog.checkpoint import parse_checkpoint_note
from zcbench.auditlog.merkle import consistency_proof_from
from zcbench.auditlog.note import Cosigner, parse_note
from zcbench.errors import EnvError, UsageError
from zcbench.ledger.policy import PolicyWitness, TlogPolicy, check_quorum
from zcbench.ledger.store import Ledger, TreeMark, write_atomic

__all__ = ["WitnessClient", "WitnessHTTPError", "WitnessOutcome", "WitnessingReport",
           "add_checkpoint_body", "witness_ledger"]

SIZES_FILE: Final = "witness-sizes.json"
_MAX_ANSWER: Final = 65_536
_MAX_SIZES: Final = 1024 * 1024


class WitnessHTTPError(EnvError):
    """A witness answered something other than 200 (``status``; ``size`` for a 409 that
    carries the witness's size), or could not be reached (``status`` 0)."""

    def __init__(self, message: str, status: int, size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.size = size


def add_checkpoint_body(note: bytes, old_size: int, proof: Sequence[bytes]) -> bytes:
    """The add-checkpoint request body."""
    import base64

    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n").encode() + note


class WitnessClient:
    """One witness at ``url`` (its submission prefix, ``http://host:port[/path]``)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"witness URL {url!r} is not http(s)://host[:port][/prefix]")
        self.url = url
        self._parts = parts
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = (http.client.HTTPSConnection if self._parts.scheme == "https"
                   else http.client.HTTPConnection)
            self._conn = cls(self._parts.hostname or "", self._parts.port, timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def add_checkpoint(self, note: bytes, old_size: int, proof: Sequence[bytes]) -> bytes:
        """The witness's cosignature lines for ``note``; raises :class:`WitnessHTTPError`."""
        body = add_checkpoint_body(note, old_size, proof)
        path = self._parts.path.rstrip("/") + "/add-checkpoint"
        for attempt in (0, 1):  # a keep-alive connection the server closed: reconnect once
            conn = self._connection()
            try:
                conn.request("POST", path, body=body,
                             headers={"Content-Type": "text/plain; charset=utf-8"})
                response = conn.getresponse()
                answer = response.read(_MAX_ANSWER + 1)
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt:
                    raise WitnessHTTPError(f"witness {self.url} cannot be reached: {exc}",
                                           0) from None
        if len(answer) > _MAX_ANSWER:
            raise WitnessHTTPError(f"witness {self.url} answered more than {_MAX_ANSWER} bytes",
                                   response.status)
        if response.status == 200:
            return answer
        text = answer.decode("utf-8", errors="replace").strip()
        size = None
        if response.status == 409 and response.getheader("Content-Type", "").startswith(
                "text/x.tlog.size"):
            if not text.isdigit() or text != str(int(text)):
                raise WitnessHTTPError(f"witness {self.url}: a 409 whose size {text!r} is not "
                                       "a decimal", 409)
            size = int(text)
        raise WitnessHTTPError(f"witness {self.url} answered {response.status}: {text}",
                               response.status, size)


@dataclass(frozen=True, slots=True)
class WitnessOutcome:
    """What one witness did: cosigned (with its timestamp), or refused with status and why."""

    name: str
    cosigned: bool
    status: int
    message: str


@dataclass(frozen=True, slots=True)
class WitnessingReport:
    """The checkpoint sent, each witness's outcome, the cosigned note and whether the quorum
    holds (only then was it published as the ledger's witnessed checkpoint)."""

    size: int
    outcomes: tuple[WitnessOutcome, ...]
    cosigned: bytes
    quorum_met: bool
    cosigners: tuple[str, ...] = field(default=())


def _proof(ledger: Ledger, old: int, new: int, known: TreeMark | None) -> list[bytes]:
    if old == 0 or old == new:
        return []
    compact, later = ledger.tree_from(old, known)
    return consistency_proof_from(compact, later[: new - old])


def _read_marks(ledger: Ledger) -> dict[str, TreeMark | int]:
    """What ``witness-sizes.json`` remembers per witness: a mark, or (an older file) a size."""
    path = ledger.folder / SIZES_FILE
    try:
        with path.open("rb") as handle:
            found = json.loads(handle.read(_MAX_SIZES + 1)[:_MAX_SIZES])
    except (OSError, ValueError):
        return {}  # a hint only: a wrong size costs one 409 and its retry
    marks: dict[str, TreeMark | int] = {}
    for name, held in (found.items() if isinstance(found, dict) else ()):
        if type(held) is int and held >= 0:
            marks[name] = held
            continue
        try:
            if not isinstance(held, dict) or set(held) != {"size", "compact", "segment",
                                                            "offset"}:
                continue
            ints = (held["size"], held["segment"], held["offset"])
            if not all(type(v) is int and v >= 0 for v in ints):
                continue
            compact = tuple(bytes.fromhex(h) for h in held["compact"])
            if len(compact) != bin(ints[0]).count("1") or any(len(h) != 32 for h in compact):
                continue
        except (TypeError, ValueError):
            continue
        marks[name] = TreeMark(ints[0], compact, ints[1], ints[2])
    return marks


def _marks_json(marks: dict[str, TreeMark | int]) -> bytes:
    doc = {name: held if isinstance(held, int) else
           {"size": held.size, "compact": [h.hex() for h in held.compact],
            "segment": held.segment, "offset": held.offset}
           for name, held in marks.items()}
    return json.dumps(doc, sort_keys=True).encode() + b"\n"


def _verified_line(answer: bytes, witness: PolicyWitness, text: str) -> str:
    """The one cosignature line in ``answer`` by ``witness``'s key, verified."""
    for line in answer.decode("utf-8", errors="replace").split("\n"):
        if not line:
            continue
        try:
            sig = parse_note(("x\n\n" + line + "\n").encode()).signatures[0]
        except LogFormatError:
            sig = None  # a line that is no signature: ignored, as unknown signers are
        if sig is not None and sig.name == witness.key_name and sig.key_id == witness.key_id:
            Cosigner.verify(sig, text, witness.public_key)  # raises NoteError
            return line + "\n"
    raise NoteError(f"witness {witness.name} answered no cosignature by its key",
                    check="cosignature_key")


def witness_ledger(ledger: Ledger, policy: TlogPolicy, *, timeout: float = 10.0
                   ) -> WitnessingReport:
    """Send the ledger's newest checkpoint to the policy's witnesses; publish it cosigned when
    the quorum holds (see the module docstring)."""
    note = ledger.latest_checkpoint()
    checkpoint = parse_checkpoint_note(note)
    text = parse_note(note).text
    marks = _read_marks(ledger)
    now = ledger.tree_mark()
    if now is not None and now.size != checkpoint.size:
        now = None
    outcomes: list[WitnessOutcome] = []
    lines: list[str] = []
    for witness in policy.witnesses.values():
        if witness.url is None:
            continue
        client = WitnessClient(witness.url, timeout=timeout)
        held = marks.get(witness.name, 0)
        known = held if isinstance(held, TreeMark) else None
        old = held.size if isinstance(held, TreeMark) else held
        old = old if 0 <= old <= checkpoint.size else 0
        try:
            try:
                answer = client.add_checkpoint(note, old,
                                               _proof(ledger, old, checkpoint.size, known))
            except WitnessHTTPError as exc:
                if exc.status != 409 or exc.size is None or exc.size > checkpoint.size:
                    raise
                old = exc.size  # the spec's retry: once, from the size the witness holds
                answer = client.add_checkpoint(note, old,
                                               _proof(ledger, old, checkpoint.size, known))
            lines.append(_verified_line(answer, witness, text))
            marks[witness.name] = now if now is not None else checkpoint.size
            outcomes.append(WitnessOutcome(witness.name, True, 200, "cosigned"))
        except WitnessHTTPError as exc:
            outcomes.append(WitnessOutcome(witness.name, False, exc.status, str(exc)))
        except NoteError as exc:
            outcomes.append(WitnessOutcome(witness.name, False, 200, str(exc)))
        finally:
            client.close()
    write_atomic(ledger.folder / SIZES_FILE, _marks_json(marks))
    cosigned = note + "".join(lines).encode()
    report = check_quorum(cosigned, policy)
    if report.met:
        ledger.store_witnessed(cosigned)
    return WitnessingReport(checkpoint.size, tuple(outcomes), cosigned, report.met,
                            report.cosigned)
