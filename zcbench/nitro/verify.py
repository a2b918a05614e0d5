"""Attestation verification: is this document genuine, and does it say what the caller requires?

Owns the order and meaning of the checks (reference §1.4): parse strictly, then the chain from
the leaf through ``cabundle`` to the root the policy names (``"aws"``, the pinned Root-G1;
``"dev"``, the development CA, SIMULATED; or a PEM file), then the document signature over the
original payload bytes, then the signed time (no more than :data:`MAX_CLOCK_SKEW` after ``at``,
check ``future``; inside the leaf certificate's validity, check ``timestamp``), then the policy:
debug mode, required PCRs, nonce, maximum age, public key, user data.

What is required is one frozen :class:`~zcbench.nitro.policy.AttestationPolicy`; the keyword
arguments of the first version (``trust=``, ``expected_pcrs=``, ...) are still accepted and make
one, for callers not yet moved to the policy. What the verdict rests on is the result's
``trust_root`` (:class:`~zcbench.nitro.trust.TrustRoot`): its ``description`` (AWS, SIMULATED,
or a custom root's fingerprint) is what every surface shows; ``root`` and ``simulated`` are
derived from it.

:func:`check_attestation` never raises for a failed check: it returns an
:class:`AttestationReport` saying which check failed with the expected and actual values, and
what was learnt before that (for widgets and reports). :func:`verify_attestation` is built on it
and returns a :class:`VerifiedAttestation` or raises one :class:`AttestationError`.

Both refuse misuse with :class:`zcbench.errors.UsageError`: a naive ``at``, or no PCR policy at
all unless ``unsafe_skip_pcr_check=True`` says so. There is no hidden clock: ``at`` is required.
One document has many byte encodings that verify (the other ECDSA signature, other CBOR
lengths): anything keyed on a document keys on ``document.document_id`` (the payload's SHA-256).
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from zcbench.errors import UsageError
from zcbench.nitro._chain import CertificateFacts, facts_of, validate_path, validity_of
from zcbench.nitro.document import AttestationDocument, parse_document
from zcbench.nitro.errors import AttestationError
from zcbench.nitro.policy import MAX_CLOCK_SKEW, AttestationPolicy
from zcbench.nitro.trust import TrustRoot, load_trust_root
from zcbench.tee.verdict import ChainCertificate, TeeVerdict, chain_roles, text_of

__all__ = [
    "DEBUG_PCRS",
    "MAX_CLOCK_SKEW",
    "AttestationPolicy",
    "AttestationReport",
    "CertificateFacts",
    "VerifiedAttestation",
    "check_attestation",
    "is_debug",
    "verify_attestation",
]

DEBUG_PCRS = (0, 1, 2)
"""PCRs a debug-mode enclave reports as all zero (PCR8 too when the image is signed)."""


def is_debug(pcrs: Mapping[int, bytes]) -> bool:
    """True when any of PCR0/1/2 is all zero: debug mode, or nothing measured at all."""
    return any(i in pcrs and not any(pcrs[i]) for i in DEBUG_PCRS)


def _iso(t: dt.datetime, spec: str = "auto") -> str:
    return t.isoformat(timespec=spec).replace("+00:00", "Z")


class _RestsOn:
    """What a verdict rests on, derived from its ``trust_root``."""

    trust_root: TrustRoot

    @property
    def root(self) -> str:
        """``"aws"``, ``"dev"`` or a custom root's SHA-256 (see :attr:`trust_root`)."""
        return self.trust_root.name

    @property
    def simulated(self) -> bool:
        """True when the root is the development CA, however it was trusted."""
        return self.trust_root.simulated


@dataclass(frozen=True)
class VerifiedAttestation(_RestsOn):
    """A document that passed every check its policy asked for.

    ``trust_root`` is what the verdict rests on (show its ``description``); ``root`` and
    ``simulated`` are derived from it. ``pcrs_checked`` is false only when the policy opted out
    with ``unsafe_skip_pcr_check``; ``warnings`` says every unsafe choice of the policy.
    ``chain_der`` holds the document's certificates (``cabundle`` order, root first, then the
    leaf); ``chain`` renders their display facts on demand.
    """

    document: AttestationDocument
    trust_root: TrustRoot
    debug: bool
    pcrs_checked: bool
    checked_pcrs: tuple[int, ...]
    at: dt.datetime
    chain_der: tuple[bytes, ...]
    policy: AttestationPolicy
    warnings: tuple[str, ...] = ()

    @property
    def chain(self) -> tuple[CertificateFacts, ...]:
        """Display facts for the document's certificates, ``cabundle`` order then the leaf."""
        return tuple(facts_of(der) for der in self.chain_der)


@dataclass(frozen=True)
class AttestationReport(_RestsOn):
    """The outcome of :func:`check_attestation`, failed or not, and what was learnt.

    On failure ``failed_check`` is the check name (see :mod:`zcbench.nitro.errors`), ``message``
    says what to do, ``expected``/``actual`` carry the compared values as text. ``document`` is
    set when parsing succeeded; ``chain_der``/``chain`` the certificates, once they all parsed.
    ``trust_root`` is the root the chain was checked against (show its ``description``).
    """

    verified: bool
    failed_check: str | None
    message: str
    expected: str | None
    actual: str | None
    trust_root: TrustRoot
    document: AttestationDocument | None
    debug: bool | None
    pcrs_checked: bool
    checked_pcrs: tuple[int, ...]
    at: dt.datetime
    policy: AttestationPolicy
    chain_der: tuple[bytes, ...] = field(default=())
    warnings: tuple[str, ...] = ()

    @property
    def chain(self) -> tuple[CertificateFacts, ...]:
        """Display facts for the document's certificates as far as they parsed (see above)."""
        return tuple(facts_of(der) for der in self.chain_der)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (the ``--json`` output of ``zcbench verify attestation``).

        Bytes are lowercase hex, times ISO 8601 UTC with ``Z``; document fields are ``None``
        (and ``pcrs`` empty) when the document did not parse. ``trust_root`` says what the
        verdict rests on; ``root`` and ``simulated`` are derived from it.
        """
        doc = self.document

        def hex_or_none(value: bytes | None) -> str | None:
            return None if value is None else value.hex()

        return {
            "verified": self.verified,
            "failed_check": self.failed_check,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "at": _iso(self.at),
            "trust_root": self.trust_root.to_dict(),
            "root": self.root,
            "simulated": self.simulated,
            "warnings": list(self.warnings),
            "pcrs_checked": self.pcrs_checked,
            "checked_pcrs": list(self.checked_pcrs),
            "debug": self.debug,
            "document_id": None if doc is None else doc.document_id,
            "module_id": None if doc is None else doc.module_id,
            "timestamp": None if doc is None else _iso(doc.time, "milliseconds"),
            "timestamp_ms": None if doc is None else doc.timestamp,
            "pcrs": {} if doc is None else {str(i): v.hex() for i, v in doc.pcrs.items()},
            "nonce": None if doc is None else hex_or_none(doc.nonce),
            "public_key": None if doc is None else hex_or_none(doc.public_key),
            "user_data": None if doc is None else hex_or_none(doc.user_data),
            "payload_framing": None
            if doc is None
            else ("indefinite" if doc.indefinite else "definite"),
            "chain": [
                {
                    "subject": c.subject,
                    "issuer": c.issuer,
                    "not_before": _iso(c.not_before),
                    "not_after": _iso(c.not_after),
                    "sha256": c.sha256,
                }
                for c in self.chain
            ],
        }

    def to_verdict(self) -> TeeVerdict:
        """This report as the TEE-neutral verdict (:mod:`zcbench.tee`): measurement is PCR0,
        report data the ``user_data``; Nitro has no TCB status (``None``)."""
        doc = self.document
        pcr0 = None if doc is None else doc.pcrs.get(0)
        fields: dict[str, str] = {}
        if doc is not None:
            fields = {f"pcr{i}": v.hex() for i, v in doc.pcrs.items()}
            fields["module_id"] = doc.module_id
            if doc.nonce is not None:
                fields["nonce"] = doc.nonce.hex()
            if doc.public_key is not None:
                fields["public_key"] = doc.public_key.hex()
        return TeeVerdict(
            tee="nitro",
            verified=self.verified,
            failed_check=self.failed_check,
            message=self.message,
            expected=self.expected,
            actual=self.actual,
            at=self.at,
            rests_on=self.trust_root.description,
            simulated=self.simulated,
            measurement=pcr0,
            report_data=None if doc is None else doc.user_data,
            debug=self.debug,
            tcb_status=None,
            measurement_checked=self.verified
            and (0 in self.checked_pcrs or self.policy.expected_measurement is not None),
            fields=fields,
            chain=tuple(c.sha256 for c in self.chain),
            warnings=self.warnings,
            certificates=tuple(
                ChainCertificate(role, c.subject, c.not_before, c.not_after, c.sha256)
                for role, c in zip(chain_roles(len(self.chain)), self.chain, strict=True)
            ),
        )

    def error(self) -> AttestationError:
        """The error :func:`verify_attestation` raises for this report (only when failed)."""
        if self.verified or self.failed_check is None:
            raise UsageError("the report is verified; there is no error to raise")
        return AttestationError(
            self.message, check=self.failed_check, expected=self.expected, actual=self.actual
        )



def _fail(check: str, message: str, *, expected: object = None, actual: object = None) -> NoReturn:
    raise AttestationError(message, check=check, expected=expected, actual=actual)


def _verify_signature(doc: AttestationDocument, leaf_key: ec.EllipticCurvePublicKey) -> None:
    r = int.from_bytes(doc.signature[:48], "big")
    s = int.from_bytes(doc.signature[48:], "big")
    try:
        leaf_key.verify(encode_dss_signature(r, s), doc.signed_bytes(), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        _fail(
            "signature",
            "the document signature does not verify with the leaf certificate's key: the "
            "document was altered or was not signed by this certificate",
            expected="valid ES384 signature over the payload",
            actual="invalid",
        )


def _check_time(doc: AttestationDocument, at: dt.datetime) -> None:
    """The signed timestamp: not after ``at`` beyond the skew, inside the leaf's validity."""
    ahead = doc.time - at
    if ahead > MAX_CLOCK_SKEW:
        _fail(
            "future",
            f"the document is stamped {_iso(doc.time, 'milliseconds')}, {ahead} after the "
            f"verification time {_iso(at)} (at most {MAX_CLOCK_SKEW.total_seconds():g} s of "
            "clock skew allowed): its age cannot be known; check both clocks, or verify an "
            "archived document at its own time (at=document.time, --at doc)",
            expected=f"<= {_iso(at + MAX_CLOCK_SKEW)}",
            actual=_iso(doc.time, "milliseconds"),
        )
    not_before, not_after = validity_of(doc.certificate)
    if not not_before <= doc.time <= not_after:
        _fail(
            "timestamp",
            f"the document's timestamp {_iso(doc.time, 'milliseconds')} lies outside its leaf "
            f"certificate's validity ({_iso(not_before)} to {_iso(not_after)}): the signer's "
            "clock or the document is wrong; refusing it",
            expected=f"{_iso(not_before)}..{_iso(not_after)}",
            actual=_iso(doc.time, "milliseconds"),
        )


def _check_policy(doc: AttestationDocument, policy: AttestationPolicy, at: dt.datetime) -> None:
    if is_debug(doc.pcrs) and not policy.allow_debug:
        zero = [i for i in DEBUG_PCRS if i in doc.pcrs and not any(doc.pcrs[i])]
        _fail(
            "debug",
            f"PCR{'/'.join(map(str, zero))} are all zero: the enclave runs in debug mode, where "
            "the host can read its memory; pass allow_debug=True (--allow-debug) only for tests",
            expected="non-zero PCR0/1/2",
            actual="zero",
        )
    for index, want in (policy.expected_pcrs or {}).items():
        got = doc.pcrs.get(index)
        if got != want:
            _fail(
                f"pcr{index}",
                f"PCR{index} "
                + (
                    "is not in the document (a missing PCR never matches)"
                    if got is None
                    else "differs from the expected value: this is not the committed image"
                )
                + "; check the commitment you compare against",
                expected=want.hex(),
                actual=None if got is None else got.hex(),
            )
    nonce = policy.nonce
    if nonce is not None and doc.nonce != nonce:
        _fail(
            "nonce",
            "the document's nonce "
            + ("is absent" if doc.nonce is None else "differs from yours")
            + ": it may be a replay; ask for a fresh document with your nonce",
            expected=nonce.hex(),
            actual=None if doc.nonce is None else doc.nonce.hex(),
        )
    if policy.max_age is not None:
        age = at - doc.time
        if age > policy.max_age:
            _fail(
                "max_age",
                f"the document is {age} old at {at.isoformat()}; at most {policy.max_age} "
                "allowed: ask for a fresh document",
                expected=f"<= {policy.max_age.total_seconds()} s",
                actual=f"{age.total_seconds()} s",
            )
    if policy.expected_measurement is not None and doc.pcrs.get(0) != policy.expected_measurement:
        got0 = doc.pcrs.get(0)
        _fail(
            "measurement",
            "PCR0 (the image measurement) differs from the expected measurement: this is not "
            "the committed image; check the commitment you compare against",
            expected=policy.expected_measurement.hex(),
            actual=None if got0 is None else got0.hex(),
        )
    want_data = policy.expected_report_data
    if want_data is not None and doc.user_data != want_data:
        _fail(
            "report_data",
            "the document's user_data "
            + ("is absent" if doc.user_data is None else "differs from the expected report data")
            + ": it is not bound to your nonce or key",
            expected=want_data.hex(),
            actual=None if doc.user_data is None else doc.user_data.hex(),
        )
    for name, want_value, got_value in (
        ("public_key", policy.expected_public_key, doc.public_key),
        ("user_data", policy.expected_user_data, doc.user_data),
    ):
        if want_value is not None and got_value != want_value:
            _fail(
                name,
                f"the document's {name} "
                + ("is absent" if got_value is None else "differs from the expected value")
                + ": it is not bound to the channel or log you expect",
                expected=want_value.hex(),
                actual=None if got_value is None else got_value.hex(),
            )


def _policy_of(
    policy: AttestationPolicy | None,
    *,
    trust: str | pathlib.Path | None,
    expected_pcrs: Mapping[int, bytes] | None,
    nonce: bytes | None,
    max_age: dt.timedelta | None,
    allow_debug: bool,
    expected_public_key: bytes | None,
    expected_user_data: bytes | None,
    unsafe_skip_pcr_check: bool,
) -> AttestationPolicy:
    """``policy``, or the one the first version's keyword arguments describe (never both)."""
    legacy = (
        trust is not None
        or expected_pcrs is not None
        or nonce is not None
        or max_age is not None
        or allow_debug
        or expected_public_key is not None
        or expected_user_data is not None
        or unsafe_skip_pcr_check
    )
    if policy is not None:
        if not isinstance(policy, AttestationPolicy):
            raise UsageError("policy must be an AttestationPolicy")
        if legacy:
            raise UsageError(
                "pass an AttestationPolicy or keyword arguments (trust=, expected_pcrs=, ...), "
                "not both"
            )
        return policy
    return AttestationPolicy(
        expected_pcrs=expected_pcrs,
        nonce=nonce,
        max_age=max_age,
        allow_debug=allow_debug,
        trust="aws" if trust is None else trust,
        expected_public_key=expected_public_key,
        expected_user_data=expected_user_data,
        unsafe_skip_pcr_check=unsafe_skip_pcr_check,
    )


def check_attestation(
    data: bytes,
    policy: AttestationPolicy | None = None,
    *,
    at: dt.datetime,
    trust: str | pathlib.Path | None = None,
    expected_pcrs: Mapping[int, bytes] | None = None,
    nonce: bytes | None = None,
    max_age: dt.timedelta | None = None,
    allow_debug: bool = False,
    expected_public_key: bytes | None = None,
    expected_user_data: bytes | None = None,
    unsafe_skip_pcr_check: bool = False,
) -> AttestationReport:
    """Check ``data`` against ``policy`` at ``at``; return a report instead of raising.

    The keyword arguments after ``at`` are the first version's spelling of a policy (see
    :class:`AttestationPolicy`); give them or ``policy``, not both. Raises only for misuse
    (:class:`~zcbench.errors.UsageError`) or a missing root
    (:class:`~zcbench.errors.EnvError`), never because the document failed a check. An unsafe
    policy is logged as a warning on every call and said in the report's ``warnings``.
    """
    if not isinstance(at, dt.datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise UsageError("'at' must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    at = at.astimezone(dt.UTC)
    policy = _policy_of(
        policy,
        trust=trust,
        expected_pcrs=expected_pcrs,
        nonce=nonce,
        max_age=max_age,
        allow_debug=allow_debug,
        expected_public_key=expected_public_key,
        expected_user_data=expected_user_data,
        unsafe_skip_pcr_check=unsafe_skip_pcr_check,
    )
    if policy.allowed_tcb_statuses or policy.expected_fields is not None:
        raise UsageError(
            "a Nitro document has no TCB status and no named measurement fields: give "
            "expected_pcrs or expected_measurement (PCR0) instead"
        )
    root = load_trust_root(policy.trust)
    warnings = policy.warn()

    doc: AttestationDocument | None = None
    seen: list[bytes] = []
    try:
        doc = parse_document(data)
        leaf_key = validate_path(doc.certificate, doc.cabundle, root, at, seen)
        _verify_signature(doc, leaf_key)
        _check_time(doc, at)
        _check_policy(doc, policy, at)
    except AttestationError as exc:
        return AttestationReport(
            verified=False,
            failed_check=exc.check,
            message=str(exc),
            expected=text_of(exc.expected),
            actual=text_of(exc.actual),
            trust_root=root,
            document=doc,
            debug=None if doc is None else is_debug(doc.pcrs),
            pcrs_checked=False,
            checked_pcrs=(),
            at=at,
            policy=policy,
            chain_der=tuple(seen),
            warnings=warnings,
        )
    return AttestationReport(
        verified=True,
        failed_check=None,
        message="verified" + ("" if root.kind == "aws" else f" ({root.description})"),
        expected=None,
        actual=None,
        trust_root=root,
        document=doc,
        debug=is_debug(doc.pcrs),
        pcrs_checked=bool(policy.checked_pcrs),
        checked_pcrs=policy.checked_pcrs,
        at=at,
        policy=policy,
        chain_der=tuple(seen),
        warnings=warnings,
    )


def verify_attestation(
    data: bytes,
    policy: AttestationPolicy | None = None,
    *,
    at: dt.datetime,
    trust: str | pathlib.Path | None = None,
    expected_pcrs: Mapping[int, bytes] | None = None,
    nonce: bytes | None = None,
    max_age: dt.timedelta | None = None,
    allow_debug: bool = False,
    expected_public_key: bytes | None = None,
    expected_user_data: bytes | None = None,
    unsafe_skip_pcr_check: bool = False,
) -> VerifiedAttestation:
    """Verify an attestation document; return what it proves or raise :class:`AttestationError`.

    ``policy`` says what is required (:class:`AttestationPolicy`: root, PCRs, nonce, age,
    debug, public key, user data); the keyword arguments are its first-version spelling. ``at``
    is the verification time (``document.time`` for an archived document: audit only, it proves
    nothing about now). The result's ``trust_root`` says what the verdict rests on.
    """
    report = check_attestation(
        data,
        policy,
        at=at,
        trust=trust,
        expected_pcrs=expected_pcrs,
        nonce=nonce,
        max_age=max_age,
        allow_debug=allow_debug,
        expected_public_key=expected_public_key,
        expected_user_data=expected_user_data,
        unsafe_skip_pcr_check=unsafe_skip_pcr_check,
    )
    if not report.verified:
        raise report.error()
    assert report.document is not None
    assert report.debug is not None
    return VerifiedAttestation(
        document=report.document,
        trust_root=report.trust_root,
        debug=report.debug,
        pcrs_checked=report.pcrs_checked,
        checked_pcrs=report.checked_pcrs,
        at=report.at,
        chain_der=report.chain_der,
        policy=report.policy,
        warnings=report.warnings,
    )
