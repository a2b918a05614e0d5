"""zcbench.nitro: attestation documents, trust roots, the development CA and the NSM.

The public facade (DESIGN.md, part ``nitro``): parse and verify Nitro attestation documents
against a root the caller names, produce them locally with the NSM emulator and the development
CA (SIMULATED), or get them from the real ``/dev/nsm``. The modules behind it:

* :mod:`~zcbench.nitro.document`  the byte format (parse strictly, encode)
* :mod:`~zcbench.nitro.verify`    the checks, in order, and their results
* :mod:`~zcbench.nitro.policy`    ``AttestationPolicy``: what a caller requires of a document
  (TEE-neutral, defined in :mod:`zcbench.tee.policy`; SEV-SNP and DCAP use the same one)
* :mod:`~zcbench.nitro.binding`   an LP document's checkpoint bound to a run's log (imported
  on its own: it uses ``zcbench.auditlog``)
* :mod:`~zcbench.nitro.trust`     pinned roots: ``"aws"``, ``"dev"``, a PEM file, and what each
  verdict rests on (AWS, SIMULATED, a custom root)
* :mod:`~zcbench.nitro.devca`     the development CA in the zcbench home
* :mod:`~zcbench.nitro.nsm`       the NSM protocol, messages and the real device
* :mod:`~zcbench.nitro.emulator`  the emulated NSM
* :mod:`~zcbench.nitro.commitment`  expected PCRs from ``commitment.json``
* :mod:`~zcbench.nitro.errors`    ``AttestationError`` (check names) and ``NsmError``
"""

from zcbench.nitro.commitment import load_commitment_pcrs
from zcbench.nitro.devca import DevCA, export_dev_root
from zcbench.nitro.document import AttestationDocument, parse_document
from zcbench.nitro.emulator import NsmEmulator
from zcbench.nitro.errors import AttestationError, NsmError
from zcbench.nitro.nsm import Nsm, NsmDescription, NsmDevice, PcrDescription
from zcbench.nitro.policy import MAX_CLOCK_SKEW, AttestationPolicy
from zcbench.nitro.trust import AWS_ROOT_G1_SHA256, TrustRoot, load_trust_root
from zcbench.nitro.verify import (
    AttestationReport,
    CertificateFacts,
    VerifiedAttestation,
    check_attestation,
    verify_attestation,
)

__all__ = [
    "AWS_ROOT_G1_SHA256",
    "MAX_CLOCK_SKEW",
    "AttestationDocument",
    "AttestationError",
    "AttestationPolicy",
    "AttestationReport",
    "CertificateFacts",
    "DevCA",
    "Nsm",
    "NsmDescription",
    "NsmDevice",
    "NsmEmulator",
    "NsmError",
    "PcrDescription",
    "TrustRoot",
    "VerifiedAttestation",
    "check_attestation",
    "export_dev_root",
    "load_commitment_pcrs",
    "load_trust_root",
    "parse_document",
    "verify_attestation",
]
