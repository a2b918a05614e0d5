"""What a reader is shown about one verdict, for every TEE: one typed :class:`EvidenceView`.

Owns the TEE-neutral presentation facts of a :class:`~zcbench.tee.verdict.TeeVerdict`: the
TEE's name in words, its measured fields by their TEE's names (Nitro PCR0..PCR31; SEV-SNP
MEASUREMENT, HOST_DATA, ...; TDX MRTD, RTMR0-3, ...; SGX MRENCLAVE, MRSIGNER, ...) each against
the committed value with its status, and the TEE's other reported facts (guest policy, TCB
versions, attributes) as labelled text. The LP report and the attestation panel render this and
decide nothing themselves (DESIGN.md, surfaces); the comparison of committed against actual
values is made here, once.

It verifies nothing: the verdict is the TEE module's. A row's status only restates, field by
field, what the commitment said and what the evidence carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from zcbench.tee.verdict import TeeKind, TeeVerdict

__all__ = [
    "PRIMARY_FIELD",
    "TEE_NAMES",
    "EvidenceView",
    "FieldStatus",
    "MeasuredField",
    "evidence_view",
]

TEE_NAMES: Final[Mapping[TeeKind, str]] = {
    "nitro": "AWS Nitro attestation document",
    "sev-snp": "AMD SEV-SNP attestation report",
    "tdx": "Intel TDX quote",
    "sgx": "Intel SGX quote",
}
"""Each TEE's evidence in words."""

PRIMARY_FIELD: Final[Mapping[TeeKind, str]] = {
    "nitro": "pcr0",
    "sev-snp": "measurement",
    "tdx": "mrtd",
    "sgx": "mrenclave",
}
"""The launch measurement's field name per TEE (a schema-2 commitment's key for it)."""

# The measured fields shown per TEE, in order; the first ones are always shown, the others
# when committed or non-zero. Nitro's PCRs are shown like its verifier's report (PCR0-4, 8).
_MEASURED: Final[Mapping[TeeKind, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "nitro": ((), tuple(f"pcr{i}" for i in range(32))),
    "sev-snp": (
        ("measurement",),
        ("host_data", "id_key_digest", "author_key_digest", "family_id", "image_id"),
    ),
    "tdx": (
        ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"),
        ("mrseam", "mrsignerseam", "mrconfigid", "mrowner", "mrownerconfig", "mrservicetd"),
    ),
    "sgx": (
        ("mrenclave", "mrsigner"),
        ("isvprodid", "isvsvn", "configid", "configsvn", "isvfamilyid", "isvextprodid"),
    ),
}
_NITRO_SHOWN: Final = frozenset({"pcr0", "pcr1", "pcr2", "pcr3", "pcr4", "pcr8"})

# The TEE's other reported facts, by verdict field and label.
_FACTS: Final[Mapping[TeeKind, tuple[tuple[str, str], ...]]] = {
    "nitro": (("module_id", "module"),),
    "sev-snp": (
        ("product", "product"),
        ("version", "report version"),
        ("signing_key", "signed by"),
        ("policy", "guest policy"),
        ("smt_allowed", "SMT allowed"),
        ("migration_agent", "migration agent allowed"),
        ("single_socket", "single socket"),
        ("vmpl", "VMPL"),
        ("guest_svn", "guest SVN"),
        ("reported_tcb", "reported TCB"),
        ("launch_mit_vector", "launch mitigation vector"),
        ("current_mit_vector", "current mitigation vector"),
        ("chip_id", "chip ID"),
        ("report_id", "report ID"),
    ),
    "tdx": (
        ("version", "quote version"),
        ("td_attributes", "TD attributes"),
        ("xfam", "XFAM"),
        ("tee_tcb_svn", "TEE TCB SVN"),
        ("tee_tcb_svn2", "TEE TCB SVN 2 (TD report 1.5)"),
        ("padding", "zero padding after the quote (bytes)"),
    ),
    "sgx": (
        ("version", "quote version"),
        ("attributes", "attributes"),
        ("cpusvn", "CPU SVN"),
    ),
}

FieldStatus = Literal["match", "MISMATCH", "MISSING", "not committed"]


@dataclass(frozen=True)
class MeasuredField:
    """One measured field: its name (``rtmr0``), label (``RTMR0``), the committed and the
    actual value (``None`` when absent) and what comparing them says."""

    name: str
    label: str
    expected: bytes | None
    actual: bytes | None
    status: FieldStatus


@dataclass(frozen=True)
class EvidenceView:
    """What is shown about one verdict (see the module docstring).

    ``measured`` lists the measured fields against the commitment; ``facts`` the TEE's other
    reported fields as (label, text); ``measurement_label`` names the launch measurement
    (``PCR0``, ``MEASUREMENT``, ``MRTD``, ``MRENCLAVE``); ``tcb_text`` says the TCB status in
    words (DCAP only: ``None`` for TEEs without one).
    """

    verdict: TeeVerdict
    tee_name: str
    measurement_label: str
    measured: tuple[MeasuredField, ...]
    facts: tuple[tuple[str, str], ...]
    tcb_text: str | None

    @property
    def measured_title(self) -> str:
        """The heading of the measured fields' table."""
        if self.verdict.tee == "nitro":
            return "PCRs: commitment against document"
        return f"Measurements: commitment against the {self.tee_name}"

    @property
    def mismatched(self) -> tuple[MeasuredField, ...]:
        """The committed fields the evidence does not carry as committed."""
        return tuple(f for f in self.measured if f.status in ("MISMATCH", "MISSING"))


def _label(name: str) -> str:
    return name.upper()


def _actual(verdict: TeeVerdict, name: str) -> bytes | None:
    if name == PRIMARY_FIELD[verdict.tee] and verdict.tee != "nitro":
        return verdict.measurement
    text = verdict.fields.get(name)
    if text is None:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _status(expected: bytes | None, actual: bytes | None) -> FieldStatus:
    if expected is None:
        return "not committed"
    if actual is None:
        return "MISSING"
    return "match" if actual == expected else "MISMATCH"


def _tcb_text(verdict: TeeVerdict) -> str | None:
    status = verdict.tcb_status
    if status is None:
        return None
    if status == "unknown" and verdict.failed_check in ("collateral", "revoked", "tcb_status"):
        return f"unknown: the collateral yielded none (failed check {verdict.failed_check})"
    if status == "unknown":
        return (
            "unknown: no collateral was given, so the platform's patch level and revocation "
            "were not checked"
        )
    if verdict.advisory_ids:
        return f"{status} (advisories {', '.join(verdict.advisory_ids)})"
    return status


def evidence_view(verdict: TeeVerdict, committed: Mapping[str, bytes]) -> EvidenceView:
    """The view of ``verdict`` against ``committed`` (field name to value: ``pcr0``.. for
    Nitro, the commitment's ``measurements`` otherwise; empty when nothing was committed).

    A committed name the TEE does not report is shown as ``MISSING`` (its verifier refuses it
    as misuse, so it is never silently dropped here either).
    """
    always, sometimes = _MEASURED[verdict.tee]
    names = list(always)
    for name in sometimes:
        actual = _actual(verdict, name)
        shown = name in _NITRO_SHOWN if verdict.tee == "nitro" else True
        if name in committed or (shown and actual is not None and any(actual)):
            names.append(name)
    names += [n for n in committed if n not in names]
    measured = tuple(
        MeasuredField(
            name=name,
            label=_label(name),
            expected=committed.get(name),
            actual=_actual(verdict, name),
            status=_status(committed.get(name), _actual(verdict, name)),
        )
        for name in names
    )
    facts = tuple(
        (label, verdict.fields[key]) for key, label in _FACTS[verdict.tee] if key in verdict.fields
    )
    return EvidenceView(
        verdict=verdict,
        tee_name=TEE_NAMES[verdict.tee],
        measurement_label=_label(PRIMARY_FIELD[verdict.tee]),
        measured=measured,
        facts=facts,
        tcb_text=_tcb_text(verdict),
    )
