"""The typed verdict every TEE's verification returns: one :class:`TeeVerdict`.

Owns the TEE-neutral result of checking attestation evidence (a Nitro document, an SEV-SNP
report, a TDX or SGX quote): whether it verified, the check that failed with the expected and
actual values, the measurement, the report data, debug mode, the TCB status, what the verdict
rests on (the pinned root, in words) and the TEE's own measured fields by name. It does not
verify anything: each TEE module builds one, and :mod:`zcbench.tee` dispatches to them.

:meth:`TeeVerdict.to_dict` is the ``--json`` of ``zcbench verify attestation``; the keys
``tee``, ``verified``, ``failed_check``, ``measurement``, ``report_data``, ``debug`` and
``tcb_status`` are present for every TEE (``tcb_status`` is ``None`` where the TEE has no such
notion, ``"unknown"`` when it was not evaluated for lack of collateral).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from zcbench.errors import UsageError
from zcbench.tee.errors import AttestationError

__all__ = ["TEE_KINDS", "ChainCertificate", "TeeKind", "TeeVerdict", "chain_roles", "text_of"]

TeeKind = Literal["nitro", "sev-snp", "tdx", "sgx"]
TEE_KINDS: tuple[TeeKind, ...] = ("nitro", "sev-snp", "tdx", "sgx")


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ChainCertificate:
    """One certificate of the chain a verdict rests on, as read (root first in a verdict's
    ``certificates``): its role, subject, validity window and SHA-256 of its DER."""

    role: Literal["root", "intermediate", "leaf"]
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str

    def valid_at(self, at: dt.datetime) -> bool:
        """Whether ``at`` lies inside the certificate's validity window."""
        return self.not_before <= at <= self.not_after

    def to_dict(self) -> dict[str, str]:
        return {
            "role": self.role,
            "subject": self.subject,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "sha256": self.sha256,
        }


def chain_roles(count: int) -> tuple[Literal["root", "intermediate", "leaf"], ...]:
    """The roles of a chain of ``count`` certificates, root first."""
    return tuple(
        "root" if i == 0 else "leaf" if i == count - 1 else "intermediate" for i in range(count)
    )


@dataclass(frozen=True)
class TeeVerdict:
    """The outcome of checking one piece of evidence, failed or not.

    ``tee`` names the format recognised (even when a later check failed). ``measurement`` and
    ``report_data`` are the evidence's own values (``None`` before they parsed);
    ``fields`` holds the TEE's other measured or reported fields by name, as hex or text.
    ``rests_on`` says in words what the verdict rests on (the pinned vendor root, or
    SIMULATED); ``simulated`` is True only for the development CA. ``warnings`` carries the
    policy's unsafe choices and TEE facts a reader must see (SMT allowed, a migration agent).
    """

    tee: TeeKind
    verified: bool
    failed_check: str | None
    message: str
    expected: str | None
    actual: str | None
    at: dt.datetime
    rests_on: str
    simulated: bool = False
    measurement: bytes | None = None
    report_data: bytes | None = None
    debug: bool | None = None
    tcb_status: str | None = None
    advisory_ids: tuple[str, ...] = ()
    measurement_checked: bool = False
    fields: Mapping[str, str] = field(default_factory=dict)
    chain: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    certificates: tuple[ChainCertificate, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary: bytes as lowercase hex, times ISO 8601 UTC with ``Z``."""
        return {
            "tee": self.tee,
            "verified": self.verified,
            "failed_check": self.failed_check,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "at": _iso(self.at),
            "rests_on": self.rests_on,
            "simulated": self.simulated,
            "measurement": None if self.measurement is None else self.measurement.hex(),
            "measurement_checked": self.measurement_checked,
            "report_data": None if self.report_data is None else self.report_data.hex(),
            "debug": self.debug,
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "fields": dict(self.fields),
            "chain": list(self.chain),
            "certificates": [c.to_dict() for c in self.certificates],
            "warnings": list(self.warnings),
        }

    def error(self) -> AttestationError:
        """The error a raising ``verify_*`` raises for this verdict (only when failed)."""
        if self.verified or self.failed_check is None:
            raise UsageError("the verdict is verified; there is no error to raise")
        return AttestationError(
            self.message, check=self.failed_check, expected=self.expected, actual=self.actual
        )


def text_of(value: object) -> str | None:
    """An expected or actual value as the verdict carries it: hex for bytes, else ``str``."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return str(value)
