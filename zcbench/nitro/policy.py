"""The attestation policy, as Nitro code has always imported it.

The policy is TEE-neutral and lives in :mod:`zcbench.tee.policy` (one representation for Nitro,
SEV-SNP and DCAP quotes); this module keeps the original import path.
"""

from __future__ import annotations

from zcbench.tee.policy import MAX_CLOCK_SKEW, AttestationPolicy

__all__ = ["MAX_CLOCK_SKEW", "AttestationPolicy"]
