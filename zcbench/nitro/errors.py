"""The errors of zcbench.nitro, placed in the project's one tree (zcbench/errors.py)::

    VerificationError
    └── AttestationError     a document failed a check; ``check`` names which one (the one
                             class for every TEE, defined in :mod:`zcbench.tee.errors`)
    EnvError
    └── NsmError             the NSM (device or emulator) answered with an error code

Stable ``check`` names of :class:`AttestationError`:

========================  ==================================================================
``decode``                not one well-formed CBOR item: truncated, trailing bytes, duplicate
                          keys, chunked strings, unsupported items, an unknown tag
``schema``                well-formed CBOR of the wrong shape: a field missing, unknown, of the
                          wrong type or size, ``digest`` not ``SHA384``, a bad PCR index
``algorithm``             not ES384: protected header other than ``{1: -35}``, a certificate
                          signed with another algorithm (or naming one in its TBS and another
                          outside it, RFC 5280 4.1.1.2), or a key not on P-384
``certificate``           a certificate in the document is not valid DER X.509
``root``                  the bundle's first certificate is not the pinned root
``chain``                 a certificate is not issued (name and signature) by the next one
``validity``              a certificate is expired or not yet valid at the verification time
``ca_constraints``        basicConstraints wrong: an issuer not a CA, a path too long, a leaf
                          that is a CA, or a critical extension this verifier does not know
``key_usage``             an issuer without keyCertSign, a leaf without digitalSignature, or
                          keyCertSign on a certificate that is not a CA (RFC 5280 4.2.1.3)
``signature``             the document signature (ES384 over COSE Sig_structure) does not hold
``future``                the signed timestamp lies after the verification time by more than
                          ``MAX_CLOCK_SKEW`` (60 s; :mod:`zcbench.nitro.policy`)
``timestamp``             the signed timestamp lies outside the leaf certificate's validity
``debug``                 PCR0/1/2 are zero (debug mode) and ``allow_debug`` was not asked for
``pcr<N>``                PCR N is missing or differs from the expected value
``measurement``           PCR0 differs from the policy's ``expected_measurement``
``report_data``           ``user_data`` is absent or differs from ``expected_report_data``
``nonce``                 the nonce is absent or differs
``max_age``               the document is older than allowed
``public_key``            ``public_key`` is absent or differs from the expected key
``user_data``             ``user_data`` is absent or differs from the expected bytes
========================  ==================================================================
"""

from __future__ import annotations

from zcbench.errors import EnvError
from zcbench.tee.errors import AttestationError

__all__ = ["AttestationError", "NsmError"]


class NsmError(EnvError):
    """The NSM answered ``{"Error": code}``; ``code`` is the NSM's name for it."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code
