"""zcbench.tee: attestation evidence of every TEE, one policy, one verdict, one dispatch.

The public facade (DESIGN.md, part ``tee``): recognise a piece of evidence (a Nitro attestation
document, an AMD SEV-SNP report, an Intel TDX or SGX DCAP quote), check it against the one
:class:`AttestationPolicy` at a given time, and return the one :class:`TeeVerdict`. Each TEE is
its own module and none imports another; only this dispatch knows them all:

* :mod:`~zcbench.tee.policy`   ``AttestationPolicy`` (also ``zcbench.nitro.AttestationPolicy``)
* :mod:`~zcbench.tee.errors`   ``AttestationError``, the one error of a failed check
* :mod:`~zcbench.tee.verdict`  ``TeeVerdict``, the typed result and its JSON
* :mod:`~zcbench.tee.sevsnp`   SEV-SNP reports and the pinned AMD roots
* :mod:`~zcbench.tee.amd_kds`  where VCEKs come from (AMD KDS over HTTPS, or in memory)
* :mod:`~zcbench.tee.azure_hcl`  Azure's HCL report around an SEV-SNP report (its runtime data
  binding is checked here, the report by :mod:`~zcbench.tee.sevsnp`)
* :mod:`~zcbench.tee.dcap`     TDX and SGX quotes, collateral and the pinned Intel root
* :mod:`~zcbench.tee.snp_measure`  an SEV-SNP launch measurement computed ahead (a commitment)
* :mod:`~zcbench.nitro`        Nitro documents (imported only when one is checked)

Evidence may be given raw, as hexadecimal text (how SEV-SNP reports are often stored) or as
base64 text (how quotes travel in JSON).
"""

from __future__ import annotations

import base64
import datetime as dt
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zcbench.errors import DataError
from zcbench.tee.errors import AttestationError
from zcbench.tee.policy import TCB_STATUSES, AttestationPolicy
from zcbench.tee.verdict import TEE_KINDS, TeeKind, TeeVerdict

if TYPE_CHECKING:
    from zcbench.tee.amd_kds import KdsClient
    from zcbench.tee.dcap import Collateral, PccsClient

__all__ = [
    "TCB_STATUSES",
    "TEE_KINDS",
    "AttestationError",
    "AttestationPolicy",
    "TeeKind",
    "TeeVerdict",
    "check_evidence",
    "decode_evidence",
    "detect_tee",
    "other_tee_verdict",
    "verify_evidence",
]

_HEX = frozenset(string.hexdigits.encode() + b" \t\r\n")
_BASE64 = frozenset(string.ascii_letters.encode() + string.digits.encode() + b"+/= \t\r\n")
_INTEL_QE_VENDOR = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_MAX_EVIDENCE = 1 << 20


def decode_evidence(data: bytes) -> bytes:
    """``data`` as bytes: hexadecimal text (``0x`` prefix allowed), or base64 text that decodes
    to evidence this module recognises (whitespace allowed in both), is decoded; anything else
    is kept."""
    if len(data) > 2 * _MAX_EVIDENCE:
        raise DataError(f"evidence of {len(data)} bytes is larger than any TEE's; refusing it")
    stripped = data.strip()
    if stripped[:2] in (b"0x", b"0X") and set(stripped[2:]) <= _HEX:
        data = stripped[2:]
    if data and set(data) <= _HEX:
        text = b"".join(data.split())
        if len(text) % 2 == 0 and text:
            return bytes.fromhex(text.decode("ascii"))
    if data and set(data) <= _BASE64:
        try:
            raw = base64.b64decode(b"".join(data.split()), validate=True)
            detect_tee(raw)
        except (ValueError, DataError):
            return data
        return raw
    return data


def detect_tee(data: bytes) -> TeeKind:
    """Which TEE ``data`` is evidence of, from its leading bytes; :class:`DataError` if none.

    A DCAP quote starts with version 3, 4 or 5, attestation key type 2 or 3 and Intel's QE
    vendor ID at 12; TDX has TEE type 0x81, SGX 0. A Nitro document is a CBOR COSE_Sign1
    (an array of four, optionally under tag 18). An SEV-SNP report starts with a small
    little-endian version (the size and version are then checked strictly by its parser).
    """
    if len(data) >= 28 and data[12:28] == _INTEL_QE_VENDOR:
        version = int.from_bytes(data[0:2], "little")
        tee_type = int.from_bytes(data[4:8], "little")
        if version in (3, 4, 5) and tee_type in (0, 0x81):
            return "tdx" if tee_type == 0x81 else "sgx"
    if data[:1] in (b"\x84", b"\xd2"):
        return "nitro"
    if data[:4] == b"HCLA":
        from zcbench.tee.azure_hcl import parse_hcl

        parse_hcl(data)  # DataError for a TDX VM's (only its TD quote is signed) or a bad one
        return "sev-snp"
    if len(data) >= 8 and 1 <= int.from_bytes(data[0:4], "little") <= 15:
        return "sev-snp"
    raise DataError(
        "not attestation evidence this verifier knows: a Nitro document (CBOR COSE_Sign1), an "
        "SEV-SNP report (0x4A0 bytes) or a DCAP quote (TDX v4/v5, SGX v3)"
    )


def check_evidence(
    data: bytes,
    policy: AttestationPolicy,
    *,
    at: dt.datetime,
    certificates: Sequence[bytes] = (),
    collateral: Collateral | None = None,
    kds: KdsClient | None = None,
    pccs: PccsClient | None = None,
    expected_tee: TeeKind | None = None,
    pck_chain: bytes | None = None,
) -> TeeVerdict:
    """Recognise ``data`` and check it against ``policy`` at ``at``: a verdict, never a raise
    for a failed check (misuse raises :class:`~zcbench.errors.UsageError`).

    ``certificates`` (SEV-SNP: the VCEK or VLEK and optionally its chain) and ``kds`` serve
    SEV-SNP; ``collateral`` or ``pccs`` serve DCAP quotes (without either, the quote's chain
    and signatures are checked and the verdict says the TCB status is unknown); ``pck_chain``
    (PEM) serves a DCAP quote that names its platform by PPID or PCK leaf instead of carrying
    its PCK chain (``pccs`` can fetch it too). Passing a
    TEE's inputs for another TEE's evidence is misuse. ``expected_tee`` (the TEE a commitment
    names) makes evidence of any other TEE a failed verdict, check ``tee``, before anything
    else is checked.
    """
    from zcbench.errors import UsageError

    data = decode_evidence(bytes(data))
    kind = detect_tee(data)
    if expected_tee is not None and kind != expected_tee:
        if expected_tee not in TEE_KINDS:
            raise UsageError(f"expected_tee {expected_tee!r} is not one of {', '.join(TEE_KINDS)}")
        return other_tee_verdict(kind, expected_tee, at)
    if kind != "sev-snp" and (certificates or kds is not None):
        raise UsageError(f"certificates and a KDS are for SEV-SNP reports; this is {kind} evidence")
    if kind not in ("tdx", "sgx") and (
        collateral is not None or pccs is not None or pck_chain is not None
    ):
        raise UsageError(
            f"collateral and PCK chains are for TDX and SGX quotes; this is {kind} evidence"
        )
    if kind == "sev-snp" and data[:4] == b"HCLA":
        return _check_hcl(data, policy, at=at, certificates=certificates, kds=kds)
    if kind == "sev-snp":
        from zcbench.tee.sevsnp import check_snp

        return check_snp(data, policy, at=at, certificates=certificates, kds=kds)
    if kind == "nitro":
        from zcbench.nitro.verify import check_attestation

        return check_attestation(data, policy, at=at).to_verdict()
    from zcbench.tee.dcap import check_quote

    return check_quote(
        data, policy, at=at, collateral=collateral, pccs=pccs, pck_chain=pck_chain
    )


def _check_hcl(
    data: bytes,
    policy: AttestationPolicy,
    *,
    at: dt.datetime,
    certificates: Sequence[bytes],
    kds: KdsClient | None,
) -> TeeVerdict:
    """An Azure HCL report: its SEV-SNP report checked like any other, then its report data
    held to the HCL runtime data it comes with (check ``hcl_binding``)."""
    import dataclasses

    from zcbench.tee.azure_hcl import binding_problem, parse_hcl
    from zcbench.tee.sevsnp import check_snp

    hcl = parse_hcl(data)
    verdict = check_snp(hcl.hw_report, policy, at=at, certificates=certificates, kds=kds)
    fields = {
        **verdict.fields,
        "azure_hcl_version": str(hcl.version),
        "hcl_runtime_data_hash": hcl.runtime_digest()[: {1: 32, 2: 48, 3: 64}[hcl.hash_type]].hex(),
    }
    note = (
        "an Azure HCL report: the SEV-SNP report's report data is the hash of the HCL runtime "
        "data (the vTPM's keys), checked here; a nonce is bound through the vTPM, not here"
    )
    verdict = dataclasses.replace(verdict, fields=fields, warnings=(*verdict.warnings, note))
    problem = None if verdict.report_data is None else binding_problem(hcl, verdict.report_data)
    if verdict.verified and problem is not None:
        verdict = dataclasses.replace(
            verdict, verified=False, failed_check="hcl_binding", message=problem,
            expected=hcl.runtime_digest().hex(), actual=verdict.report_data.hex()
            if verdict.report_data is not None else None, measurement_checked=False,
        )
    return verdict


def other_tee_verdict(kind: TeeKind, expected: TeeKind, at: dt.datetime) -> TeeVerdict:
    """The failed verdict (check ``tee``) for evidence of ``kind`` where ``expected`` was
    committed: nothing else is checked, since no measurement of one TEE means anything in
    another."""
    if not isinstance(at, dt.datetime) or at.utcoffset() is None:
        from zcbench.errors import UsageError

        raise UsageError("'at' must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    return TeeVerdict(
        tee=kind,
        verified=False,
        failed_check="tee",
        message=(
            f"the commitment is for {expected} and the evidence is {kind}: this is not the "
            "committed image's TEE; give the evidence of the TEE the commitment names"
        ),
        expected=expected,
        actual=kind,
        at=at.astimezone(dt.UTC),
        rests_on="nothing: the evidence is not of the committed TEE",
    )


def verify_evidence(
    data: bytes,
    policy: AttestationPolicy,
    *,
    at: dt.datetime,
    certificates: Sequence[bytes] = (),
    collateral: Collateral | None = None,
    kds: KdsClient | None = None,
    pccs: PccsClient | None = None,
    pck_chain: bytes | None = None,
) -> TeeVerdict:
    """:func:`check_evidence`, raising :class:`AttestationError` when a check failed."""
    verdict = check_evidence(
        data, policy, at=at, certificates=certificates, collateral=collateral, kds=kds,
        pccs=pccs, pck_chain=pck_chain,
    )
    if not verdict.verified:
        raise verdict.error()
    return verdict
