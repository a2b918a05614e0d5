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
* :mod:`~zcbench.auditlog.verify`      ``check_log`` / ``verify_log`` and the classifications
* :mod:`~zcbench.auditlog.export`      slices with inclusion proofs that verify alone
* :mod:`~zcbench.auditlog.frame`       the analysts' polars view
* :mod:`~zcbench.auditlog.witness`     witness state and cosigning
* :mod:`~zcbench.auditlog.replay`      replay of the logged IN batches, OUT bodies compared

It must not depend on ``zcbench.host`` or ``zcbench.enclave``; it uses ``zcbench.nitro`` (boot
documents, lazily) and ``zcbench.strategy`` (body codecs, lazily). Replay compares OUT bodies
from a :class:`~zcbench.auditlog.replay.ReplayRunner` it is given; the runner that drives a
replay enclave lives in ``zcbench.host.replay``.
"""

from zcbench.auditlog._errors import LogFormatError, NoteError, ProofError, WitnessRefusal
from zcbench.auditlog.checkpoint import Checkpoint, LogSigner, log_origin, verify_checkpoint
from zcbench.auditlog.merkle import CompactRange
from zcbench.auditlog.records import Record, decode_record, encode_record
from zcbench.auditlog.replay import (
    ReplayMismatchError,
    ReplayReport,
    ReplayRunner,
    check_replay,
    verify_replay,
)
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
    "HostLogWriter",
    "LogDamageError",
    "LogFormatError",
    "LogReport",
    "LogSigner",
    "LogStore",
    "LogVerificationError",
    "NoteError",
    "ProofError",
    "Record",
    "RecoveryReport",
    "ReplayMismatchError",
    "ReplayReport",
    "ReplayRunner",
    "WitnessRefusal",
    "check_log",
    "check_replay",
    "decode_record",
    "encode_record",
    "log_origin",
    "recover",
    "verify_checkpoint",
    "verify_log",
    "verify_replay",
]
