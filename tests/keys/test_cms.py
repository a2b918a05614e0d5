"""CMS EnvelopedData (KMS CiphertextForRecipient): round trips, OpenSSL interop, corruptions."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.keys import UnwrapError, unwrap_recipient, wrap_for_recipient
from zcbench.keys._cms import MAX_ENVELOPE


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


SECRET = bytes(range(32))


def test_round_trip_and_fresh_randomness(key: rsa.RSAPrivateKey) -> None:
    a = wrap_for_recipient(SECRET, key.public_key())
    b = wrap_for_recipient(SECRET, key.public_key())
    assert a != b
    assert unwrap_recipient(a, key) == SECRET == unwrap_recipient(b, key)


def test_rng_is_a_parameter(key: rsa.RSAPrivateKey) -> None:
    calls: list[int] = []

    def rng(n: int) -> bytes:
        calls.append(n)
        return b"\x07" * n

    env = wrap_for_recipient(SECRET, key.public_key(), rng=rng)
    assert calls == [32, 16]
    assert b"\x07" * 16 in env  # the IV
    assert unwrap_recipient(env, key) == SECRET


def test_wrong_key_is_opaque(key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    env = wrap_for_recipient(SECRET, key.public_key())
    with pytest.raises(UnwrapError) as info:
        unwrap_recipient(env, other)
    assert str(info.value) == "recipient envelope could not be unwrapped"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30\x00",
        b"\x30\x80\x00\x00",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x00" * 10,
        b"\x30" * (MAX_ENVELOPE + 1),
    ],
)
def test_garbage_refused(key: rsa.RSAPrivateKey, data: bytes) -> None:
    with pytest.raises(UnwrapError):
        unwrap_recipient(data, key)


def test_trailing_bytes_and_truncation(key: rsa.RSAPrivateKey) -> None:
    env = wrap_for_recipient(SECRET, key.public_key())
    for bad in (env + b"\x00", env[:-1], env[:10]):
        with pytest.raises(UnwrapError):
            unwrap_recipient(bad, key)


def test_algorithm_swaps_refused(key: rsa.RSAPrivateKey) -> None:
    env = wrap_for_recipient(SECRET, key.public_key())
    swaps = [
        (
            bytes.fromhex("060960864801650304012a"),
            bytes.fromhex("0609608648016503040102"),
        ),  # aes-256-cbc -> aes-128-cbc
        (
            bytes.fromhex("06092a864886f70d010107"),
            bytes.fromhex("06092a864886f70d010101"),
        ),  # OAEP -> rsaEncryption
        (
            bytes.fromhex("0609608648016503040201"),
            bytes.fromhex("0609608648016503040203"),
        ),  # sha256 -> sha512
        (
            bytes.fromhex("06092a864886f70d010703"),
            bytes.fromhex("06092a864886f70d010702"),
        ),  # enveloped -> signed
    ]
    for old, new in swaps:
        assert old in env
        with pytest.raises(UnwrapError):
            unwrap_recipient(env.replace(old, new, 1), key)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_bit_flips_never_yield_a_different_secret(
    key: rsa.RSAPrivateKey, data: st.DataObject
) -> None:
    env = wrap_for_recipient(SECRET, key.public_key(), rng=lambda n: b"\x05" * n)
    bit = data.draw(st.integers(0, len(env) * 8 - 1))
    flipped = bytearray(env)
    flipped[bit // 8] ^= 1 << (bit % 8)
    try:
        out = unwrap_recipient(bytes(flipped), key)
    except UnwrapError:
        return
    # CBC has no MAC: a flip in the IV or content may still unpad, but never to the secret
    # (such a key then fails the sealed payload's GCM-SIV tag). Only the recipient identifier,
    # which names the key and is not needed to decrypt, may change without effect.
    pub = key.public_key().public_bytes(Encoding.DER, PublicFormat.PKCS1)
    rid = hashlib.sha1(pub, usedforsecurity=False).digest()
    start = env.index(rid)
    assert out != SECRET or start <= bit // 8 < start + len(rid)


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def _openssl_files(tmp_path: Path, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    key_pem = tmp_path / "k.pem"
    key_pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    cert = tmp_path / "c.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-new",
            "-key",
            str(key_pem),
            "-out",
            str(cert),
            "-subj",
            "/CN=recipient",
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    return key_pem, cert


@needs_openssl
@pytest.mark.parametrize("stream", [False, True])
def test_openssl_envelopes_unwrap(tmp_path: Path, key: rsa.RSAPrivateKey, stream: bool) -> None:
    """OpenSSL cms -encrypt, OAEP-SHA256 + AES-256-CBC; -stream gives BER indefinite lengths."""
    _key_pem, cert = _openssl_files(tmp_path, key)
    (tmp_path / "secret").write_bytes(SECRET)
    out = tmp_path / "env.der"
    subprocess.run(
        [
            "openssl",
            "cms",
            "-encrypt",
            "-binary",
            *(["-stream"] if stream else []),
            "-in",
            str(tmp_path / "secret"),
            "-outform",
            "DER",
            "-out",
            str(out),
            "-aes256",
            "-keyid",
            "-recip",
            str(cert),
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-keyopt",
            "rsa_mgf1_md:sha256",
        ],
        check=True,
        capture_output=True,
    )
    data = out.read_bytes()
    if stream:
        assert data[:2] == b"\x30\x80"  # indefinite length, as KMS's BER output may be
    assert unwrap_recipient(data, key) == SECRET


@needs_openssl
def test_openssl_decrypts_our_envelopes(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    key_pem, _cert = _openssl_files(tmp_path, key)
    env = tmp_path / "env.der"
    env.write_bytes(wrap_for_recipient(SECRET, key.public_key()))
    done = subprocess.run(
        [
            "openssl",
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(env),
            "-inkey",
            str(key_pem),
        ],
        check=True,
        capture_output=True,
    )
    assert done.stdout == SECRET
