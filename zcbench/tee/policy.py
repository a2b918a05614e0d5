"""What a caller requires of attestation evidence: one frozen :class:`AttestationPolicy`.

One policy for every TEE (Nitro documents, SEV-SNP reports, TDX and SGX quotes). The Nitro
fields came first (PCRs, nonce, age, public key, user data); the TEE-neutral ones are
``expected_measurement`` (the TEE's launch measurement: Nitro PCR0, the SEV-SNP
``MEASUREMENT``, TDX ``MRTD``, SGX ``MRENCLAVE``), ``expected_fields`` (other measured fields by
the TEE's own names: ``rtmr0``..``rtmr3``, ``mrsigner``, ``host_data``, ...),
``expected_report_data`` (the 64-byte report data binding a nonce or a key hash; shorter values
are compared zero-padded, for Nitro the ``user_data``) and ``allowed_tcb_statuses`` (DCAP TCB
statuses accepted besides ``UpToDate``, by name). A TEE refuses, as misuse, a policy field it
cannot check, so no requirement is ever silently dropped.

Owns the policy half of verification (sigstore's policy objects): the expected PCRs, the nonce,
the maximum age, whether debug mode is acceptable, the trust root, and the expected
``public_key`` and ``user_data``. It is checked for misuse once, when it is made
(:class:`~zcbench.errors.UsageError`), so every layer passes one value instead of retyping nine
keyword arguments. It does not check documents: :mod:`zcbench.nitro.verify` does, in order.

Unsafe choices have unsafe names (``unsafe_skip_pcr_check``, ``allow_debug``) and are said on
every use: :attr:`AttestationPolicy.unsafe` lists them in words, each verification logs them as a
warning on the ``zcbench.nitro`` logger and carries them in its result's ``warnings``, which
every surface prints.

Time is not part of the policy: the verification instant ``at`` is given to each check
(python-tuf's ``reference_time``). The documented clock skew :data:`MAX_CLOCK_SKEW` is how far a
document's signed timestamp may lie after ``at`` before it is refused (check ``future``).
"""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from zcbench.errors import UsageError

__all__ = ["MAX_CLOCK_SKEW", "TCB_STATUSES", "AttestationPolicy"]

MAX_CLOCK_SKEW = dt.timedelta(seconds=60)
"""How far a document's timestamp may lie after the verification time (clocks disagree a little;
a document from further in the future was stamped by a wrong clock or is checked at a time
chosen to make it look fresh)."""

_MAX_INDEX = 31
_PCR_SIZES = (32, 48, 64)
_MEASUREMENT_SIZES = (32, 48, 64)
_FIELD_NAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")

TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
    }
)
"""The DCAP TCB statuses a policy may allow by name (``Revoked`` is never acceptable)."""

# The logger keeps the name it had when only Nitro was verified (DESIGN.md, Attestation).
logger = logging.getLogger("zcbench.nitro")
logger.addHandler(logging.NullHandler())


def _normalise_pcrs(expected: Mapping[int, bytes]) -> Mapping[int, bytes]:
    if not isinstance(expected, Mapping):
        raise UsageError("expected_pcrs must be a mapping of PCR index to bytes")
    out: dict[int, bytes] = {}
    for index, value in expected.items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= _MAX_INDEX:
            raise UsageError(f"expected PCR index {index!r} is not in 0..{_MAX_INDEX}")
        if not isinstance(value, (bytes, bytearray)):
            raise UsageError(f"expected PCR{index} must be bytes, not {type(value).__name__}")
        if len(value) not in _PCR_SIZES:
            raise UsageError(f"expected PCR{index} is {len(value)} bytes; a PCR is 32, 48 or 64")
        out[index] = bytes(value)
    if not out:
        raise UsageError("expected_pcrs is empty: name at least one PCR (PCR0 is the image)")
    return MappingProxyType(dict(sorted(out.items())))


@dataclass(frozen=True)
class AttestationPolicy:
    """Everything a document must satisfy, apart from the time it is checked at.

    ``trust`` names the root: ``"aws"`` (pinned Root-G1), ``"dev"`` (the development CA in the
    zcbench home; SIMULATED) or a :class:`pathlib.Path` to a PEM root. Every PCR in
    ``expected_pcrs`` must be present and equal; without them the policy is refused unless
    ``unsafe_skip_pcr_check=True``. Debug-mode documents are refused unless ``allow_debug``.
    ``nonce``, ``max_age``, ``expected_public_key`` and ``expected_user_data`` are checked when
    given. ``expected_pcrs`` is stored read-only and sorted.
    """

    expected_pcrs: Mapping[int, bytes] | None = None
    nonce: bytes | None = None
    max_age: dt.timedelta | None = None
    allow_debug: bool = False
    trust: str | pathlib.Path = "aws"
    expected_public_key: bytes | None = None
    expected_user_data: bytes | None = None
    unsafe_skip_pcr_check: bool = False
    expected_measurement: bytes | None = None
    expected_fields: Mapping[str, bytes] | None = None
    expected_report_data: bytes | None = None
    allowed_tcb_statuses: frozenset[str] = frozenset()
    unsafe: tuple[str, ...] = field(init=False, default=(), compare=False)

    def __post_init__(self) -> None:
        measured = self.expected_pcrs is not None or self.expected_measurement is not None
        if not measured and not self.unsafe_skip_pcr_check:
            raise UsageError(
                "no expected PCRs: pass expected_pcrs (e.g. from load_commitment_pcrs) or "
                "expected_measurement, or unsafe_skip_pcr_check=True to accept any image"
            )
        if measured and self.unsafe_skip_pcr_check:
            raise UsageError(
                "pass expected_pcrs (or expected_measurement) or unsafe_skip_pcr_check=True, "
                "not both"
            )
        if self.expected_pcrs is not None:
            object.__setattr__(self, "expected_pcrs", _normalise_pcrs(self.expected_pcrs))
        self._check_tee_fields()
        for name in ("nonce", "expected_public_key", "expected_user_data"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bytes):
                raise UsageError(f"{name} must be bytes, not {type(value).__name__}")
        if self.max_age is not None:
            if not isinstance(self.max_age, dt.timedelta):
                raise UsageError("max_age must be a datetime.timedelta")
            if self.max_age < dt.timedelta(0):
                raise UsageError("max_age must not be negative")
        if not isinstance(self.trust, (str, pathlib.Path)):
            raise UsageError("trust must be 'aws', 'dev' or a pathlib.Path to a PEM root")
        for name in ("allow_debug", "unsafe_skip_pcr_check"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be True or False")
        unsafe: list[str] = []
        if self.unsafe_skip_pcr_check:
            unsafe.append(
                "no PCR or measurement is checked (unsafe_skip_pcr_check): genuine hardware "
                "signed the evidence, but nothing says WHICH code it runs"
            )
        if self.allow_debug:
            unsafe.append(
                "debug-mode documents are accepted (allow_debug): the host can read such an "
                "enclave's memory"
            )
        if self.allowed_tcb_statuses - {"UpToDate"}:
            unsafe.append(
                "TCB statuses other than UpToDate are accepted (allowed_tcb_statuses: "
                + ", ".join(sorted(self.allowed_tcb_statuses - {"UpToDate"}))
                + "): the platform may lack security fixes"
            )
        object.__setattr__(self, "unsafe", tuple(unsafe))

    def _check_tee_fields(self) -> None:
        value = self.expected_measurement
        if value is not None:
            if not isinstance(value, bytes):
                raise UsageError("expected_measurement must be bytes")
            if len(value) not in _MEASUREMENT_SIZES:
                raise UsageError(
                    f"expected_measurement is {len(value)} bytes; a measurement is 32 or 48 "
                    "(64 for some PCR banks)"
                )
        if self.expected_fields is not None:
            if not isinstance(self.expected_fields, Mapping) or not self.expected_fields:
                raise UsageError("expected_fields must be a non-empty mapping of name to bytes")
            fields: dict[str, bytes] = {}
            for name, want in self.expected_fields.items():
                if not isinstance(name, str) or not name or not set(name) <= _FIELD_NAME:
                    raise UsageError(f"expected field name {name!r} is not lowercase a-z0-9_")
                if not isinstance(want, bytes) or not want:
                    raise UsageError(f"expected field {name} must be non-empty bytes")
                fields[name] = want
            frozen = MappingProxyType(dict(sorted(fields.items())))
            object.__setattr__(self, "expected_fields", frozen)
        data = self.expected_report_data
        if data is not None and (not isinstance(data, bytes) or not 1 <= len(data) <= 64):
            raise UsageError("expected_report_data must be 1 to 64 bytes")
        statuses = self.allowed_tcb_statuses
        if isinstance(statuses, str) or not all(isinstance(x, str) for x in statuses):
            raise UsageError("allowed_tcb_statuses must be a set of status names")
        unknown = sorted(set(statuses) - TCB_STATUSES)
        if unknown:
            raise UsageError(
                f"unknown TCB status {unknown[0]!r}; allow one of {', '.join(sorted(TCB_STATUSES))}"
            )
        object.__setattr__(self, "allowed_tcb_statuses", frozenset(statuses))

    def report_data_padded(self) -> bytes | None:
        """``expected_report_data`` zero-padded to the 64 bytes every report carries."""
        data = self.expected_report_data
        return None if data is None else data.ljust(64, b"\0")

    @property
    def checked_pcrs(self) -> tuple[int, ...]:
        """The PCR indexes this policy compares, in order (empty when it checks none)."""
        return tuple(self.expected_pcrs or ())

    def warn(self) -> tuple[str, ...]:
        """Log this policy's unsafe choices (once per call: call it on every use); return them."""
        for text in self.unsafe:
            logger.warning("unsafe attestation policy: %s", text)
        return self.unsafe
