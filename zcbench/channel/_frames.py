"""Frames and messages: a 4-byte big-endian length, then one CBOR map with ``v`` and ``type``.

This module owns the byte layout of one frame and the shape of every message type; it never
interprets strategy data (batches and signals travel as opaque byte strings).

Error tree (all under :mod:`zcbench.errors`)::

    DataError
    └── FrameError          a frame that cannot be accepted; ``fatal`` says whether the stream
                            lost its framing (oversize or truncated: close) or only this frame
                            was bad (answer with an error frame, keep going)
    EnvError
    └── ChannelClosed       the peer went away or the connection was closed; ``reason`` says why
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from zcbench import _cbor
from zcbench._cbor import describe
from zcbench.errors import DataError, EnvError

__all__ = [
    "HEADER",
    "LEAF_HASH_SIZE",
    "MAX_FRAME",
    "MAX_LEDGER_BATCH",
    "MAX_LEDGER_ENTRY",
    "MAX_LEDGER_STATE",
    "MESSAGE_FIELDS",
    "PROTOCOL_VERSION",
    "ChannelClosed",
    "FrameError",
    "Message",
    "decode_body",
    "encode_frame",
    "error_message",
]

PROTOCOL_VERSION: Final = 1
HEADER: Final = struct.Struct(">I")
LEAF_HASH_SIZE: Final = 32
"""Bytes of one leaf hash in a ``signals`` reply (SHA-256)."""
MAX_LEDGER_BATCH: Final = 1024
"""Most ledger entries in one ``ledger_entries`` frame (a ledger is delivered in several)."""
MAX_LEDGER_ENTRY: Final = 65_535
"""Largest ledger entry (the tlog-tiles bound, :data:`zcbench.ledger.entries.MAX_ENTRY_BYTES`)."""
MAX_LEDGER_STATE: Final = 16 * 1024 * 1024
"""Largest sealed ledger state (:data:`zcbench.enclave.ledger.MAX_LEDGER_STATE`)."""
MAX_SEAL_KEY: Final = 4096
"""Largest key broker sealing key in a ``ledger_genesis`` frame (a DER RSA public key)."""
MAX_FRAME: Final = 64 * 1024 * 1024
"""Default hard limit on one frame's body; a 1,000-event batch is about 40 KB."""

_OPTIONAL: Final = "?"
_MAX_DEPTH: Final = 8
"""Deepest nesting in a frame body (message map > a field's array or map > ...)."""

# type -> {field: (accepted python types, optional?)}. Unknown fields are refused, so a frame
# from a newer peer fails loudly rather than being half understood.
MESSAGE_FIELDS: Final[dict[str, dict[str, tuple[tuple[type, ...], bool]]]] = {
    # host -> enclave
    "boot": {"run_id": ((str,), False), "config": ((dict,), False)},
    "key_release": {"ciphertext": ((bytes,), False)},
    "attest": {"nonce": ((bytes,), False)},
    "ingest": {"seq": ((int,), False), "batch": ((bytes,), False)},
    "checkpoint": {},
    "record_note": {"body": ((bytes,), False)},
    "feedback": {"seq": ((int,), False), "body": ((bytes,), False)},
    # a continuing run's venue state at start, logged as the IN record of seq 0 before batch 0
    "start": {"body": ((bytes,), False)},
    "shutdown": {"reason": ((str,), False)},
    # a strategy's snapshot (zcbench.strategy._snapshot): take, seal and log one now; or, before
    # the first batch, restore one with the record that logged it and its inclusion proof
    # under the checkpoint (origin, size, root) of the log it was taken in
    "snapshot": {},
    "restore": {
        "sealed": ((bytes,), False),
        "record": ((bytes,), False),
        "index": ((int,), False),
        "origin": ((str,), False),
        "size": ((int,), False),
        "root": ((bytes,), False),
        "proof": ((list,), False),
    },
    # then, for a continuing run, the previous run's records after that snapshot up to the
    # checkpoint its boot names, in chunks from index ``first`` (``range``: the compact range
    # of the records before it, in the first chunk; ``last`` 1 in the final one)
    "catch_up": {
        "first": ((int,), False),
        "range": ((list,), False),
        "records": ((list,), False),
        "last": ((int,), False),
    },
    # the ledger's gate (zcbench.enclave.ledger): the host delivers, the enclave checks and signs
    "ledger_open": {
        "origin": ((str,), False),
        "key_blob": ((bytes,), False),
        "key_id": ((str,), False),
    },
    "ledger_resume": {"state": ((bytes,), False)},
    "ledger_entries": {"entries": ((list,), False)},
    "ledger_start": {"checkpoint": ((bytes,), False)},
    "ledger_cosigned": {"checkpoint": ((bytes,), False)},
    "ledger_checkpoint": {},
    # the last run-checkpoint of a run without a run-end (a replay), whatever the interval
    "ledger_final": {},
    "ledger_end": {"summary_sha256": ((bytes,), False)},
    # the live version's endorsements: a successor's commitment, a revocation
    "ledger_announce": {
        "pcr0": ((bytes,), False),
        "commitment_sha256": ((bytes,), False),
        "notice_ns": ((int,), False),
    },
    "ledger_revoke": {"pcr0": ((bytes,), False), "reason": ((str,), False)},
    # an archive entry (zcbench.archive.ledger) as an encoded entry whose body the enclave
    # appends at its own index and time
    "ledger_archive": {"entry": ((bytes,), False)},
    # genesis: the first build's enclave makes the ledger key, seals it to the key broker's
    # sealing key and signs the genesis entry (zcbench.host.genesis)
    "ledger_genesis": {
        "origin": ((str,), False),
        "commitment_sha256": ((bytes,), False),
        "seal_key": ((bytes,), False),
    },
    # enclave -> host
    "key_request": {
        "document": ((bytes,), False),
        "ciphertext_blob": ((bytes,), False),
        "key_id": ((str,), False),
    },
    "booted": {
        "run_id": ((str,), False),
        "origin": ((str,), False),
        "public_key": ((bytes,), False),
        "document": ((bytes,), False),
        "record": ((bytes,), False),
        "checkpoint": ((bytes,), False),
        "fields": ((list,), False),
        # 1 when the strategy keeps snapshots (implements snapshot/restore), else 0
        "snapshots": ((int,), True),
    },
    "document": {"document": ((bytes,), False)},
    # the records themselves stay with the host: it rebuilds them from the batch it sent (and
    # its newest event time, which the host computes itself), the signals and this stamp, and
    # checks them against the enclave's leaf hashes (IN, OUT)
    "signals": {
        "seq": ((int,), False),
        "signals": ((bytes,), False),
        "time_ns": ((int,), False),
        "leaves": ((list,), False),
        "checkpoint": ((bytes,), False),
    },
    "note": {"checkpoint": ((bytes,), False), "size": ((int,), False)},
    # a note record the host asked for: its time stamp, leaf hash and the checkpoint after it;
    # for a control record of a run with a ledger, also its control entry and the ledger
    # checkpoint the enclave signed over it
    "note_logged": {
        "time_ns": ((int,), False),
        "leaf": ((bytes,), False),
        "checkpoint": ((bytes,), False),
        "entry": ((bytes,), True),
        "ledger_checkpoint": ((bytes,), True),
    },
    "feedback_logged": {
        "seq": ((int,), False),
        "time_ns": ((int,), False),
        "leaf": ((bytes,), False),
        "checkpoint": ((bytes,), False),
    },
    "start_logged": {
        "seq": ((int,), False),
        "time_ns": ((int,), False),
        "leaf": ((bytes,), False),
        "checkpoint": ((bytes,), False),
    },
    # the snapshot record the enclave logged (its body: the host rebuilds the note record),
    # the sealed snapshot for the host to keep, and the checkpoint after the record
    "snapshot_taken": {
        "body": ((bytes,), False),
        "sealed": ((bytes,), False),
        "time_ns": ((int,), False),
        "leaf": ((bytes,), False),
        "checkpoint": ((bytes,), False),
    },
    "restored": {
        "body": ((bytes,), False),
        "time_ns": ((int,), False),
        "leaf": ((bytes,), False),
        "checkpoint": ((bytes,), False),
    },
    "catch_up_ack": {"next": ((int,), False)},
    # the caught_up snapshot record after the last catch_up chunk, with the sealed state
    "caught_up": {
        "body": ((bytes,), False),
        "sealed": ((bytes,), False),
        "batches": ((int,), False),
        "time_ns": ((int,), False),
        "leaf": ((bytes,), False),
        "checkpoint": ((bytes,), False),
    },
    "bye": {"size": ((int,), False)},
    "ledger_key": {"vkey": ((str,), False)},
    "ledger_ack": {"size": ((int,), False)},
    # an entry the enclave appended and the ledger checkpoint it signed (both None: nothing
    # was due, e.g. a run-checkpoint before its interval)
    "ledger_appended": {
        "entry": ((bytes, type(None)), False),
        "checkpoint": ((bytes, type(None)), False),
        # with the run-start and the run-end: the enclave's verified state, sealed
        "state": ((bytes,), True),
    },
    "ledger_serving": {"size": ((int,), False)},
    # the genesis the enclave made: the ledger's vkey, the key sealed to the broker, the
    # genesis entry, the checkpoint over it and the enclave's verified state, sealed
    "ledger_made": {
        "vkey": ((str,), False),
        "key_blob": ((bytes,), False),
        "entry": ((bytes,), False),
        "checkpoint": ((bytes,), False),
        "state": ((bytes,), False),
    },
    # a run's control socket (zcbench.serve.control): an operator's limit change, kill or
    # re-enable, answered with the control record's log index and the limits now in force
    "control": {
        "action": ((str,), False),
        "operator": ((str,), False),
        "values": ((dict,), False),
        "reason": ((str,), False),
    },
    "controlled": {"index": ((int,), False), "limits": ((dict,), False)},
    # either way
    "error": {
        "code": ((str,), False),
        "reason": ((str,), False),
        "seq": ((int, type(None)), True),
    },
}


class FrameError(DataError):
    """A frame that cannot be accepted.

    ``fatal`` is true when the stream's framing is lost (oversize length, truncated body): the
    connection must close. Otherwise only this frame was bad and the connection stays usable.
    """

    def __init__(self, message: str, *, code: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal


class ChannelClosed(EnvError):
    """The connection is closed: the peer went away, or one side closed it with a reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"channel closed: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Message:
    """One validated message: its ``type`` and its fields (without ``v`` and ``type``)."""

    type: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_fields(self.type, self.fields)

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]


def error_message(code: str, reason: str, seq: int | None = None) -> Message:
    """An ``error`` message; ``reason`` is short and never carries a traceback."""
    return Message("error", {"code": code, "reason": reason[:200], "seq": seq})


def _check_fields(kind: str, fields: Mapping[str, Any]) -> None:
    spec = MESSAGE_FIELDS.get(kind)
    if spec is None:
        raise FrameError(f"unknown message type {kind!r}", code="unknown_type")
    unknown = sorted(set(fields) - set(spec))
    if unknown:
        raise FrameError(f"{kind}: unexpected fields {unknown}", code="ill_typed")
    for name, (types, optional) in spec.items():
        if name not in fields:
            if optional:
                continue
            raise FrameError(f"{kind}: missing field {name!r}", code="ill_typed")
        value = fields[name]
        # bool is an int to Python, never to this protocol
        if isinstance(value, bool) or not isinstance(value, types):
            raise FrameError(
                f"{kind}: field {name!r} has type {type(value).__name__}", code="ill_typed"
            )
        if name == "seq" and isinstance(value, int) and value < 0:
            raise FrameError(f"{kind}: seq must be non-negative, got {value}", code="ill_typed")
    if kind == "signals" and (
        len(fields["leaves"]) != 2
        or not all(isinstance(h, bytes) and len(h) == LEAF_HASH_SIZE for h in fields["leaves"])
    ):
        raise FrameError(
            f"signals: leaves must be two {LEAF_HASH_SIZE}-byte hashes (IN, OUT)", code="ill_typed"
        )
    if kind == "ledger_entries" and (
        len(fields["entries"]) > MAX_LEDGER_BATCH
        or not all(isinstance(e, bytes) and len(e) <= MAX_LEDGER_ENTRY for e in fields["entries"])
    ):
        raise FrameError(
            f"ledger_entries: at most {MAX_LEDGER_BATCH} entries of at most {MAX_LEDGER_ENTRY} "
            "bytes each",
            code="ill_typed",
        )
    if (kind in ("ledger_resume", "ledger_appended", "ledger_made")
            and isinstance(fields.get("state"), bytes)
            and len(fields["state"]) > MAX_LEDGER_STATE):
        raise FrameError(f"{kind}: a sealed state of at most {MAX_LEDGER_STATE} bytes",
                         code="ill_typed")
    if kind == "ledger_archive" and len(fields["entry"]) > MAX_LEDGER_ENTRY:
        raise FrameError(f"ledger_archive: an entry of at most {MAX_LEDGER_ENTRY} bytes",
                         code="ill_typed")
    if kind == "ledger_genesis" and (len(fields["commitment_sha256"]) != LEAF_HASH_SIZE
                                     or len(fields["seal_key"]) > MAX_SEAL_KEY):
        raise FrameError(f"ledger_genesis: commitment_sha256 is 32 bytes, seal_key at most "
                         f"{MAX_SEAL_KEY}", code="ill_typed")
    if kind == "ledger_end" and len(fields["summary_sha256"]) != LEAF_HASH_SIZE:
        raise FrameError("ledger_end: summary_sha256 is 32 bytes", code="ill_typed")
    if kind == "booted" and not all(isinstance(f, str) for f in fields["fields"]):
        raise FrameError("booted: fields must be text", code="ill_typed")


def encode_frame(message: Message, *, max_frame: int = MAX_FRAME) -> bytes:
    """The frame for ``message``: length prefix and canonical CBOR body."""
    body = _cbor.encode_canonical(
        {"v": PROTOCOL_VERSION, "type": message.type, **message.fields}
    )
    if len(body) > max_frame:
        raise FrameError(
            f"{message.type} frame of {len(body)} bytes exceeds the limit of {max_frame}",
            code="oversize",
        )
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Message:
    """The message in one frame body; raises a non-fatal :class:`FrameError` if malformed."""
    try:  # canonical, as encode_frame writes it
        doc = _cbor.decode(body, canonical=True, max_depth=_MAX_DEPTH, max_bytes=MAX_FRAME)
    except _cbor.CborError as exc:
        raise FrameError(f"frame body is not canonical CBOR: {exc}", code="garbage") from None
    if not isinstance(doc, dict) or not all(isinstance(k, str) for k in doc):
        raise FrameError("frame body is not a CBOR map with text keys", code="garbage")
    version = doc.pop("v", None)
    kind = doc.pop("type", None)
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise FrameError(
            f"protocol version {describe(version)}, this build speaks {PROTOCOL_VERSION}",
            code="version",
        )
    if not isinstance(kind, str):
        raise FrameError("frame has no text 'type'", code="ill_typed")
    return Message(kind, doc)
