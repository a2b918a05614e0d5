"""The development CA: a local stand-in for AWS's attestation PKI, SIMULATED by construction.

Owns ``zcbench_home()/devca/`` (mode 0700): a P-384 root and three intermediates shaped like
AWS's chain (reference §1.3: regional pathLen 2, zonal pathLen 1, instance pathLen 0 with
keyCertSign only), their private keys (mode 0600), and the issuing of one fresh leaf per
document (CA:FALSE, non-critical keyUsage digitalSignature + nonRepudiation, no key
identifiers, 3 h lifetime starting 3 s before the document's timestamp). The bundle it hands out
is ``[root, regional, zonal, instance]``, root first like AWS's.

Every name says ``zcbench-dev`` (:data:`~zcbench.nitro.trust.DEV_ROOT_MARKER`) and SIMULATED so a
development certificate can never be mistaken for AWS's: a verifier shows SIMULATED for this
root however it is trusted (``trust="dev"``, or the file :func:`export_dev_root` writes for an
LP, who has no such CA of their own). Nothing here is trusted unless a verifier is told to. The
intermediates have AWS-like short lifetimes and are reissued (under a file lock, written
atomically) when they would not cover a new leaf; the root lives 30 years.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import pathlib
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from zcbench.durable import write_atomically, write_output
from zcbench.errors import EnvError, UsageError, describe_os_error
from zcbench.home import zcbench_home
from zcbench.nitro.trust import DEV_ROOT_MARKER, TrustRoot, load_trust_root, read_dev_root

__all__ = ["LEAF_LIFETIME", "DevCA", "IssuedLeaf", "export_dev_root"]

LEAF_LIFETIME = dt.timedelta(hours=3)
"""A leaf lives 3 h (AWS: 3 h 0 m 3 s counting the 3 s before the timestamp)."""

_LEAF_LEAD = dt.timedelta(seconds=3)
_ROOT_LIFETIME = dt.timedelta(days=365 * 30)
# name, lifetime, pathLen; AWS's regional/zonal/instance lifetimes (20 d, ~6 d, 1 d)
_LEVELS = (
    ("regional", dt.timedelta(days=20), 2),
    ("zonal", dt.timedelta(days=6), 1),
    ("instance", dt.timedelta(days=1), 0),
)
_BACKDATE = dt.timedelta(hours=1)
_ORG = "zcbench development CA (SIMULATED)"


@dataclass(frozen=True)
class IssuedLeaf:
    """A leaf certificate just issued for one document, with its private key."""

    key: ec.EllipticCurvePrivateKey
    certificate: bytes
    cabundle: tuple[bytes, ...]


@dataclass(frozen=True)
class _Level:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEV_ROOT_MARKER),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca_key_usage(*, instance: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not instance,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=not instance,
        encipher_only=False,
        decipher_only=False,
    )


def _floor_second(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(microsecond=0)


def _require_private(path: pathlib.Path, *, folder: bool) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        want = "0700" if folder else "0600"
        raise EnvError(
            f"{path} is readable by others (mode {mode:04o}); the development CA's keys must be "
            f"private: run 'chmod {want} {path}' or delete the folder to start a new CA"
        )


class DevCA:
    """The development CA in a folder (default ``zcbench_home()/devca``).

    Use :meth:`load_or_create`; then :meth:`issue_leaf` per document. ``root_pem`` is what
    ``trust="dev"`` pins.
    """

    def __init__(self, folder: pathlib.Path, root: _Level, chain: list[_Level]) -> None:
        self.folder = folder
        self._root = root
        self._chain = chain

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def default_folder(cls) -> pathlib.Path:
        """``zcbench_home()/devca``: where ``trust="dev"`` looks for the root."""
        return zcbench_home() / "devca"

    @classmethod
    def load_or_create(cls, folder: pathlib.Path | None = None, *, now: dt.datetime) -> DevCA:
        """Load the CA in ``folder``, creating it (and fresh intermediates) as needed at ``now``."""
        if now.tzinfo is None:
            raise UsageError("'now' must be a timezone-aware datetime")
        folder = folder if folder is not None else cls.default_folder()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
        with cls._locked(folder):
            root = cls._load_level(folder, "root")
            if root is None:
                root = cls._create_root(folder, now)
            ca = cls(folder, root, [])
            ca._chain = ca._current_chain(now)
        return ca

    @staticmethod
    @contextlib.contextmanager
    def _locked(folder: pathlib.Path) -> Iterator[None]:
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @staticmethod
    def _load_level(folder: pathlib.Path, name: str) -> _Level | None:
        key_path, cert_path = folder / f"{name}.key", folder / f"{name}.pem"
        if not key_path.exists() or not cert_path.exists():
            return None
        _require_private(folder, folder=True)
        _require_private(key_path, folder=False)
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError as exc:
            raise EnvError(
                f"the development CA file {name} in {folder} is unreadable ({exc}); delete the "
                "folder to start a new development CA"
            ) from exc
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or (
            key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki)
        ):
            raise EnvError(
                f"{key_path} is not the private key of {cert_path}; delete the folder to start "
                "a new development CA"
            )
        return _Level(key, cert)

    @staticmethod
    def _store(folder: pathlib.Path, name: str, level: _Level) -> None:
        key_pem = level.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Key before certificate: a certificate on disk always has its key.
        write_atomically(folder / f"{name}.key", key_pem, 0o600)
        write_atomically(
            folder / f"{name}.pem", level.cert.public_bytes(serialization.Encoding.PEM), 0o644
        )

    @classmethod
    def _create_root(cls, folder: pathlib.Path, now: dt.datetime) -> _Level:
        key = ec.generate_private_key(ec.SECP384R1())
        start = _floor_second(now) - dt.timedelta(days=1)
        name = _name("zcbench-dev.nitro-enclaves")
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + _ROOT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(_ca_key_usage(instance=False), critical=True)
            .sign(key, hashes.SHA384())
        )
        level = _Level(key, cert)
        cls._store(folder, "root", level)
        return level

    def _current_chain(self, at: dt.datetime) -> list[_Level]:
        """The intermediates, reissuing from the first that does not cover a leaf at ``at``."""
        leaf_start = _floor_second(at) - _LEAF_LEAD
        leaf_end = _floor_second(at) + LEAF_LIFETIME
        root = self._root.cert
        if not root.not_valid_before_utc <= leaf_start or root.not_valid_after_utc < leaf_end:
            raise EnvError(
                f"the development CA root in {self.folder} is not valid at {at.isoformat()}; "
                "use another ZCBENCH_HOME or delete the folder to start a new development CA"
            )
        chain: list[_Level] = []
        parent = self._root
        fresh = False
        for name, lifetime, path_len in _LEVELS:
            level = None if fresh else self._load_level(self.folder, name)
            if level is not None and (
                level.cert.issuer != parent.cert.subject
                or not level.cert.not_valid_before_utc <= leaf_start
                or level.cert.not_valid_after_utc < leaf_end
            ):
                level = None
            if level is None:
                level = self._issue_intermediate(parent, name, lifetime, path_len, at)
                self._store(self.folder, name, level)
                fresh = True  # everything below must be reissued under the new issuer
            chain.append(level)
            parent = level
        return chain

    @staticmethod
    def _issue_intermediate(
        parent: _Level,
        name: str,
        lifetime: dt.timedelta,
        path_len: int,
        at: dt.datetime,
    ) -> _Level:
        key = ec.generate_private_key(ec.SECP384R1())
        start = _floor_second(at) - _BACKDATE
        end = min(start + lifetime, parent.cert.not_valid_after_utc)
        label = secrets.token_hex(8)
        cn = {
            "regional": f"{label}.local.zcbench-dev.nitro-enclaves",
            "zonal": f"{label}.zonal.local.zcbench-dev.nitro-enclaves",
            "instance": f"i-{label}.local.zcbench-dev.nitro-enclaves",
        }[name]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(parent.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
            .add_extension(_ca_key_usage(instance=name == "instance"), critical=True)
        )
        if name != "instance":  # AWS's instance certificate has no key identifiers
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
                critical=False,
            ).add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        return _Level(key, builder.sign(parent.key, hashes.SHA384()))

    # -- use -----------------------------------------------------------------------------

    @property
    def root_certificate(self) -> x509.Certificate:
        return self._root.cert

    @property
    def root_pem(self) -> pathlib.Path:
        """The root certificate file ``trust="dev"`` reads."""
        return self.folder / "root.pem"

    def cabundle(self) -> tuple[bytes, ...]:
        """``[root, regional, zonal, instance]`` as DER, root first like AWS's bundle."""
        return tuple(
            level.cert.public_bytes(serialization.Encoding.DER)
            for level in [self._root, *self._chain]
        )

    def issue_leaf(self, module_id: str, at: dt.datetime) -> IssuedLeaf:
        """A fresh P-384 leaf for a document stamped ``at``, valid ``at - 3 s .. at + 3 h``."""
        if at.tzinfo is None:
            raise UsageError("'at' must be a timezone-aware datetime")
        if not module_id or "/" in module_id:
            raise UsageError(f"unusable module_id {module_id!r}")
        start = _floor_second(at) - _LEAF_LEAD
        end = _floor_second(at) + LEAF_LIFETIME
        instance = self._chain[-1].cert
        if not instance.not_valid_before_utc <= start or instance.not_valid_after_utc < end:
            with self._locked(self.folder):
                self._chain = self._current_chain(at)
        issuer = self._chain[-1]
        key = ec.generate_private_key(ec.SECP384R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEV_ROOT_MARKER),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{module_id}.local.zcbench-dev"[:64]),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=False,
            )
            .sign(issuer.key, hashes.SHA384())
        )
        return IssuedLeaf(
            key=key,
            certificate=cert.public_bytes(serialization.Encoding.DER),
            cabundle=self.cabundle(),
        )


def export_dev_root(out: pathlib.Path) -> TrustRoot:
    """Write this home's development CA root (PEM) to ``out`` for an LP; return it.

    The LP passes the file as ``--trust FILE``; every verdict under it says SIMULATED. Only the
    public certificate is written, never a key. A regular file is written aside, fsynced and
    renamed into place; a device, a pipe or ``/dev/stdout`` is written directly
    (:func:`zcbench.durable.write_output`). Raises :class:`~zcbench.errors.EnvError` when the
    home has no development CA or ``out`` cannot be written.
    """
    pem = read_dev_root()
    root = load_trust_root("dev")
    out = pathlib.Path(out)
    try:
        write_output(out, pem, 0o644)
    except OSError as exc:
        raise EnvError(
            describe_os_error(exc, writing=True) + "; choose another --out"
        ) from exc
    return root
