"""One attestation request and its verdict, as the attestation panel shows it.

Owns :class:`AttestationResult` (the verifier's report taken as is, the raw document, the nonce
asked for, the commitment's PCRs, when and where it came from, and the log checkpoint it
carries, read by :mod:`zcbench.nitro.binding`) and the nonce a person types. It decides nothing:
the verdict is :func:`zcbench.nitro.check_attestation`'s.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zcbench.errors import DataError, UsageError
from zcbench.nitro import AttestationPolicy, AttestationReport, check_attestation
from zcbench.nitro.binding import LogBinding, check_log_binding

__all__ = [
    "DEFAULT_NONCE_BYTES",
    "AttestationResult",
    "CheckpointFacts",
    "attestation_result",
    "checkpoint_facts",
    "parse_nonce",
]

DEFAULT_NONCE_BYTES = 32
"""Length of the random nonce the panel proposes."""

_MAX_NONCE_BYTES = 1024  # what an NSM document can carry (zcbench.nitro.document)

def parse_nonce(text: str) -> bytes:
    """The nonce written as hex (spaces and a ``0x`` prefix allowed); raises :class:`UsageError`.

    The message says what is wrong with the text so a person can correct it.
    """
    cleaned = "".join(text.split())
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned:
        raise UsageError("the nonce is empty: type hex digits or press 'New nonce'")
    bad = sorted({c for c in cleaned if c not in "0123456789abcdefABCDEF"})
    if bad:
        raise UsageError(
            f"the nonce must be hex digits 0-9 a-f; it contains {''.join(bad)!r}"
        )
    if len(cleaned) % 2:
        raise UsageError(
            f"the nonce has {len(cleaned)} hex digits; it needs an even number (two per byte)"
        )
    if len(cleaned) // 2 > _MAX_NONCE_BYTES:
        raise UsageError(
            f"the nonce is {len(cleaned) // 2} bytes; an attestation document holds at most "
            f"{_MAX_NONCE_BYTES}"
        )
    return bytes.fromhex(cleaned)


CheckpointFacts = LogBinding
"""The checkpoint an enclave put in ``user_data``: :class:`zcbench.nitro.binding.LogBinding`."""


def checkpoint_facts(report: AttestationReport) -> LogBinding | None:
    """The checkpoint in the document's ``user_data`` and whether the attested key signed it
    (:func:`zcbench.nitro.binding.check_log_binding`), or ``None`` when there is none.

    Raises :class:`DataError` when ``user_data`` is present but is not a checkpoint map.
    """
    if report.document is None:
        return None
    return check_log_binding(report.document, policy=report.policy)


@dataclass(frozen=True)
class AttestationResult:
    """One attestation request and its verdict.

    ``report`` is the verifier's report, unaltered; ``document`` the raw bytes as received;
    ``nonce`` the nonce asked for and checked (``None``: none was given, none was checked);
    ``expected_pcrs`` what the commitment says; ``requested_at`` when the panel asked (the age
    shown is measured from the document's own time to this instant); ``source`` says where the
    document came from, in words.
    """

    report: AttestationReport
    document: bytes
    nonce: bytes | None
    expected_pcrs: Mapping[int, bytes]
    requested_at: dt.datetime
    source: str
    checkpoint: LogBinding | None = None
    checkpoint_problem: str | None = None
    commitment: Mapping[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``"VERIFIED"`` or ``"FAILED"`` (SIMULATED is said beside it, never instead)."""
        return "VERIFIED" if self.report.verified else "FAILED"

    @property
    def age(self) -> dt.timedelta | None:
        """How old the document was when it was requested, or ``None`` if it did not parse."""
        doc = self.report.document
        return None if doc is None else self.requested_at - doc.time


def attestation_result(
    document: bytes,
    *,
    nonce: bytes | None,
    expected_pcrs: Mapping[int, bytes],
    trust: str | pathlib.Path,
    at: dt.datetime,
    source: str,
    max_age: dt.timedelta | None = None,
    commitment: Mapping[str, Any] | None = None,
) -> AttestationResult:
    """Check ``document`` with :func:`check_attestation` and gather what the panel shows.

    Misuse (no expected PCRs, a naive ``at``) raises :class:`UsageError`; a failed check does
    not raise, it is the result's verdict.
    """
    policy = AttestationPolicy(
        trust=trust, expected_pcrs=expected_pcrs, nonce=nonce, max_age=max_age
    )
    report = check_attestation(document, policy, at=at)
    checkpoint: LogBinding | None = None
    problem: str | None = None
    try:
        checkpoint = checkpoint_facts(report)
    except DataError as exc:
        problem = str(exc)
    return AttestationResult(
        report=report,
        document=document,
        nonce=nonce,
        expected_pcrs=dict(expected_pcrs),
        requested_at=at,
        source=source,
        checkpoint=checkpoint,
        checkpoint_problem=problem,
        commitment=dict(commitment or {}),
    )


