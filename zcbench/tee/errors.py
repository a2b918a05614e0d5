"""The one attestation error, for every TEE, in the project's tree (zcbench/errors.py)::

    VerificationError
    └── AttestationError     evidence (a Nitro document, an SEV-SNP report, a DCAP quote)
                             failed a check; ``check`` names which one

Each TEE module lists its stable ``check`` names in its docstring (Nitro's in
:mod:`zcbench.nitro.errors`, SEV-SNP's in :mod:`zcbench.tee.sevsnp`, DCAP's in
:mod:`zcbench.tee.dcap`). Names shared across TEEs mean the same thing everywhere: ``decode``
(not the format), ``root``, ``chain``, ``validity``, ``signature``, ``debug``, ``measurement``,
``report_data``.
"""

from __future__ import annotations

from zcbench.errors import VerificationError

__all__ = ["AttestationError"]


class AttestationError(VerificationError):
    """Attestation evidence failed a check (see the TEE module's docstring for ``check``)."""
