"""Trust roots: which certificate a chain must end in, named by the caller.

Owns the pinned AWS Nitro Enclaves Root-G1 (shipped in ``zcbench/nitro/roots/`` and checked
against its published SHA-256 fingerprint every time it is loaded), the development CA root in
the zcbench home (``trust="dev"``, every result SIMULATED), and a caller's own PEM file. It never
takes a root from a document (pitfall 1 of the reference) and never falls back from one root to
another.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import pathlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from zcbench.errors import EnvError, UsageError
from zcbench.home import zcbench_home

__all__ = [
    "AWS_ROOT_G1_SHA256",
    "TrustRoot",
    "load_trust_root",
]

AWS_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
"""SHA-256 of the DER of AWS Nitro Enclaves Root-G1, as AWS publishes it (verify-root.html)."""

_AWS_ROOT_FILE = "aws_nitro_root_g1.pem"
_DEV_ROOT_RELPATH = pathlib.Path("devca") / "root.pem"


@dataclass(frozen=True)
class TrustRoot:
    """A root certificate a chain may end in.

    ``name`` is ``"aws"``, ``"dev"`` or the root's SHA-256 fingerprint (lowercase hex) for a
    caller's PEM file; ``simulated`` is true only for the development CA.
    """

    name: str
    certificate: x509.Certificate
    der: bytes
    fingerprint: str

    @property
    def simulated(self) -> bool:
        return self.name == "dev"


def _single_pem_certificate(pem: bytes, where: str) -> x509.Certificate:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise EnvError(f"{where} holds no readable PEM certificate: {exc}") from exc
    if len(certs) != 1:
        raise EnvError(f"{where} must hold exactly one certificate; it holds {len(certs)}")
    return certs[0]


def _root(name: str, cert: x509.Certificate) -> TrustRoot:
    der = cert.public_bytes(Encoding.DER)
    return TrustRoot(
        name=name, certificate=cert, der=der, fingerprint=hashlib.sha256(der).hexdigest()
    )


@functools.lru_cache(maxsize=1)
def _aws_root() -> TrustRoot:
    pem = importlib.resources.files("zcbench.nitro").joinpath("roots", _AWS_ROOT_FILE)
    root = _root("aws", _single_pem_certificate(pem.read_bytes(), f"packaged {_AWS_ROOT_FILE}"))
    if root.fingerprint != AWS_ROOT_G1_SHA256:
        # Cached only when it matched: a damaged install keeps failing loudly.
        raise EnvError(
            f"the packaged AWS root {_AWS_ROOT_FILE} has SHA-256 {root.fingerprint}, not the "
            f"published {AWS_ROOT_G1_SHA256}; the installation is damaged, reinstall zcbench"
        )
    return root


def load_trust_root(trust: str | pathlib.Path) -> TrustRoot:
    """The root named by ``trust``: ``"aws"``, ``"dev"`` or a path to a PEM file.

    ``"dev"`` reads the development CA root from the zcbench home (create it with
    :class:`zcbench.nitro.DevCA` or ``zcbench nitro emulate``); it is never created here.
    Any other string is refused rather than guessed at.
    """
    if isinstance(trust, pathlib.Path):
        try:
            pem = trust.read_bytes()
        except OSError as exc:
            raise EnvError(f"cannot read trust root {trust}: {exc.strerror}") from exc
        cert = _single_pem_certificate(pem, str(trust))
        fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
        return _root(fingerprint, cert)
    if trust == "aws":
        return _aws_root()
    if trust == "dev":
        path = zcbench_home(create=False) / _DEV_ROOT_RELPATH
        try:
            pem = path.read_bytes()
        except FileNotFoundError as exc:
            raise EnvError(
                f"no development CA at {path.parent}; create one with 'zcbench nitro emulate' "
                "or zcbench.nitro.DevCA.load_or_create()"
            ) from exc
        except OSError as exc:
            raise EnvError(f"cannot read the development CA root {path}: {exc.strerror}") from exc
        return _root("dev", _single_pem_certificate(pem, str(path)))
    raise UsageError(
        f"unknown trust {trust!r}: use 'aws', 'dev' or a pathlib.Path to a PEM root certificate"
    )
