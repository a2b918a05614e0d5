"""The few DER facts about a certificate that cryptography does not check (private to
zcbench.tee: SEV-SNP and DCAP certificates both go through it)."""

from __future__ import annotations

__all__ = ["outer_fields_agree"]


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """One DER element at ``pos``: (its start, its content's start, its end)."""
    if pos + 2 > len(data):
        raise ValueError("DER element truncated")
    length, start = data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 3 or start + count > len(data):
            raise ValueError("unsupported DER length")
        length, start = int.from_bytes(data[start : start + count], "big"), start + count
    if start + length > len(data):
        raise ValueError("DER element overruns its container")
    return pos, start, start + length


def outer_fields_agree(der: bytes) -> bool:
    """The unsigned parts of a certificate say what the signed part says: the signatureAlgorithm
    outside the TBS is byte for byte the one inside it (RFC 5280 4.1.1.2), and the signature
    BIT STRING has no unused bits. cryptography ignores both, so a certificate altered there
    would still verify."""
    try:
        _, body, _ = _tlv(der, 0)
        _, tbs_body, tbs_end = _tlv(der, body)
        outer = der[tbs_end : _tlv(der, tbs_end)[2]]
        pos = tbs_body
        if der[pos] == 0xA0:  # [0] version
            pos = _tlv(der, pos)[2]
        pos = _tlv(der, pos)[2]  # serialNumber
        inner = der[pos : _tlv(der, pos)[2]]
        sig_at = tbs_end + len(outer)
        _, sig_body, _ = _tlv(der, sig_at)
        unused_bits_zero = der[sig_at] == 0x03 and der[sig_body] == 0
    except (ValueError, IndexError):
        return False
    return inner == outer and unused_bits_zero
