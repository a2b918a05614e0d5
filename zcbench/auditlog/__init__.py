"""zcbench.auditlog: the signed, append-only audit log of a run (DESIGN.md, "The signed log").

Every batch in and every signal out is a deterministic CBOR record, a leaf of an RFC 9162 Merkle
tree whose checkpoints (C2SP signed notes) the enclave signs with the ephemeral key its boot
attestation binds. The modules, one concept each:

* :mod:`~zcbench.auditlog.merkle`      tree hashes, proofs and their verification, compact range
* :mod:`~zcbench.auditlog.records`     the record format
* :mod:`~zcbench.auditlog.note`        C2SP signed notes, vkeys, cosignature/v1
* :mod:`~zcbench.auditlog.checkpoint`  checkpoint bodies, the log signer, ``verify_checkpoint``
* :mod:`~zcbench.auditlog.storage`     crash-safe segment files and recovery
* :mod:`~zcbench.auditlog.writer`      the enclave's signing state and the host's checked commit
* :mod:`~zcbench.auditlog.location`    what a path is: run folder, log folder, slice, or no log
* :mod:`~zcbench.auditlog.boot`        the boot document's identity, held to a build's PCRs
* :mod:`~zcbench.auditlog.opening`     a log's boot record, its key (``log_vkey``), its start state
* :mod:`~zcbench.auditlog.verdict`     the classifications and ``LogReport``
* :mod:`~zcbench.auditlog.verify`      ``check_log`` / ``verify_log``
* :mod:`~zcbench.auditlog.slice`       the slice format (``LogSlice``) and ``check_slice``
* :mod:`~zcbench.auditlog.export`      writing slices with inclusion proofs that verify alone
* :mod:`~zcbench.auditlog.select`      ``RecordFilter``: records by kind, symbol, time, index
* :mod:`~zcbench.auditlog.frame`       the analysts' polars view (``to_polars``, ``events_frame``,
  ``outcomes_frame``, ``positions_frame``, ``signals_frame``)
* :mod:`~zcbench.auditlog.listing`     the streamed listing ``zcbench log show`` prints
* :mod:`~zcbench.auditlog.witness`     witness state and cosigning
* :mod:`~zcbench.auditlog.replay`      replay of the logged IN batches, OUT bodies compared

It must not depend on ``zcbench.host`` or ``zcbench.enclave``; it uses ``zcbench.nitro`` (boot
documents, lazily) and ``zcbench.strategy`` (body codecs, lazily). Replay compares OUT bodies
from a :class:`~zcbench.auditlog.replay.ReplayRunner` it is given; the runner that drives a
replay enclave lives in ``zcbench.host.replay``.
"""

from zcbench.auditlog._errors import LogFormatError, NoteError, ProofError, WitnessRefusal
from zcbench.auditlog.boot import boot_verifier_for
from zcbench.auditlog.checkpoint import Checkpoint, LogSigner, log_origin, verify_checkpoint
from zcbench.auditlog.export import ExportSummary, build_slice, export_slice
from zcbench.auditlog.frame import (
    events_frame,
    outcomes_frame,
    positions_frame,
    signals_frame,
    to_polars,
)
from zcbench.auditlog.listing import Listing, list_records
from zcbench.auditlog.location import LogLocation, locate_log, origin_hint
from zcbench.auditlog.merkle import CompactRange
from zcbench.auditlog.opening import LogKey, log_vkey
from zcbench.auditlog.records import Record, decode_record, encode_record
from zcbench.auditlog.replay import (
    ReplayMismatchError,
    ReplayReport,
    ReplayRunner,
    check_replay,
    verify_replay,
)
from zcbench.auditlog.select import RecordFilter, parse_time_ns
from zcbench.auditlog.slice import LogSlice, check_slice
from zcbench.auditlog.storage import LogDamageError, LogStore, RecoveryReport, recover
from zcbench.auditlog.verify import (
    BootIdentity,
    LogReport,
    LogVerificationError,
    check_log,
    verify_log,
)
from zcbench.auditlog.writer import BatchRecords, EnclaveLogState, HostLogWriter

__all__ = [
    "BatchRecords",
    "BootIdentity",
    "Checkpoint",
    "CompactRange",
    "EnclaveLogState",
    "ExportSummary",
    "HostLogWriter",
    "Listing",
    "LogDamageError",
    "LogFormatError",
    "LogKey",
    "LogLocation",
    "LogReport",
    "LogSigner",
    "LogSlice",
    "LogStore",
    "LogVerificationError",
    "NoteError",
    "ProofError",
    "Record",
    "RecordFilter",
    "RecoveryReport",
    "ReplayMismatchError",
    "ReplayReport",
    "ReplayRunner",
    "WitnessRefusal",
    "boot_verifier_for",
    "build_slice",
    "check_log",
    "check_replay",
    "check_slice",
    "decode_record",
    "encode_record",
    "events_frame",
    "export_slice",
    "list_records",
    "locate_log",
    "log_origin",
    "log_vkey",
    "origin_hint",
    "outcomes_frame",
    "parse_time_ns",
    "positions_frame",
    "recover",
    "signals_frame",
    "to_polars",
    "verify_checkpoint",
    "verify_log",
    "verify_replay",
]
