"""One attestation request and its verdict, as the LP report and the attestation panel show it.

Owns :class:`AttestationResult` (the verdict of every TEE as :mod:`zcbench.tee`'s one typed
:class:`~zcbench.tee.TeeVerdict`, with, for a Nitro document, the verifier's full report; the
raw evidence, the nonce asked for, the commitment and its measured fields, when and where it
came from, and the log checkpoint a Nitro document carries, read by
:mod:`zcbench.nitro.binding`), its one JSON document (:meth:`to_json`, schema
:data:`ATTESTATION_REPORT_SCHEMA`: the verifier's own ``to_dict``, the shape of ``zcbench verify
attestation --json``, plus what the request adds), the commitment's expected values
(:func:`read_commitment`, :func:`committed_fields`) and the nonce a person types. It decides
nothing: the verdict is :func:`zcbench.nitro.check_attestation`'s for a Nitro document and
:func:`zcbench.tee.check_evidence`'s for every other TEE; what is shown of it is
:func:`zcbench.tee.view.evidence_view`'s. No widget toolkit is imported here.

For SEV-SNP, TDX and SGX evidence the nonce asked for is the evidence's report data (at most
64 bytes, compared zero-padded), the commitment must name the evidence's TEE (schema 2), and
the VCEK/VLEK (``certificates``) or the DCAP ``collateral`` travel with the result so its
export re-verifies alone.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zcbench.errors import DataError, UsageError
from zcbench.nitro import AttestationPolicy, AttestationReport, check_attestation
from zcbench.nitro.binding import LogBinding, check_log_binding
from zcbench.tee import TeeKind, TeeVerdict
from zcbench.tee.view import EvidenceView, evidence_view

if TYPE_CHECKING:
    from zcbench.tee.dcap import Collateral

__all__ = [
    "ATTESTATION_REPORT_SCHEMA",
    "DEFAULT_NONCE_BYTES",
    "AttestationResult",
    "CheckpointFacts",
    "attestation_result",
    "checkpoint_facts",
    "committed_fields",
    "export_files",
    "parse_nonce",
    "read_commitment",
    "result_to_json",
    "reverify_command",
]

ATTESTATION_REPORT_SCHEMA = "zcbench.attestation-report/2"
"""The schema of :meth:`AttestationResult.to_json` (``/1`` spelt the document's fields its own
way; ``/2`` carries the verifier's ``to_dict`` as is: Nitro's
:meth:`~zcbench.nitro.AttestationReport.to_dict`, every other TEE's
:meth:`~zcbench.tee.TeeVerdict.to_dict`)."""

DEFAULT_NONCE_BYTES = 32
"""Length of the random nonce the panel proposes."""

_MAX_NONCE_BYTES = 1024  # what an NSM document can carry (zcbench.nitro.document)
_MAX_REPORT_DATA = 64  # what an SEV-SNP report or a DCAP quote carries

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

    ``tee_verdict`` is the verdict of every TEE (:class:`~zcbench.tee.TeeVerdict`); ``report``
    the Nitro verifier's report, unaltered (``None`` for other TEEs); ``document`` the raw
    evidence as received; ``nonce`` the nonce asked for and checked (``None``: none was given,
    none was checked; for other TEEs it is the report data); ``expected_pcrs`` what a Nitro
    commitment says, ``committed`` the commitment's measured fields by name (``pcr0``.. for
    Nitro); ``requested_at`` when the panel asked (a Nitro document's age is measured from its
    own time to this instant); ``source`` says where the evidence came from, in words;
    ``certificates`` and ``collateral_json`` are the SEV-SNP certificates and DCAP collateral
    it was checked with.
    """

    tee_verdict: TeeVerdict
    report: AttestationReport | None
    document: bytes
    nonce: bytes | None
    expected_pcrs: Mapping[int, bytes]
    requested_at: dt.datetime
    source: str
    checkpoint: LogBinding | None = None
    checkpoint_problem: str | None = None
    commitment: Mapping[str, Any] = field(default_factory=dict)
    committed: Mapping[str, bytes] = field(default_factory=dict)
    certificates: tuple[bytes, ...] = ()
    collateral_json: str | None = None

    @property
    def tee(self) -> TeeKind:
        """The TEE the evidence was recognised as."""
        return self.tee_verdict.tee

    @property
    def verified(self) -> bool:
        return self.tee_verdict.verified

    @property
    def verdict(self) -> str:
        """``"VERIFIED"`` or ``"FAILED"`` (SIMULATED is said beside it, never instead)."""
        return "VERIFIED" if self.tee_verdict.verified else "FAILED"

    @property
    def view(self) -> EvidenceView:
        """What the surfaces show (:func:`zcbench.tee.view.evidence_view`)."""
        return evidence_view(self.tee_verdict, self.committed)

    @property
    def age(self) -> dt.timedelta | None:
        """How old a Nitro document was when it was requested; ``None`` if it did not parse
        or the evidence carries no signed time (SEV-SNP, TDX, SGX)."""
        doc = None if self.report is None else self.report.document
        return None if doc is None else self.requested_at - doc.time

    def to_json(self) -> dict[str, Any]:
        """The one JSON document of an attestation check (what the panel's 'Export report'
        writes): the verifier's report exactly as ``zcbench verify attestation --json`` prints
        it, plus the verdict word, the TEE, the measured fields against the commitment, where
        the evidence came from, the nonce asked for, a Nitro document's age when requested,
        the commitment and its values, and the checkpoint in a Nitro ``user_data``."""
        cp = self.checkpoint
        verifier = (
            self.tee_verdict.to_dict() if self.report is None else self.report.to_dict()
        )
        return {
            "schema": ATTESTATION_REPORT_SCHEMA,
            "verdict": self.verdict,
            **verifier,
            "tee": self.tee,
            "measured": [
                {
                    "name": f.name,
                    "expected": None if f.expected is None else f.expected.hex(),
                    "actual": None if f.actual is None else f.actual.hex(),
                    "status": f.status,
                }
                for f in self.view.measured
            ],
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
    """The expected PCRs (empty for a commitment of another TEE) and the whole document of a
    ``commitment.json``.

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


def committed_fields(commitment: Mapping[str, Any]) -> tuple[TeeKind, dict[str, bytes]]:
    """The TEE a commitment document names and its measured fields by name (``pcr0``.. for
    Nitro, the ``measurements`` otherwise); ``("nitro", {})`` for no commitment."""
    from zcbench.nitro.commitment import Commitment

    if not commitment:
        return "nitro", {}
    parsed = Commitment.from_json(json.dumps(dict(commitment)))
    if parsed.tee == "nitro":
        return "nitro", {f"pcr{i}": v for i, v in parsed.pcrs.items()}
    tee: TeeKind = parsed.tee  # type: ignore[assignment]  # checked by Commitment
    return tee, dict(parsed.measurements)


def _kind_of(document: bytes) -> TeeKind | None:
    from zcbench.tee import decode_evidence, detect_tee

    try:
        return detect_tee(decode_evidence(document))
    except (DataError, ValueError):
        return None


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
    certificates: Sequence[bytes] = (),
    collateral: Collateral | None = None,
) -> AttestationResult:
    """Check ``document`` and gather what the panel and the LP report show.

    A Nitro document is checked with :func:`check_attestation` against ``expected_pcrs``, the
    nonce, ``trust`` and ``max_age``; SEV-SNP, TDX and SGX evidence with
    :func:`zcbench.tee.check_evidence` against the ``commitment``'s measured fields, with the
    nonce as its report data, ``certificates`` (SEV-SNP) and ``collateral`` (DCAP). Evidence of
    another TEE than the commitment names fails (check ``tee``). Misuse (no expected PCRs for
    a Nitro document, a naive ``at``, a nonce longer than the evidence's report data, a Nitro
    option for other evidence) raises :class:`UsageError`; a failed check does not raise, it
    is the result's verdict.
    """
    committed_tee, committed = committed_fields(commitment or {})
    kind = _kind_of(document)
    if not commitment:
        committed_tee = kind or "nitro"  # nothing committed: check the evidence as what it is
    common: dict[str, Any] = {
        "document": document,
        "nonce": nonce,
        "requested_at": at,
        "source": source,
        "commitment": dict(commitment or {}),
        "committed": committed,
    }
    if kind is not None and kind != committed_tee:
        from zcbench.tee import other_tee_verdict

        return AttestationResult(
            tee_verdict=other_tee_verdict(kind, committed_tee, at),
            report=None,
            expected_pcrs=dict(expected_pcrs),
            **common,
        )
    if committed_tee == "nitro":
        if certificates or collateral is not None:
            raise UsageError("certificates and collateral are for SEV-SNP, TDX and SGX evidence")
        return _nitro_result(document, nonce, expected_pcrs, trust, at, max_age, common)
    return _tee_result(
        document, committed_tee, committed, nonce, at, tuple(certificates), collateral,
        trust=trust, max_age=max_age, common=common,
    )


def _nitro_result(
    document: bytes,
    nonce: bytes | None,
    expected_pcrs: Mapping[int, bytes],
    trust: str | pathlib.Path,
    at: dt.datetime,
    max_age: dt.timedelta | None,
    common: dict[str, Any],
) -> AttestationResult:
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
    # The PCRs checked are the ones shown against the document, committed or typed.
    common = {**common, "committed": {f"pcr{i}": v for i, v in expected_pcrs.items()}}
    return AttestationResult(
        tee_verdict=report.to_verdict(),
        report=report,
        expected_pcrs=dict(expected_pcrs),
        checkpoint=checkpoint,
        checkpoint_problem=problem,
        **common,
    )


def _tee_result(
    document: bytes,
    committed_tee: TeeKind,
    committed: Mapping[str, bytes],
    nonce: bytes | None,
    at: dt.datetime,
    certificates: tuple[bytes, ...],
    collateral: Collateral | None,
    *,
    trust: str | pathlib.Path,
    max_age: dt.timedelta | None,
    common: dict[str, Any],
) -> AttestationResult:
    from zcbench.tee import AttestationPolicy as TeePolicy
    from zcbench.tee import check_evidence
    from zcbench.tee.view import PRIMARY_FIELD

    if nonce is not None and len(nonce) > _MAX_REPORT_DATA:
        raise UsageError(
            f"the nonce is {len(nonce)} bytes; SEV-SNP, TDX and SGX evidence binds at most "
            f"{_MAX_REPORT_DATA} (its report data)"
        )
    if max_age is not None or trust != "aws":
        # Only a Nitro document carries a signed time and chains to a root one may choose.
        raise UsageError(
            "SEV-SNP, TDX and SGX evidence is checked against the pinned vendor roots and "
            "carries no signed time: give no trust root and no maximum age (bind freshness "
            "with the nonce, which is its report data)"
        )
    primary = PRIMARY_FIELD[committed_tee]
    measurement = committed.get(primary) if committed_tee != "nitro" else None
    fields = {k: v for k, v in committed.items() if k != primary} if measurement else {}
    policy = TeePolicy(
        expected_measurement=measurement,
        expected_fields=fields or None,
        expected_report_data=nonce,
        unsafe_skip_pcr_check=measurement is None,
    )
    try:
        verdict = check_evidence(
            document, policy, at=at, expected_tee=committed_tee, certificates=certificates,
            collateral=collateral,
        )
    except DataError as exc:  # not evidence of any TEE: the committed TEE's decode failure
        verdict = TeeVerdict(
            tee=committed_tee, verified=False, failed_check="decode", message=str(exc),
            expected=f"{committed_tee} evidence", actual=None, at=at.astimezone(dt.UTC),
            rests_on="nothing: the evidence did not parse",
        )
    return AttestationResult(
        tee_verdict=verdict,
        report=None,
        expected_pcrs={},
        certificates=certificates,
        collateral_json=None if collateral is None else collateral.json_text,
        **common,
    )


def _stem(result: AttestationResult) -> str:
    nonce_hex = "" if result.nonce is None else result.nonce.hex()
    when = result.requested_at.astimezone(dt.UTC)
    return f"attestation-{when:%Y%m%dT%H%M%SZ}-{nonce_hex[:8]}"


def export_files(result: AttestationResult) -> dict[str, bytes]:
    """Every file :func:`reverify_command` names, by file name: the JSON report, the raw
    evidence (``.cbor`` for a Nitro document, ``.bin`` otherwise), the commitment it was
    checked against (when it had one), an SEV-SNP report's certificates (``-certN.pem`` or
    ``.der``) and a DCAP quote's collateral (``-collateral.json``) and, unless the root is
    AWS's pinned Root-G1, the root certificate a Nitro chain was checked against (PEM; for the
    development CA it is the file an LP passes as ``--trust``, still SIMULATED)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from zcbench.nitro.commitment import Commitment

    stem = _stem(result)
    files = {_evidence_name(result): result.document}
    if result.commitment:
        commitment = Commitment.from_json(json.dumps(dict(result.commitment)))
        files[f"{stem}-commitment.json"] = commitment.to_json()
    files.update(zip(_certificate_names(result), result.certificates, strict=True))
    if result.collateral_json is not None:
        files[f"{stem}-collateral.json"] = result.collateral_json.encode()
    if result.report is not None:
        root = result.report.trust_root
        if root.kind != "aws":
            files[f"{stem}-root.pem"] = root.certificate.public_bytes(Encoding.PEM)
    report = json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n"
    files[f"{stem}.json"] = report.encode()
    return files


def _evidence_name(result: AttestationResult) -> str:
    return _stem(result) + (".cbor" if result.report is not None else ".bin")


def _certificate_names(result: AttestationResult) -> list[str]:
    stem = _stem(result)
    return [
        f"{stem}-cert{i}." + ("pem" if der.lstrip().startswith(b"-----BEGIN") else "der")
        for i, der in enumerate(result.certificates, start=1)
    ]


def reverify_command(result: AttestationResult) -> str:
    """The ``zcbench verify attestation`` command that checks the exported files
    (:func:`export_files`, in the folder they were written to) exactly as this result was
    checked: the same nonce (report data for other TEEs), commitment or PCRs, root, maximum
    age, certificates and collateral, at the same instant."""
    stem = _stem(result)
    words = ["zcbench", "verify", "attestation", _evidence_name(result)]
    report = result.report
    if result.nonce is not None:
        words += ["--nonce" if report is not None else "--report-data", result.nonce.hex()]
    if result.commitment:
        words += ["--commitment", f"{stem}-commitment.json"]
    else:
        for index, value in sorted(result.expected_pcrs.items()):
            words += ["--expect-pcr", f"{index}={value.hex()}"]
    for name in _certificate_names(result):
        words += ["--cert", name]
    if result.collateral_json is not None:
        words += ["--collateral", f"{stem}-collateral.json"]
    if report is not None and report.trust_root.kind != "aws":
        words += ["--trust", f"{stem}-root.pem"]
    at = result.tee_verdict.at
    words += ["--at", at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")]
    if report is not None and report.policy.max_age is not None:
        words += ["--max-age", f"{report.policy.max_age.total_seconds():g}"]
    return shlex.join(words)
