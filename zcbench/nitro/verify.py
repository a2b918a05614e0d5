"""Attestation verification: is this document genuine, and does it say what the caller requires?

Owns the order and meaning of the checks (reference §1.4): parse strictly, then the chain from
the leaf through ``cabundle`` to a root the caller named (``"aws"``, the pinned Root-G1; ``"dev"``,
the development CA, SIMULATED; or a PEM file), then the document signature over the original
payload bytes, then policy: debug mode, required PCRs, nonce, maximum age, public key, user data.

:func:`check_attestation` never raises for a failed check: it returns an
:class:`AttestationReport` saying which check failed with the expected and actual values, and
what was learnt before that (for widgets and reports). :func:`verify_attestation` is built on it
and returns a :class:`VerifiedAttestation` or raises one :class:`AttestationError`.

Both refuse misuse with :class:`zcbench.errors.UsageError`: a naive ``at``, or no PCR policy at
all unless ``unsafe_skip_pcr_check=True`` says so. There is no hidden clock: ``at`` is required.
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
from zcbench.nitro._chain import CertificateFacts, facts_of, validate_path
from zcbench.nitro.document import AttestationDocument, parse_document
from zcbench.nitro.errors import AttestationError
from zcbench.nitro.trust import load_trust_root

__all__ = [
    "DEBUG_PCRS",
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


@dataclass(frozen=True)
class VerifiedAttestation:
    """A document that passed every check asked for.

    ``root`` is ``"aws"``, ``"dev"`` or the PEM root's SHA-256; ``simulated`` is true when the
    root is the development CA (say SIMULATED wherever this is shown). ``pcrs_checked`` is false
    only when the caller opted out with ``unsafe_skip_pcr_check``. ``chain_der`` holds the
    document's certificates (``cabundle`` order, root first, then the leaf); ``chain`` renders
    their display facts on demand.
    """

    document: AttestationDocument
    root: str
    simulated: bool
    debug: bool
    pcrs_checked: bool
    checked_pcrs: tuple[int, ...]
    at: dt.datetime
    chain_der: tuple[bytes, ...]

    @property
    def chain(self) -> tuple[CertificateFacts, ...]:
        """Display facts for the document's certificates, ``cabundle`` order then the leaf."""
        return tuple(facts_of(der) for der in self.chain_der)


@dataclass(frozen=True)
class AttestationReport:
    """The outcome of :func:`check_attestation`, failed or not, and what was learnt.

    On failure ``failed_check`` is the check name (see :mod:`zcbench.nitro.errors`), ``message``
    says what to do, ``expected``/``actual`` carry the compared values as text. ``document`` is
    set when parsing succeeded; ``chain_der``/``chain`` the certificates, once they all parsed.
    """

    verified: bool
    failed_check: str | None
    message: str
    expected: str | None
    actual: str | None
    root: str | None
    simulated: bool
    document: AttestationDocument | None
    debug: bool | None
    pcrs_checked: bool
    checked_pcrs: tuple[int, ...]
    at: dt.datetime
    chain_der: tuple[bytes, ...] = field(default=())

    @property
    def chain(self) -> tuple[CertificateFacts, ...]:
        """Display facts for the document's certificates as far as they parsed (see above)."""
        return tuple(facts_of(der) for der in self.chain_der)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (the ``--json`` output of ``zcbench verify attestation``).

        Bytes are lowercase hex, times ISO 8601 UTC with ``Z``; document fields are ``None``
        (and ``pcrs`` empty) when the document did not parse.
        """
        doc = self.document

        def iso(t: dt.datetime, spec: str = "auto") -> str:
            return t.isoformat(timespec=spec).replace("+00:00", "Z")

        def hex_or_none(value: bytes | None) -> str | None:
            return None if value is None else value.hex()

        return {
            "verified": self.verified,
            "failed_check": self.failed_check,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "at": iso(self.at),
            "root": self.root,
            "simulated": self.simulated,
            "pcrs_checked": self.pcrs_checked,
            "checked_pcrs": list(self.checked_pcrs),
            "debug": self.debug,
            "module_id": None if doc is None else doc.module_id,
            "timestamp": None if doc is None else iso(doc.time, "milliseconds"),
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
                    "not_before": iso(c.not_before),
                    "not_after": iso(c.not_after),
                    "sha256": c.sha256,
                }
                for c in self.chain
            ],
        }

    def error(self) -> AttestationError:
        """The error :func:`verify_attestation` raises for this report (only when failed)."""
        if self.verified or self.failed_check is None:
            raise UsageError("the report is verified; there is no error to raise")
        return AttestationError(
            self.message, check=self.failed_check, expected=self.expected, actual=self.actual
        )


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return str(value)


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


def _normalise_pcrs(expected: Mapping[int, bytes]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for index, value in expected.items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 31:
            raise UsageError(f"expected PCR index {index!r} is not in 0..31")
        if not isinstance(value, (bytes, bytearray)):
            raise UsageError(f"expected PCR{index} must be bytes, not {type(value).__name__}")
        out[index] = bytes(value)
    return out


def _check_policy(
    doc: AttestationDocument,
    *,
    at: dt.datetime,
    expected: dict[int, bytes],
    nonce: bytes | None,
    max_age: dt.timedelta | None,
    allow_debug: bool,
    expected_public_key: bytes | None,
    expected_user_data: bytes | None,
) -> None:
    if is_debug(doc.pcrs) and not allow_debug:
        zero = [i for i in DEBUG_PCRS if i in doc.pcrs and not any(doc.pcrs[i])]
        _fail(
            "debug",
            f"PCR{'/'.join(map(str, zero))} are all zero: the enclave runs in debug mode, where "
            "the host can read its memory; pass allow_debug=True (--allow-debug) only for tests",
            expected="non-zero PCR0/1/2",
            actual="zero",
        )
    for index, want in sorted(expected.items()):
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
    if nonce is not None and doc.nonce != nonce:
        _fail(
            "nonce",
            "the document's nonce "
            + ("is absent" if doc.nonce is None else "differs from yours")
            + ": it may be a replay; ask for a fresh document with your nonce",
            expected=nonce.hex(),
            actual=None if doc.nonce is None else doc.nonce.hex(),
        )
    if max_age is not None:
        age = at - doc.time
        if age > max_age:
            _fail(
                "max_age",
                f"the document is {age} old at {at.isoformat()}; at most {max_age} allowed: "
                "ask for a fresh document",
                expected=f"<= {max_age.total_seconds()} s",
                actual=f"{age.total_seconds()} s",
            )
    for name, want_value, got_value in (
        ("public_key", expected_public_key, doc.public_key),
        ("user_data", expected_user_data, doc.user_data),
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


def check_attestation(
    data: bytes,
    *,
    trust: str | pathlib.Path = "aws",
    at: dt.datetime,
    expected_pcrs: Mapping[int, bytes] | None = None,
    nonce: bytes | None = None,
    max_age: dt.timedelta | None = None,
    allow_debug: bool = False,
    expected_public_key: bytes | None = None,
    expected_user_data: bytes | None = None,
    unsafe_skip_pcr_check: bool = False,
) -> AttestationReport:
    """Check ``data`` like :func:`verify_attestation`, returning a report instead of raising.

    Raises only for misuse (:class:`~zcbench.errors.UsageError`) or a missing root
    (:class:`~zcbench.errors.EnvError`), never because the document failed a check.
    """
    if not isinstance(at, dt.datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise UsageError("'at' must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    at = at.astimezone(dt.UTC)
    if expected_pcrs is None and not unsafe_skip_pcr_check:
        raise UsageError(
            "no expected PCRs: pass expected_pcrs (e.g. from load_commitment_pcrs), or "
            "unsafe_skip_pcr_check=True to accept any enclave image"
        )
    if expected_pcrs is not None and unsafe_skip_pcr_check:
        raise UsageError("pass expected_pcrs or unsafe_skip_pcr_check=True, not both")
    expected = _normalise_pcrs(expected_pcrs) if expected_pcrs is not None else {}
    if expected_pcrs is not None and not expected:
        raise UsageError("expected_pcrs is empty: name at least one PCR (PCR0 is the image)")
    for name, value in (
        ("nonce", nonce),
        ("expected_public_key", expected_public_key),
        ("expected_user_data", expected_user_data),
    ):
        if value is not None and not isinstance(value, bytes):
            raise UsageError(f"{name} must be bytes, not {type(value).__name__}")
    if max_age is not None and max_age < dt.timedelta(0):
        raise UsageError("max_age must not be negative")
    root = load_trust_root(trust)

    doc: AttestationDocument | None = None
    seen: list[bytes] = []
    try:
        doc = parse_document(data)
        leaf_key = validate_path(doc.certificate, doc.cabundle, root, at, seen)
        _verify_signature(doc, leaf_key)
        _check_policy(
            doc,
            at=at,
            expected=expected,
            nonce=nonce,
            max_age=max_age,
            allow_debug=allow_debug,
            expected_public_key=expected_public_key,
            expected_user_data=expected_user_data,
        )
    except AttestationError as exc:
        return AttestationReport(
            verified=False,
            failed_check=exc.check,
            message=str(exc),
            expected=_text(exc.expected),
            actual=_text(exc.actual),
            root=root.name,
            simulated=root.simulated,
            document=doc,
            debug=None if doc is None else is_debug(doc.pcrs),
            pcrs_checked=False,
            checked_pcrs=(),
            at=at,
            chain_der=tuple(seen),
        )
    return AttestationReport(
        verified=True,
        failed_check=None,
        message="verified" + (" (SIMULATED: development CA root)" if root.simulated else ""),
        expected=None,
        actual=None,
        root=root.name,
        simulated=root.simulated,
        document=doc,
        debug=is_debug(doc.pcrs),
        pcrs_checked=bool(expected),
        checked_pcrs=tuple(sorted(expected)),
        at=at,
        chain_der=tuple(seen),
    )


def verify_attestation(
    data: bytes,
    *,
    trust: str | pathlib.Path = "aws",
    at: dt.datetime,
    expected_pcrs: Mapping[int, bytes] | None = None,
    nonce: bytes | None = None,
    max_age: dt.timedelta | None = None,
    allow_debug: bool = False,
    expected_public_key: bytes | None = None,
    expected_user_data: bytes | None = None,
    unsafe_skip_pcr_check: bool = False,
) -> VerifiedAttestation:
    """Verify an attestation document; return what it proves or raise :class:`AttestationError`.

    ``trust`` names the root: ``"aws"`` (pinned Root-G1), ``"dev"`` (development CA in the
    zcbench home; the result is SIMULATED) or a :class:`pathlib.Path` to a PEM root. ``at`` is
    the verification time (``document.time`` for an archived document: audit only, it proves
    nothing about now). Every PCR in ``expected_pcrs`` must be present and equal; without it
    the call is refused unless ``unsafe_skip_pcr_check=True``. Debug-mode documents are refused
    unless ``allow_debug=True``. ``nonce``, ``max_age``, ``expected_public_key`` and
    ``expected_user_data`` are checked when given.
    """
    report = check_attestation(
        data,
        trust=trust,
        at=at,
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
    assert report.root is not None
    assert report.debug is not None
    return VerifiedAttestation(
        document=report.document,
        root=report.root,
        simulated=report.simulated,
        debug=report.debug,
        pcrs_checked=report.pcrs_checked,
        checked_pcrs=report.checked_pcrs,
        at=report.at,
        chain_der=report.chain_der,
    )
