"""The NSM emulator: an in-process Nitro Secure Module answering the real CBOR messages.

Owns the emulated module's state (32 PCRs of 48 bytes, locks, module id) and its answers to the
seven requests (reference §3.3, §4.2): PCRs 0..15 are locked at start, PCR4 is
``SHA384(0^48 || instance id)`` like real hardware, ExtendPCR is ``SHA384(old || data)``, locked
registers refuse change with ``ReadOnlyIndex``. Attestation documents are byte-shaped like real
ones (untagged COSE_Sign1, ES384, nine payload keys with explicit nulls, 8-byte timestamp, the
locked PCRs) in either payload framing, and signed by a fresh leaf from :class:`DevCA`: they
verify only under ``trust="dev"`` and are SIMULATED.

The emulator speaks bytes (:meth:`NsmEmulator.handle`) and is its own client through the same
:class:`~zcbench.nitro.nsm.NsmClient` code as the real device. Time and randomness come in as
``clock`` and ``rng``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from zcbench.errors import UsageError
from zcbench.nitro import _cbor
from zcbench.nitro.devca import DevCA
from zcbench.nitro.document import (
    MAX_FIELD_BYTES,
    PROTECTED_ES384,
    encode_document,
    encode_payload,
    sig_structure,
)
from zcbench.nitro.nsm import MAX_REQUEST_BYTES, NsmClient

__all__ = ["DEFAULT_MODULE_ID", "NsmEmulator", "extend", "pcr4_for"]

DEFAULT_MODULE_ID = "i-0de5000000000000d-enc0de5000000000000"
"""The emulator's module id unless given: the real shape ``i-<17 hex>-enc<16 hex>``."""

_PCR_BYTES = 48
_MAX_PCRS = 32
_BOOT_LOCKED = 16
_MAX_RANDOM = 256
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def extend(old: bytes, data: bytes) -> bytes:
    """A PCR extend: ``SHA384(old || data)``."""
    return hashlib.sha384(old + data).digest()


def pcr4_for(module_id: str) -> bytes:
    """PCR4 as the hypervisor sets it: the zero register extended by the instance id."""
    return extend(bytes(_PCR_BYTES), module_id.split("-enc", 1)[0].encode("ascii"))


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Refusal(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _sign_raw(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA384())))
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


class NsmEmulator(NsmClient):
    """An emulated NSM with its own PCRs, signing through the development CA.

    ``pcrs`` sets initial registers (e.g. PCR0/1/2 from the local image's measurement); index
    4 defaults to :func:`pcr4_for` of ``module_id``. ``ca`` defaults to the development CA in
    the zcbench home. ``clock`` returns an aware UTC datetime, ``rng(n)`` n random bytes.
    ``indefinite_payload`` writes the payload map as ``bf … ff`` like documents since mid-2025.
    """

    def __init__(
        self,
        pcrs: Mapping[int, bytes] | None = None,
        ca: DevCA | None = None,
        *,
        module_id: str = DEFAULT_MODULE_ID,
        clock: Callable[[], dt.datetime] = _utc_now,
        rng: Callable[[int], bytes] = os.urandom,
        indefinite_payload: bool = False,
    ) -> None:
        if not module_id.isascii() or not module_id:
            raise UsageError(f"module_id must be non-empty ASCII, not {module_id!r}")
        self.module_id = module_id
        self._clock = clock
        self._rng = rng
        self.indefinite_payload = indefinite_payload
        self._ca = ca
        self._pcrs = [bytes(_PCR_BYTES) for _ in range(_MAX_PCRS)]
        self._pcrs[4] = pcr4_for(module_id)
        for index, value in (pcrs or {}).items():
            if not 0 <= index < _MAX_PCRS:
                raise UsageError(f"PCR index {index} is outside 0..{_MAX_PCRS - 1}")
            if len(value) != _PCR_BYTES:
                raise UsageError(f"PCR{index} must be {_PCR_BYTES} bytes, not {len(value)}")
            self._pcrs[index] = bytes(value)
        self._locked = set(range(_BOOT_LOCKED))

    # -- the client side: the same code as the real device -------------------------------

    def exchange(self, request: bytes) -> bytes:
        return self.handle(request)

    # -- the module side -------------------------------------------------------------------

    def handle(self, request: bytes) -> bytes:
        """Answer one CBOR request with one CBOR response, as the NSM does."""
        try:
            if len(request) > MAX_REQUEST_BYTES:
                raise _Refusal("InputTooLarge")
            try:
                message = _cbor.decode(request)
            except _cbor.CborError as exc:
                raise _Refusal("InvalidArgument") from exc
            return _cbor.encode(self._dispatch(message))
        except _Refusal as refusal:
            return _cbor.encode({"Error": refusal.code})

    def _dispatch(self, message: object) -> object:
        if message == "DescribeNSM":
            return {
                "DescribeNSM": {
                    "version_major": 1,
                    "version_minor": 0,
                    "version_patch": 0,
                    "module_id": self.module_id,
                    "max_pcrs": _MAX_PCRS,
                    "locked_pcrs": sorted(self._locked),
                    "digest": "SHA384",
                }
            }
        if message == "GetRandom":
            return {"GetRandom": {"random": self._rng(_MAX_RANDOM)}}
        if not isinstance(message, dict) or len(message) != 1:
            raise _Refusal("InvalidOperation")
        ((name, body),) = message.items()
        if not isinstance(body, dict):
            raise _Refusal("InvalidArgument")
        if name == "Attestation":
            fields = self._exact(body, ("user_data", "nonce", "public_key"))
            return {"Attestation": {"document": self._document(**fields)}}
        if name == "DescribePCR":
            index = self._register(self._exact(body, ("index",))["index"])
            return {"DescribePCR": {"lock": index in self._locked, "data": self._pcrs[index]}}
        if name == "ExtendPCR":
            fields = self._exact(body, ("index", "data"))
            index = self._register(fields["index"])
            data = fields["data"]
            if not isinstance(data, bytes):
                raise _Refusal("InvalidArgument")
            if index in self._locked:
                raise _Refusal("ReadOnlyIndex")
            self._pcrs[index] = extend(self._pcrs[index], data)
            return {"ExtendPCR": {"data": self._pcrs[index]}}
        if name == "LockPCR":
            index = self._register(self._exact(body, ("index",))["index"])
            if index in self._locked:
                raise _Refusal("ReadOnlyIndex")
            self._locked.add(index)
            return "LockPCR"
        if name == "LockPCRs":
            count = self._exact(body, ("range",))["range"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise _Refusal("InvalidArgument")
            if count > _MAX_PCRS:
                raise _Refusal("InvalidIndex")
            self._locked.update(range(count))
            return "LockPCRs"
        raise _Refusal("InvalidOperation")

    @staticmethod
    def _exact(body: dict[object, object], keys: tuple[str, ...]) -> dict[str, object]:
        if sorted(map(str, body)) != sorted(keys) or not all(isinstance(k, str) for k in body):
            raise _Refusal("InvalidArgument")
        return {str(k): v for k, v in body.items()}

    @staticmethod
    def _optional(value: object) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, bytes):
            raise _Refusal("InvalidArgument")
        if len(value) > MAX_FIELD_BYTES:
            raise _Refusal("InputTooLarge")
        return value

    @staticmethod
    def _register(index: object) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            raise _Refusal("InvalidArgument")
        if not 0 <= index < _MAX_PCRS:
            raise _Refusal("InvalidIndex")
        return index

    def _document(self, *, user_data: object, nonce: object, public_key: object) -> bytes:
        user_data_b = self._optional(user_data)
        nonce_b = self._optional(nonce)
        public_key_b = self._optional(public_key)
        if public_key_b == b"":
            raise _Refusal("InvalidArgument")
        now = self._clock()
        if now.tzinfo is None:
            raise UsageError("the emulator's clock must return an aware datetime")
        now = now.astimezone(dt.UTC)
        timestamp = (now - _EPOCH) // dt.timedelta(milliseconds=1)
        ca = self._ca if self._ca is not None else DevCA.load_or_create(now=now)
        self._ca = ca
        at = _EPOCH + dt.timedelta(milliseconds=timestamp)
        leaf = ca.issue_leaf(self.module_id, at)
        payload = encode_payload(
            module_id=self.module_id,
            timestamp=timestamp,
            pcrs={i: self._pcrs[i] for i in sorted(self._locked)},
            certificate=leaf.certificate,
            cabundle=leaf.cabundle,
            public_key=public_key_b,
            user_data=user_data_b,
            nonce=nonce_b,
            indefinite=self.indefinite_payload,
        )
        signature = _sign_raw(leaf.key, sig_structure(PROTECTED_ES384, payload))
        return encode_document(payload, signature)
