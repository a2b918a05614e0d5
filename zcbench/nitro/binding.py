"""Is an LP's attestation document bound to a run's signed log?

Owns the reading of the live run's binding (DESIGN.md contracts): an LP's on-demand document
carries the run's log key in ``public_key`` and, in ``user_data``, the CBOR map
``{"checkpoint": <the latest signed note>}``. :func:`check_log_binding` says whether that
checkpoint is signed by the attested key under an origin naming the document's PCR0 and, when
given the run's log, whether the log verifies, has that origin and key, and contains the
checkpoint (through :func:`zcbench.auditlog.check_log` with it as the known checkpoint: a
shorter log is a rollback, another root a fork).

It checks the binding only: the document itself must have been verified first
(:func:`zcbench.nitro.check_attestation`); surfaces (the CLI's ``verify attestation --log``, the
attestation panel, the LP report) show this result and decide nothing themselves. It uses
:mod:`zcbench.auditlog`, which uses :mod:`zcbench.nitro` only lazily; ``zcbench.nitro``'s
package facade does not import this module, so there is no import cycle.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from zcbench import _cbor
from zcbench.auditlog.checkpoint import parse_checkpoint_note, verify_checkpoint
from zcbench.errors import DataError, ZcbenchError
from zcbench.nitro.document import AttestationDocument
from zcbench.nitro.policy import AttestationPolicy

__all__ = ["LogBinding", "check_log_binding", "user_data_checkpoint"]


@dataclass(frozen=True)
class LogBinding:
    """The checkpoint an enclave put in ``user_data``, and whether it binds the document to a log.

    ``signed`` is true when the note's signature verified under the document's ``public_key``
    (the attested log key) and its origin names the document's PCR0. ``log_checked`` says the
    run's log was compared too (then ``bound`` also needs the log to verify and contain the
    checkpoint). ``problem`` says why not, in words; ``None`` when bound.
    """

    origin: str
    size: int
    root: bytes
    note: bytes
    signed: bool
    log_checked: bool
    problem: str | None
    log: str | None = None

    @property
    def bound(self) -> bool:
        """True when nothing is wrong: signed, and (if checked) held by the run's log."""
        return self.problem is None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "bound": self.bound,
            "origin": self.origin,
            "size": self.size,
            "root": self.root.hex(),
            "signed_by_attested_key": self.signed,
            "log_checked": self.log_checked,
            "log": self.log,
            "problem": self.problem,
            "note": self.note.decode("utf-8", "replace"),
        }


def user_data_checkpoint(user_data: bytes) -> bytes:
    """The signed note in ``user_data`` (CBOR ``{"checkpoint": bytes}``), strictly decoded.

    Raises :class:`~zcbench.errors.DataError` when ``user_data`` is anything else.
    """
    try:
        decoded = _cbor.decode(user_data, canonical=True, max_depth=1)
    except _cbor.CborError as exc:
        raise DataError(f"user_data is not canonical CBOR: {exc}") from None
    if not isinstance(decoded, dict) or set(decoded) != {"checkpoint"}:
        raise DataError("user_data is not a map {'checkpoint': <signed note bytes>}")
    note = decoded["checkpoint"]
    if not isinstance(note, bytes):
        raise DataError("user_data's checkpoint is not a byte string (a signed note)")
    return note


def check_log_binding(
    document: AttestationDocument,
    *,
    log: pathlib.Path | None = None,
    policy: AttestationPolicy | None = None,
) -> LogBinding | None:
    """The checkpoint in ``document``'s ``user_data`` and what it binds; ``None`` if it has none.

    ``log`` is the run's folder (or log folder); it is verified under ``policy``'s root and its
    boot document held to ``policy``'s PCRs (default: AWS, PCRs not compared). Raises
    :class:`~zcbench.errors.DataError` when ``user_data`` is present but not a checkpoint map,
    :class:`~zcbench.errors.UsageError` when ``log`` is not a log.
    """
    if document.user_data is None:
        return None
    note = user_data_checkpoint(document.user_data)
    try:
        checkpoint = parse_checkpoint_note(note)
    except ZcbenchError as exc:
        raise DataError(f"user_data carries a checkpoint that does not parse: {exc}") from exc
    problem: str | None = None
    if document.public_key is None:
        problem = "the document carries no public_key to check the checkpoint signature with"
    else:
        try:
            verify_checkpoint(note, document.public_key, checkpoint.origin)
        except ZcbenchError as exc:
            problem = f"checkpoint signature does not verify under the attested key: {exc}"
        pcr0 = document.pcrs.get(0)
        if problem is None and pcr0 is not None:
            prefix = f"zcbench/{pcr0.hex()[:16]}/"
            if not checkpoint.origin.startswith(prefix):
                problem = f"checkpoint origin {checkpoint.origin} does not name this PCR0"
    signed = problem is None
    if log is not None and problem is None:
        problem = _against_log(document, note, checkpoint.origin, pathlib.Path(log), policy)
    return LogBinding(
        origin=checkpoint.origin,
        size=checkpoint.size,
        root=checkpoint.root,
        note=note,
        signed=signed,
        log_checked=log is not None,
        problem=problem,
        log=None if log is None else str(log),
    )


def _against_log(
    document: AttestationDocument,
    note: bytes,
    origin: str,
    log: pathlib.Path,
    policy: AttestationPolicy | None,
) -> str | None:
    from zcbench.auditlog.verify import check_log, nitro_boot_verifier

    trust = policy.trust if policy is not None else "aws"
    expected = None if policy is None else policy.expected_pcrs
    report = check_log(
        log,
        trust=trust,
        known_checkpoint=note,
        boot_verifier=nitro_boot_verifier(expected_pcrs=expected),
        progress=False,
    )
    if not report.verified:
        return (
            f"the run's log at {log} does not hold this checkpoint: "
            f"{report.classification}: {report.message}"
        )
    if report.origin != origin:
        return f"the checkpoint's origin {origin} is not the log's ({report.origin})"
    if report.public_key != document.public_key:
        return "the document's public_key is not the key the log's boot document attests"
    return None
