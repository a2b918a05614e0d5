"""Shared pieces of the proof-service tests (no tests here).

``IndependentTlogClient`` is a tlog-tiles client written from the C2SP specs (tlog-tiles,
signed-note, tlog-checkpoint) and RFC 9162 with hashlib, base64 and pyca/cryptography only: it
imports nothing of zcbench, so a root it recomputes from served tiles is not zcbench's word.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key


def fake_boot_key(document: bytes) -> tuple[bytes, str]:
    """The log key and origin of test_auditlog_support's fake boot document."""
    doc = cbor2.loads(document)
    return doc["pk"], f"zcbench/{doc['pcr0'].hex()[:16]}/{doc['run']}"


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, the recursive definition over leaf hashes."""
    if not leaves:
        return _sha(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _sha(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:]))


def _n_path(n: int) -> str:
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n > 0:
        parts.insert(0, f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(parts)


class IndependentTlogClient:
    """Reads a tiled log through ``get(path) -> bytes``; checks a checkpoint against its tiles."""

    def __init__(self, get: Callable[[str], bytes]) -> None:
        self.get = get

    def checkpoint(self, public_key_der: bytes) -> tuple[str, int, bytes]:
        """origin, size, root of ``checkpoint`` after checking the Ed25519 note signature."""
        note = self.get("checkpoint")
        text, _, sigs = note.rpartition(b"\n\n")
        text += b"\n"
        lines = text.decode().split("\n")
        origin, size, root_b64 = lines[0], int(lines[1]), lines[2]
        key = load_der_public_key(public_key_der)
        assert isinstance(key, Ed25519PublicKey)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        key_id = _sha(origin.encode() + b"\n\x01" + raw)[:4]
        good = False
        for line in sigs.decode().splitlines():
            name, blob = line.removeprefix("\u2014 ").split(" ")
            sig = base64.b64decode(blob)
            if name == origin and sig[:4] == key_id:
                key.verify(sig[4:], text)  # raises if the log key did not sign it
                good = True
        assert good, "no signature by the log key"
        return origin, size, base64.b64decode(root_b64)

    def level0(self, size: int) -> list[bytes]:
        """Every leaf hash of the tree of ``size``, from its level-0 tiles."""
        leaves: list[bytes] = []
        for n in range((size + 255) // 256):
            width = min(256, size - 256 * n)
            path = f"tile/0/{_n_path(n)}" + ("" if width == 256 else f".p/{width}")
            data = self.get(path)
            assert len(data) == 32 * width, path
            leaves.extend(data[i : i + 32] for i in range(0, len(data), 32))
        return leaves

    def check_level1(self, size: int, leaves: list[bytes]) -> None:
        """Each level-1 hash is the tree hash of one full level-0 tile."""
        count = size // 256
        if count == 0:
            return
        for n in range((count + 255) // 256):
            width = min(256, count - 256 * n)
            path = f"tile/1/{_n_path(n)}" + ("" if width == 256 else f".p/{width}")
            data = self.get(path)
            for j in range(width):
                tile = n * 256 + j
                assert data[32 * j : 32 * j + 32] == _mth(leaves[256 * tile : 256 * tile + 256])

    def entries(self, size: int) -> list[bytes]:
        out: list[bytes] = []
        for n in range((size + 255) // 256):
            width = min(256, size - 256 * n)
            data = self.get(f"tile/entries/{_n_path(n)}" + ("" if width == 256 else f".p/{width}"))
            offset = 0
            while offset < len(data):
                length = int.from_bytes(data[offset : offset + 2], "big")
                out.append(data[offset + 2 : offset + 2 + length])
                offset += 2 + length
        return out

    def recompute_root(self, public_key_der: bytes) -> tuple[int, bytes, bytes]:
        """size, signed root, recomputed root."""
        _, size, root = self.checkpoint(public_key_der)
        leaves = self.level0(size)
        self.check_level1(size, leaves)
        return size, root, _mth(leaves)


def folder_get(folder: Path) -> Callable[[str], bytes]:
    return lambda path: (folder / path).read_bytes()


class RunningServer:
    """``zcbench.serve`` on a real uvicorn server, on a free port of 127.0.0.1, in a thread."""

    def __init__(self, config: object, *, tls: tuple[Path, Path] | None = None) -> None:
        import socket
        import threading

        from zcbench.serve.app import build_app, make_server

        self.app, self.catalog = build_app(config)  # type: ignore[arg-type]
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        cert, key = tls if tls else (None, None)
        self.server = make_server(self.app, port=self.port, tls_cert=cert, tls_key=key)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.catalog.start()
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        import time

        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.catalog.stop()
        self.app.close()
        self.sock.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with pyca/cryptography."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
            ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
