"""Trust roots: which certificate a chain must end in, named by the caller.

Owns the pinned AWS Nitro Enclaves Root-G1 (shipped in ``zcbench/nitro/roots/`` and checked
against its published SHA-256 fingerprint every time it is loaded), the development CA root in
the zcbench home (``trust="dev"``), and a caller's own PEM file. It never takes a root from a
document (pitfall 1 of the reference) and never falls back from one root to another.

What a verification rests on travels with the root, not with the way it was named
(:attr:`TrustRoot.kind`): ``"aws"`` only for the pinned Root-G1 (also when passed as a PEM
file); ``"dev"``, SIMULATED, for the development CA however it was trusted (``trust="dev"``, or
its root exported for an LP and passed as a file: its subject carries the
:data:`DEV_ROOT_MARKER` organisational unit, and a root whose fingerprint is the home's own
development root is one too); ``"custom"`` for any other PEM root, shown with its fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import pathlib
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from zcbench.errors import DataError, EnvError, UsageError
from zcbench.home import zcbench_home

__all__ = [
    "AWS_ROOT_G1_SHA256",
    "DEV_ROOT_MARKER",
    "RootKind",
    "TrustRoot",
    "load_trust_root",
    "read_dev_root",
]

AWS_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
"""SHA-256 of the DER of AWS Nitro Enclaves Root-G1, as AWS publishes it (verify-root.html)."""

DEV_ROOT_MARKER = "zcbench-dev"
"""The organisational unit in every development CA name (:mod:`zcbench.nitro.devca`).

A root carrying it is shown as SIMULATED whoever trusts it; a real CA has no reason to carry
it, and one that did would only be labelled more cautiously.
"""

RootKind = Literal["aws", "dev", "custom"]

_AWS_ROOT_FILE = "aws_nitro_root_g1.pem"
_DEV_ROOT_RELPATH = pathlib.Path("devca") / "root.pem"


@dataclass(frozen=True)
class TrustRoot:
    """A root certificate a chain may end in, and what a verification under it rests on.

    ``kind`` is ``"aws"`` (the pinned Root-G1), ``"dev"`` (the development CA: SIMULATED) or
    ``"custom"`` (any other root the caller named by file); ``fingerprint`` is the SHA-256 of
    its DER (lowercase hex). ``name`` is ``"aws"``, ``"dev"`` or, for a custom root, the
    fingerprint. Display :attr:`description`; test :attr:`simulated`.
    """

    kind: RootKind
    certificate: x509.Certificate
    der: bytes
    fingerprint: str

    @property
    def name(self) -> str:
        return self.fingerprint if self.kind == "custom" else self.kind

    @property
    def simulated(self) -> bool:
        """True for the development CA, however it was trusted."""
        return self.kind == "dev"

    @property
    def description(self) -> str:
        """What the verification rests on, in words: say it wherever a verdict is shown."""
        if self.kind == "aws":
            return "AWS Nitro Enclaves Root-G1"
        if self.kind == "dev":
            return f"SIMULATED: zcbench development CA (root {self.fingerprint})"
        return f"custom root {self.fingerprint}"

    def to_dict(self) -> dict[str, str]:
        """``{"kind", "sha256", "description"}`` for JSON outputs."""
        return {"kind": self.kind, "sha256": self.fingerprint, "description": self.description}


def _single_pem_certificate(
    pem: bytes, where: str, error: type[DataError] | type[EnvError] = DataError
) -> x509.Certificate:
    """The one certificate in ``pem``; anything else is bad content (:class:`DataError`, exit
    1) in a file the caller named, or ``error`` for a file zcbench itself keeps (the packaged
    root, the home's development root: a damaged installation or home, :class:`EnvError`)."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise error(
            f"{where} holds no readable PEM certificate ({exc}); give a file holding one "
            "PEM root certificate"
        ) from exc
    if len(certs) != 1:
        raise error(
            f"{where} must hold exactly one PEM certificate; it holds {len(certs)}"
        )
    return certs[0]


def _root(kind: RootKind, cert: x509.Certificate) -> TrustRoot:
    der = cert.public_bytes(Encoding.DER)
    return TrustRoot(
        kind=kind, certificate=cert, der=der, fingerprint=hashlib.sha256(der).hexdigest()
    )


def _is_dev_name(cert: x509.Certificate) -> bool:
    try:
        units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    except ValueError:
        return False
    return any(unit.value == DEV_ROOT_MARKER for unit in units)


def _home_dev_fingerprint() -> str | None:
    try:
        pem = (zcbench_home(create=False) / _DEV_ROOT_RELPATH).read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError):
        return None
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _file_root_kind(cert: x509.Certificate, fingerprint: str) -> RootKind:
    if fingerprint == AWS_ROOT_G1_SHA256:
        return "aws"
    if _is_dev_name(cert) or fingerprint == _home_dev_fingerprint():
        return "dev"
    return "custom"


@functools.lru_cache(maxsize=1)
def _aws_root() -> TrustRoot:
    pem = importlib.resources.files("zcbench.nitro").joinpath("roots", _AWS_ROOT_FILE)
    root = _root("aws", _single_pem_certificate(
        pem.read_bytes(), f"packaged {_AWS_ROOT_FILE}", EnvError
    ))
    if root.fingerprint != AWS_ROOT_G1_SHA256:
        # Cached only when it matched: a damaged install keeps failing loudly.
        raise EnvError(
            f"the packaged AWS root {_AWS_ROOT_FILE} has SHA-256 {root.fingerprint}, not the "
            f"published {AWS_ROOT_G1_SHA256}; the installation is damaged, reinstall zcbench"
        )
    return root


def load_trust_root(trust: str | pathlib.Path) -> TrustRoot:
    """The root named by ``trust``: ``"aws"``, ``"dev"`` or a path to a PEM file.

    ``"dev"`` reads the development CA root from the zcbench home (:func:`read_dev_root`); it
    is never created here. A file's root is classified by what it is (see the module
    docstring), never by how it was named. Any other string is refused rather than guessed at.
    """
    if isinstance(trust, pathlib.Path):
        try:
            pem = trust.read_bytes()
        except OSError as exc:
            raise EnvError(f"cannot read trust root {trust}: {exc.strerror}") from exc
        cert = _single_pem_certificate(pem, str(trust))
        fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
        if fingerprint == AWS_ROOT_G1_SHA256:
            return _aws_root()
        return _root(_file_root_kind(cert, fingerprint), cert)
    if trust == "aws":
        return _aws_root()
    if trust == "dev":
        root_pem = read_dev_root()
        return _root("dev", _single_pem_certificate(root_pem, "the development CA root", EnvError))
    raise UsageError(
        f"unknown trust {trust!r}: use 'aws', 'dev' or a pathlib.Path to a PEM root certificate"
    )


def read_dev_root() -> bytes:
    """The PEM of the development CA root in the zcbench home (what ``trust="dev"`` pins).

    Raises :class:`~zcbench.errors.EnvError` when this home holds none: the root that signed a
    fund's SIMULATED documents exists only on the fund's machine, so the message tells an LP
    to ask the fund for it (``zcbench nitro export-root``) rather than to make a new CA, whose
    root could never match.
    """
    path = zcbench_home(create=False) / _DEV_ROOT_RELPATH
    try:
        pem = path.read_bytes()
    except FileNotFoundError as exc:
        raise EnvError(
            f"no development CA root in this zcbench home ({path.parent}): SIMULATED documents "
            "verify only against the root of the development CA that signed them; ask the fund "
            "for it ('zcbench nitro export-root --out dev-root.pem' on their machine) and pass "
            "--trust dev-root.pem"
        ) from exc
    except OSError as exc:
        raise EnvError(f"cannot read the development CA root {path}: {exc.strerror}") from exc
    _single_pem_certificate(pem, str(path), EnvError)
    return pem
