"""The audit log's errors, under the package tree (zcbench.errors).

::

    VerificationError
    ├── ProofError            a Merkle inclusion or consistency proof does not verify
    ├── NoteError             a signed note or checkpoint does not verify (signature, key, origin)
    ├── LogVerificationError  a log failed verification; carries its LogReport (verify.py)
    └── WitnessRefusal        a witness refuses a checkpoint inconsistent with its state
    DataError
    └── LogFormatError        bytes that are not a well-formed record, frame, note or export
"""

from __future__ import annotations

from zcbench.errors import DataError, VerificationError

__all__ = ["LogFormatError", "NoteError", "ProofError", "WitnessRefusal"]


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof does not verify (RFC 9162 §2.1)."""


class NoteError(VerificationError):
    """A signed note, checkpoint or cosignature is malformed for its purpose or does not verify."""


class LogFormatError(DataError):
    """Bytes that are not a well-formed record, frame, note or export file."""


class WitnessRefusal(VerificationError):
    """A witness refuses a checkpoint: rollback, fork, another key or a failed proof.

    ``status`` is the C2SP tlog-witness HTTP status of the refusal (409 unless set), and
    ``witness_size`` the witness's size for the origin when the status is 409.
    """

    status: int = 409
    witness_size: int | None = None
