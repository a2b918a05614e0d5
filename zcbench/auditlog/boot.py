"""The boot record's attestation: what it establishes about a log, and against which PCRs.

A log's record 0 carries the boot attestation document; a :data:`BootVerifier` turns it into a
:class:`BootIdentity` (the log key, PCR0, the run id, hence the origin) or refuses it.
:func:`nitro_boot_verifier` is the real one (``zcbench.nitro`` at the document's own time);
:func:`boot_verifier_for` holds a log to its build's PCRs: those of a commitment the caller
names, else those of the build its run's ``summary.json`` names, else none (and the identity
then warns that no PCR was compared). Every surface (CLI, widgets, report) takes its boot
verifier from here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from zcbench.auditlog.checkpoint import log_origin
from zcbench.auditlog.link import RunLink, decode_link
from zcbench.auditlog.location import locate_log
from zcbench.errors import DataError, VerificationError

__all__ = [
    "BootIdentity",
    "BootVerifier",
    "boot_verifier_for",
    "commitment_of_run",
    "nitro_boot_verifier",
]


@dataclass(frozen=True, slots=True)
class BootIdentity:
    """What a verified boot document establishes about the log.

    ``public_key`` is the DER SubjectPublicKeyInfo of the log's Ed25519 key, ``pcr0`` the
    enclave measurement, ``run_id`` the document's nonce (the run id); ``previous`` the run
    this one continues, as its attested ``user_data`` names it (:mod:`zcbench.auditlog.link`;
    None for a first run).
    """

    public_key: bytes
    pcr0: bytes
    run_id: str
    simulated: bool = False
    pcrs_checked: bool = False
    warnings: tuple[str, ...] = ()
    previous: RunLink | None = None

    @property
    def origin(self) -> str:
        """The log origin this boot commits to."""
        return log_origin(self.pcr0, self.run_id)


BootVerifier = Callable[[bytes, "str | Path"], BootIdentity]
"""``(boot document bytes, trust) -> BootIdentity``; raises a ZcbenchError when untrusted."""


def nitro_boot_verifier(
    expected_pcrs: Mapping[int, bytes] | None = None,
    *,
    commitment: Path | None = None,
) -> BootVerifier:
    """The default boot verifier: ``zcbench.nitro`` at the document's own timestamp.

    Without ``expected_pcrs`` the PCRs are not compared (the origin still names PCR0) and the
    identity carries a warning saying so. ``commitment`` names where the PCRs came from, for
    the messages.
    """

    def verify(document: bytes, trust: str | Path) -> BootIdentity:
        from zcbench import nitro  # heavy: X.509 and COSE

        parsed = nitro.parse_document(document)
        verified = nitro.verify_attestation(
            document,
            trust=trust,
            at=parsed.time,
            expected_pcrs=expected_pcrs,
            unsafe_skip_pcr_check=expected_pcrs is None,
        )
        doc = verified.document
        if doc.public_key is None or doc.nonce is None or 0 not in doc.pcrs:
            raise VerificationError(
                "the boot document lacks its public_key, nonce (run id) or PCR0",
                check="boot_document_fields",
            )
        try:
            run_id = doc.nonce.decode("ascii")
        except UnicodeDecodeError:
            raise VerificationError(
                "the boot document's nonce is not an ASCII run id",
                check="boot_run_id",
                actual=doc.nonce.hex(),
            ) from None
        try:
            previous = decode_link(doc.user_data)
        except DataError as exc:
            raise VerificationError(
                f"the boot document's user_data is not a link to a previous run: {exc}",
                check="boot_previous_run",
            ) from None
        warnings = [] if verified.pcrs_checked else [
            "no PCR was compared with a commitment (pcrs_checked: false); name the build's "
            "commitment.json to compare them"
        ]
        if verified.simulated:
            warnings.append("SIMULATED: the boot document chains to the development CA")
        elif verified.trust_root.kind == "custom":
            warnings.append(f"the boot document chains to {verified.trust_root.description}, "
                            "not to AWS's root")
        return BootIdentity(
            public_key=doc.public_key,
            pcr0=doc.pcrs[0],
            run_id=run_id,
            simulated=verified.simulated,
            pcrs_checked=verified.pcrs_checked,
            warnings=tuple(warnings),
            previous=previous,
        )

    return verify


def commitment_of_run(path: str | Path) -> Path | None:
    """The ``commitment.json`` of the build that the run at ``path`` names in its
    ``summary.json`` (``image``), when both exist; else None (a slice, a bare log folder)."""
    where = locate_log(path)
    if where.run_folder is None:
        return None
    summary = where.run_folder / "summary.json"
    try:
        image = json.loads(summary.read_bytes()).get("image")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(image, str) or not image:
        return None
    build = Path(image)
    if not build.is_absolute() and not build.exists():
        build = where.run_folder / build
    candidate = build / "commitment.json"
    return candidate if candidate.is_file() else None


def boot_verifier_for(path: str | Path, *, commitment: Path | None = None) -> BootVerifier:
    """The boot verifier that holds the log at ``path`` to its build's PCRs.

    ``commitment`` (a ``commitment.json``) when given; else the one :func:`commitment_of_run`
    finds; else :func:`nitro_boot_verifier` without PCRs (its identity warns so).
    """
    from zcbench.nitro import load_commitment_pcrs

    chosen = commitment if commitment is not None else commitment_of_run(path)
    if chosen is None:
        return nitro_boot_verifier()
    return nitro_boot_verifier(expected_pcrs=load_commitment_pcrs(chosen), commitment=chosen)
