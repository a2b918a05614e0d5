"""The ledger's errors, under the package tree (zcbench.errors).

::

    VerificationError
    ├── LedgerRuleError          an entry breaks a ledger rule (valid_from before its append,
    │                            a revocation after valid_from of a live version, a run of a
    │                            PCR0 not allowed, ...); nothing is appended
    ├── LedgerVerificationError  a ledger failed verification (entries, checkpoints, quorum,
    │                            consistency with a known checkpoint)
    ├── LedgerKeyRefused         the ledger key is released only to an allowed PCR0
    └── ServeRefused             the gate: an enclave whose PCR0 or run-start the ledger does
                                 not hold refuses to serve
    DataError
    └── LedgerFormatError        bytes that are not a ledger entry, policy or proof file
"""

from __future__ import annotations

from zcbench.errors import DataError, VerificationError

__all__ = [
    "LedgerFormatError",
    "LedgerKeyRefused",
    "LedgerRuleError",
    "LedgerVerificationError",
    "ServeRefused",
]


class LedgerRuleError(VerificationError):
    """An entry breaks a rule of the ledger; the ledger is left as it was."""


class LedgerVerificationError(VerificationError):
    """A ledger (or one of its checkpoints or proofs) does not verify; ``report`` is the
    :class:`~zcbench.ledger.verify.LedgerReport` when a whole ledger was checked."""

    report: object | None = None


class LedgerKeyRefused(VerificationError):
    """The ledger key was asked for by a PCR0 the ledger does not currently allow."""


class ServeRefused(VerificationError):
    """An enclave may not serve: its version or its run-start is not in the ledger."""


class LedgerFormatError(DataError):
    """Bytes that are not a well-formed ledger entry, tlog-policy or tlog-proof."""
