"""zcbench.ledger: one witnessed history per strategy (DESIGN.md, "Ledger").

Each run's log has its own origin and ephemeral key; the ledger is the strategy's one log with a
fixed origin (``<fund>/zcbench/<strategy>``) and a stable Ed25519 key, so witnesses can follow
it and an LP can see every version, upgrade and run in one consistent history. It is an audit
log like a run's (the same storage, Merkle tree, C2SP checkpoints and cosignatures, from
:mod:`zcbench.auditlog`) with its own record type. The modules, one concept each:

* :mod:`~zcbench.ledger.entries`         the entry format (commitment, revocation, run-start,
  run-checkpoint, run-end)
* :mod:`~zcbench.ledger.rules`           what the entries mean: the allowed set at a time, and
  which entry may follow
* :mod:`~zcbench.ledger.key`             the ledger key, sealed by the key broker, released only
  to an allowed PCR0
* :mod:`~zcbench.ledger.store`           the ledger folder: init, open (recovery), append
* :mod:`~zcbench.ledger.policy`          tlog-policy files and the quorum of cosignatures
* :mod:`~zcbench.ledger.proof`           ``.tlog-proof`` files of single entries
* :mod:`~zcbench.ledger.witness_server`  the HTTP witness (C2SP tlog-witness), Starlette on uvicorn
* :mod:`~zcbench.ledger.witness_client`  submitting checkpoints to witnesses, collecting the quorum
* :mod:`~zcbench.ledger.verify`          ``check_ledger`` / ``verify_ledger`` for an LP
* :mod:`~zcbench.ledger.history`         the version and run history, for the report and panel
* :mod:`~zcbench.ledger.runs`            the host's side of a run's ledger (it carries the
  ledger to the enclave, which keeps the rules: :mod:`zcbench.enclave.ledger`), and a run's log
  held to the ledger

It must not depend on ``zcbench.host`` or ``zcbench.enclave``; they call it.
"""

from zcbench.ledger._errors import (
    LedgerFormatError,
    LedgerKeyRefused,
    LedgerRuleError,
    LedgerVerificationError,
    ServeRefused,
)
from zcbench.ledger.entries import (
    CommitmentEntry,
    LedgerEntry,
    RevocationEntry,
    RunCheckpointEntry,
    RunEndEntry,
    RunStartEntry,
    decode_entry,
    encode_entry,
)
from zcbench.ledger.policy import TlogPolicy, check_quorum, load_policy, parse_policy
from zcbench.ledger.proof import format_tlog_proof, tlog_proof_for, verify_tlog_proof
from zcbench.ledger.rules import LedgerState, Version
from zcbench.ledger.store import Ledger

__all__ = [
    "CommitmentEntry",
    "Ledger",
    "LedgerEntry",
    "LedgerFormatError",
    "LedgerKeyRefused",
    "LedgerRuleError",
    "LedgerState",
    "LedgerVerificationError",
    "RevocationEntry",
    "RunCheckpointEntry",
    "RunEndEntry",
    "RunStartEntry",
    "ServeRefused",
    "TlogPolicy",
    "Version",
    "check_quorum",
    "decode_entry",
    "encode_entry",
    "format_tlog_proof",
    "load_policy",
    "parse_policy",
    "tlog_proof_for",
    "verify_tlog_proof",
]
