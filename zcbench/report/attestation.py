"""One attestation request and its verdict, as the LP report and the attestation panel show it.

Owns :class:`AttestationResult` (the verifier's report taken as is, the raw document, the nonce
asked for, the commitment's PCRs, when and where it came from, and the log checkpoint it
carries, read by :mod:`zcbench.nitro.binding`), its one JSON document (:meth:`to_json`,
schema :data:`ATTESTATION_REPORT_SCHEMA`: the verifier's own
:meth:`~zcbench.nitro.AttestationReport.to_dict`, the shape of ``zcbench verify attestation
--json``, plus what the request adds), the commitment's expected PCRs
(:func:`read_commitment`) and the nonce a person types. It decides nothing: the verdict is
:func:`zcbench.nitro.check_attestation`'s. No widget toolkit is imported here.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zcbench.errors import DataError, UsageError
from zcbench.nitro import AttestationPolicy, AttestationReport, check_attestation
from zcbench.nitro.binding import LogBinding, check_log_binding

__all__ = [
    "ATTESTATION_REPORT_SCHEMA",
    "DEFAULT_NONCE_BYTES",
    "AttestationResult",
    "CheckpointFacts",
    "attestation_result",
    "checkpoint_facts",
    "export_files",
    "parse_nonce",
    "read_commitment",
    "result_to_json",
    "reverify_command",
]

ATTESTATION_REPORT_SCHEMA = "zcbench.attestation-report/2"
"""The schema of :meth:`AttestationResult.to_json` (``/1`` spelt the document's fields its own
way; ``/2`` carries the verifier's :meth:`~zcbench.nitro.AttestationReport.to_dict` as is)."""

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

    def to_json(self) -> dict[str, Any]:
        """The one JSON document of an attestation check (what the panel's 'Export report'
        writes): the verifier's report exactly as ``zcbench verify attestation --json`` prints
        it, plus the verdict word, where the document came from, the nonce asked for, its age
        when requested, the commitment and its PCRs, and the checkpoint in ``user_data``."""
        cp = self.checkpoint
        return {
            "schema": ATTESTATION_REPORT_SCHEMA,
            "verdict": self.verdict,
            **self.report.to_dict(),
            "source": self.source,
            "requested_nonce": None if self.nonce is None else self.nonce.hex(),
            "requested_at": self.requested_at.isoformat(),
            "age_seconds": None if self.age is None else self.age.total_seconds(),
            "expected_pcrs": {str(i): v.hex() for i, v in sorted(self.expected_pcrs.items())},
            "checkpoint": None if cp is None else cp.to_dict(),
            "checkpoint_problem": self.checkpoint_problem,
            "commitment": dict(self.commitment),
        }


def result_to_json(result: AttestationResult) -> dict[str, Any]:
    """``result.to_json()``: the attestation report as JSON (:meth:`AttestationResult.to_json`)."""
    return result.to_json()


def read_commitment(path: pathlib.Path) -> tuple[dict[int, bytes], dict[str, Any]]:
    """The expected PCRs and the whole document of a ``commitment.json``.

    Raises :class:`zcbench.errors.UsageError` when the file is missing and :class:`DataError`
    when it is malformed (:meth:`zcbench.nitro.commitment.Commitment.load`).
    """
    from zcbench.nitro.commitment import Commitment

    path = pathlib.Path(path)
    if not path.is_file():
        raise UsageError(
            f"no commitment at {path}: point the panel at a build folder made by "
            "'zcbench package' (it writes commitment.json)"
        )
    commitment = Commitment.load(path)
    return dict(commitment.pcrs), commitment.to_dict()


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




def _stem(result: AttestationResult) -> str:
    nonce_hex = "" if result.nonce is None else result.nonce.hex()
    when = result.requested_at.astimezone(dt.UTC)
    return f"attestation-{when:%Y%m%dT%H%M%SZ}-{nonce_hex[:8]}"


def export_files(result: AttestationResult) -> dict[str, bytes]:
    """Every file :func:`reverify_command` names, by file name: the JSON report, the raw
    document, the commitment it was checked against (when it had one) and, unless the root is
    AWS's pinned Root-G1, the root certificate the chain was checked against (PEM; for the
    development CA it is the file an LP passes as ``--trust``, still SIMULATED)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from zcbench.nitro.commitment import Commitment

    stem = _stem(result)
    files = {f"{stem}.cbor": result.document}
    if result.commitment:
        commitment = Commitment.from_json(json.dumps(dict(result.commitment)))
        files[f"{stem}-commitment.json"] = commitment.to_json()
    root = result.report.trust_root
    if root.kind != "aws":
        files[f"{stem}-root.pem"] = root.certificate.public_bytes(Encoding.PEM)
    report = json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n"
    files[f"{stem}.json"] = report.encode()
    return files


def reverify_command(result: AttestationResult) -> str:
    """The ``zcbench verify attestation`` command that checks the exported files
    (:func:`export_files`, in the folder they were written to) exactly as this result was
    checked: the same nonce, PCRs, root and maximum age, at the same instant."""
    stem = _stem(result)
    policy = result.report.policy
    words = ["zcbench", "verify", "attestation", f"{stem}.cbor"]
    if result.nonce is not None:
        words += ["--nonce", result.nonce.hex()]
    if result.commitment:
        words += ["--commitment", f"{stem}-commitment.json"]
    else:
        for index, value in sorted(result.expected_pcrs.items()):
            words += ["--expect-pcr", f"{index}={value.hex()}"]
    if result.report.trust_root.kind != "aws":
        words += ["--trust", f"{stem}-root.pem"]
    words += ["--at", result.report.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")]
    if policy.max_age is not None:
        words += ["--max-age", f"{policy.max_age.total_seconds():g}"]
    return shlex.join(words)
