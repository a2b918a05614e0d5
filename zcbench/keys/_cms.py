"""CMS EnvelopedData for KMS ``Recipient`` answers: build (the local broker) and unwrap (enclave).

AWS KMS answers a request that carries ``Recipient`` with ``CiphertextForRecipient``: a BER CMS
EnvelopedData (RFC 5652) with one KeyTransRecipientInfo, RSAES-OAEP with SHA-256 wrapping a
content key, and the secret encrypted under AES-256-CBC (aws-nitro-enclaves-sdk-c
``include/aws/nitro_enclaves/internal/cms.h``; the layout as parsed by edgebitio/enclaver
``crypto/cms/cms.go``).

The parser here accepts exactly that shape: definite or indefinite lengths (KMS uses BER), one
recipient, the two algorithm identifiers, the encrypted content primitive or in constructed
chunks; bounded in size and depth, no trailing bytes. Every failure is one opaque
:class:`UnwrapError`: an enclave must not become a padding or format oracle for whoever sent the
envelope.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from zcbench.errors import VerificationError

__all__ = ["MAX_ENVELOPE", "UnwrapError", "unwrap_recipient", "wrap_for_recipient"]

MAX_ENVELOPE: Final = 64 * 1024
_MAX_DEPTH: Final = 12

OID_ENVELOPED_DATA: Final = "1.2.840.113549.1.7.3"
OID_DATA: Final = "1.2.840.113549.1.7.1"
OID_RSAES_OAEP: Final = "1.2.840.113549.1.1.7"
OID_MGF1: Final = "1.2.840.113549.1.1.8"
OID_SHA256: Final = "2.16.840.1.101.3.4.2.1"
OID_AES256_CBC: Final = "2.16.840.1.101.3.4.1.42"

_SEQ, _SET, _INT, _OCTETS, _OID, _NULL = 0x30, 0x31, 0x02, 0x04, 0x06, 0x05


class UnwrapError(VerificationError):
    """A recipient envelope could not be unwrapped (deliberately says nothing more)."""

    def __init__(self) -> None:
        super().__init__("recipient envelope could not be unwrapped", check="cms_unwrap")


# --- DER encoding (what the local broker sends) ------------------------------------------------


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for value in parts[2:]:
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        body += bytes(reversed(chunk))
    return _tlv(_OID, bytes(body))


def _seq(*items: bytes) -> bytes:
    return _tlv(_SEQ, b"".join(items))


def _sha256_alg() -> bytes:
    return _seq(_oid(OID_SHA256))


def _oaep_alg() -> bytes:
    params = _seq(
        _tlv(0xA0, _sha256_alg()),
        _tlv(0xA1, _seq(_oid(OID_MGF1), _sha256_alg())),
    )
    return _seq(_oid(OID_RSAES_OAEP), params)


def _oaep() -> OAEP:
    return OAEP(mgf=MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def wrap_for_recipient(
    secret: bytes,
    public_key: rsa.RSAPublicKey,
    *,
    rng: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """``secret`` as DER CMS EnvelopedData for ``public_key`` (the KMS Recipient shape).

    A fresh AES-256 content key and IV come from ``rng``; the content key is wrapped with
    RSAES-OAEP-SHA-256 and the recipient named by the SHA-1 of the key (RFC 5280 method 1).
    """
    cek, iv = rng(32), rng(16)
    if len(cek) != 32 or len(iv) != 16:
        raise ValueError("rng returned the wrong number of bytes")
    padder = padding.PKCS7(128).padder()
    padded = padder.update(secret) + padder.finalize()
    encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    content = encryptor.update(padded) + encryptor.finalize()
    wrapped = public_key.encrypt(cek, _oaep())
    spki_bits = public_key.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    ski = hashlib.sha1(spki_bits, usedforsecurity=False).digest()
    recipient = _seq(_tlv(_INT, b"\x02"), _tlv(0x80, ski), _oaep_alg(), _tlv(_OCTETS, wrapped))
    encrypted_content_info = _seq(
        _oid(OID_DATA),
        _seq(_oid(OID_AES256_CBC), _tlv(_OCTETS, iv)),
        _tlv(0x80, content),
    )
    enveloped = _seq(_tlv(_INT, b"\x02"), _tlv(_SET, recipient), encrypted_content_info)
    return _seq(_oid(OID_ENVELOPED_DATA), _tlv(0xA0, enveloped))


# --- BER parsing (what the enclave receives) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    tag: int
    value: bytes  # primitive content
    children: tuple[_Node, ...]  # constructed content


class _Fail(Exception):
    pass


def _parse(buf: bytes, pos: int, end: int, depth: int) -> tuple[_Node, int]:
    if depth > _MAX_DEPTH or pos + 2 > end:
        raise _Fail
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise _Fail  # multi-byte tags never occur in this structure
    first = buf[pos + 1]
    pos += 2
    constructed = bool(tag & 0x20)
    if first == 0x80:
        if not constructed:
            raise _Fail
        children: list[_Node] = []
        while True:
            if pos + 2 > end:
                raise _Fail
            if buf[pos] == 0 and buf[pos + 1] == 0:
                return _Node(tag, b"", tuple(children)), pos + 2
            child, pos = _parse(buf, pos, end, depth + 1)
            children.append(child)
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise _Fail
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    else:
        length = first
    if length > end - pos:
        raise _Fail
    stop = pos + length
    if not constructed:
        return _Node(tag, buf[pos:stop], ()), stop
    kids: list[_Node] = []
    while pos < stop:
        child, pos = _parse(buf, pos, stop, depth + 1)
        kids.append(child)
    return _Node(tag, b"", tuple(kids)), stop


def _decode_oid(node: _Node) -> str:
    if node.tag != _OID or not node.value:
        raise _Fail
    raw = node.value
    parts = [raw[0] // 40, raw[0] % 40] if raw[0] < 80 else [2, raw[0] - 80]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    if raw[-1] & 0x80:
        raise _Fail
    return ".".join(map(str, parts))


def _expect(node: _Node, tag: int, count: int | None = None) -> tuple[_Node, ...]:
    if node.tag != tag or (count is not None and len(node.children) != count):
        raise _Fail
    return node.children


def _octets(node: _Node, *, tag: int = _OCTETS) -> bytes:
    """Primitive content, or the joined chunks of a constructed string with that tag."""
    if node.tag == tag:
        return node.value
    if node.tag == tag | 0x20:
        return b"".join(_octets(c, tag=_OCTETS) for c in node.children)
    raise _Fail


def _small_int(node: _Node) -> int:
    if node.tag != _INT or len(node.value) != 1:
        raise _Fail
    return node.value[0]


def _check_hash_alg(node: _Node, expected: str) -> None:
    kids = _expect(node, _SEQ)
    if not 1 <= len(kids) <= 2 or _decode_oid(kids[0]) != expected:
        raise _Fail
    if len(kids) == 2 and (kids[1].tag != _NULL or kids[1].value):
        raise _Fail


def _check_oaep(node: _Node) -> None:
    kids = _expect(node, _SEQ, 2)
    if _decode_oid(kids[0]) != OID_RSAES_OAEP:
        raise _Fail
    params = _expect(kids[1], _SEQ)
    seen: set[int] = set()
    for p in params:
        if p.tag == 0xA0 and len(p.children) == 1:
            _check_hash_alg(p.children[0], OID_SHA256)
        elif p.tag == 0xA1 and len(p.children) == 1:
            mgf = _expect(p.children[0], _SEQ, 2)
            if _decode_oid(mgf[0]) != OID_MGF1:
                raise _Fail
            _check_hash_alg(mgf[1], OID_SHA256)
        else:
            raise _Fail  # pSourceFunc or anything else: only the default empty label is allowed
        if p.tag in seen:
            raise _Fail
        seen.add(p.tag)
    if seen != {0xA0, 0xA1}:
        raise _Fail  # the defaults are SHA-1, which KMS never uses


def unwrap_recipient(cms_der: bytes, rsa_private_key: rsa.RSAPrivateKey) -> bytes:
    """The secret inside a KMS ``CiphertextForRecipient`` (or the local broker's equivalent).

    Raises :class:`UnwrapError`, saying nothing about why, on any malformation or failure.
    """
    try:
        return _unwrap(cms_der, rsa_private_key)
    except Exception:
        raise UnwrapError() from None


def _unwrap(data: bytes, key: rsa.RSAPrivateKey) -> bytes:
    if not isinstance(data, bytes) or not 0 < len(data) <= MAX_ENVELOPE:
        raise _Fail
    root, end = _parse(data, 0, len(data), 0)
    if end != len(data):
        raise _Fail
    content_info = _expect(root, _SEQ, 2)
    if _decode_oid(content_info[0]) != OID_ENVELOPED_DATA:
        raise _Fail
    (enveloped_node,) = _expect(content_info[1], 0xA0, 1)
    env = _expect(enveloped_node, _SEQ, 3)  # no originatorInfo, no unprotectedAttrs
    if _small_int(env[0]) != 2:  # version 2 with a subjectKeyIdentifier recipient (RFC 5652)
        raise _Fail
    (recipient,) = _expect(env[1], _SET, 1)
    rinfo = _expect(recipient, _SEQ, 4)
    if _small_int(rinfo[0]) != 2 or rinfo[1].tag != 0x80:
        raise _Fail  # version 2 goes with a subjectKeyIdentifier rid
    _check_oaep(rinfo[2])
    wrapped = _octets(rinfo[3])
    eci = _expect(env[2], _SEQ, 3)
    if _decode_oid(eci[0]) != OID_DATA:
        raise _Fail
    alg = _expect(eci[1], _SEQ, 2)
    if _decode_oid(alg[0]) != OID_AES256_CBC:
        raise _Fail
    iv = _octets(alg[1])
    content = _octets(eci[2], tag=0x80)
    if len(iv) != 16 or not content or len(content) % 16:
        raise _Fail
    cek = key.decrypt(wrapped, _oaep())
    if len(cek) != 32:
        raise _Fail
    decryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
    padded = decryptor.update(content) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()
