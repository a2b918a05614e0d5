"""The Nitro Secure Module interface: one :class:`Nsm` protocol, a real device and its messages.

Owns the NSM request/response messages (serde externally-tagged CBOR, reference §4.2), the
client side shared by every implementation (:class:`NsmClient`: encode a request, exchange
bytes, decode and check the response), and :class:`NsmDevice`, which exchanges those bytes with
``/dev/nsm`` through the raw ioctl (reference §4.1). The emulator
(:class:`zcbench.nitro.NsmEmulator`) is the same client over an in-process module, so the rest
of zcbench never knows which one it holds. An ``{"Error": code}`` answer raises
:class:`~zcbench.nitro.NsmError` with that code.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from zcbench.errors import EnvError, UsageError
from zcbench.nitro import _cbor
from zcbench.nitro.errors import NsmError

__all__ = [
    "ERROR_CODES",
    "MAX_REQUEST_BYTES",
    "MAX_RESPONSE_BYTES",
    "NSM_IOCTL_RAW",
    "Nsm",
    "NsmClient",
    "NsmDescription",
    "NsmDevice",
    "PcrDescription",
    "encode_request",
]

NSM_IOCTL_RAW = 0xC0200A00
"""``_IOWR(0x0A, 0, struct nsm_raw)`` on 64-bit Linux (include/uapi/linux/nsm.h)."""

MAX_REQUEST_BYTES = 0x1000
MAX_RESPONSE_BYTES = 0x3000

ERROR_CODES = (
    "InvalidArgument",
    "InvalidIndex",
    "InvalidResponse",
    "ReadOnlyIndex",
    "InvalidOperation",
    "BufferTooSmall",
    "InputTooLarge",
    "InternalError",
)
"""The NSM's error names (nsm-api ``ErrorCode``)."""


@dataclass(frozen=True)
class PcrDescription:
    """One PCR register: its value and whether it is locked."""

    locked: bool
    data: bytes


@dataclass(frozen=True)
class NsmDescription:
    """What ``DescribeNSM`` reports."""

    version_major: int
    version_minor: int
    version_patch: int
    module_id: str
    max_pcrs: int
    locked_pcrs: tuple[int, ...]
    digest: str


@runtime_checkable
class Nsm(Protocol):
    """What zcbench asks of an NSM, real or emulated."""

    def attestation(
        self,
        *,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
        public_key: bytes | None = None,
    ) -> bytes: ...

    def describe_pcr(self, index: int) -> PcrDescription: ...

    def extend_pcr(self, index: int, data: bytes) -> bytes: ...

    def lock_pcr(self, index: int) -> None: ...

    def lock_pcrs(self, range_: int) -> None: ...

    def describe_nsm(self) -> NsmDescription: ...

    def get_random(self) -> bytes: ...


def encode_request(name: str, fields: dict[str, object] | None = None) -> bytes:
    """One request: a unit variant is its name as text, a struct variant ``{name: fields}``."""
    if fields is None:
        return _cbor.encode(name)
    return _cbor.encode({name: fields})


def _bad(message: str) -> NsmError:
    return NsmError(f"the NSM sent an unusable response: {message}", code="InvalidResponse")


def _fields(response: object, name: str, keys: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(response, dict) or list(response) != [name]:
        raise _bad(f"expected a {name} response, got {_summary(response)}")
    body = response[name]
    if not isinstance(body, dict) or sorted(map(str, body)) != sorted(keys):
        raise _bad(f"{name} response has fields {_summary(body)}, expected {list(keys)}")
    return {str(k): v for k, v in body.items()}


def _summary(value: object) -> str:
    if isinstance(value, dict):
        return repr(sorted(map(str, value)))
    return type(value).__name__ if not isinstance(value, str) else repr(value)


def _uint(body: dict[str, object], key: str) -> int:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(f"{key} is not an unsigned integer")
    return value


def _bytes(body: dict[str, object], key: str) -> bytes:
    value = body[key]
    if not isinstance(value, bytes):
        raise _bad(f"{key} is not a byte string")
    return value


def _optional_bytes(name: str, value: bytes | None) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, (bytes, bytearray)):
        raise UsageError(f"{name} must be bytes or None, not {type(value).__name__}")
    return bytes(value)


def _index(index: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 0xFFFF:
        raise UsageError(f"PCR index must be an integer in 0..65535, not {index!r}")
    return index


class NsmClient:
    """The client half every NSM shares: requests out, checked responses in.

    Subclasses implement :meth:`exchange` (request bytes → response bytes).
    """

    def exchange(self, request: bytes) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def _call(self, request: bytes) -> object:
        if len(request) > MAX_REQUEST_BYTES:
            raise NsmError(
                f"request of {len(request)} bytes exceeds the NSM's {MAX_REQUEST_BYTES}",
                code="InputTooLarge",
            )
        raw = self.exchange(request)
        try:
            response = _cbor.decode(raw)
        except _cbor.CborError as exc:
            # nsm-api maps an undecodable response to InternalError
            raise NsmError(
                f"the NSM response is not valid CBOR: {exc}", code="InternalError"
            ) from exc
        if isinstance(response, dict) and list(response) == ["Error"]:
            code = response["Error"]
            name = code if isinstance(code, str) else repr(code)
            raise NsmError(f"the NSM refused the request: {name}", code=name)
        return response

    def attestation(
        self,
        *,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
        public_key: bytes | None = None,
    ) -> bytes:
        """An attestation document (CBOR COSE_Sign1 bytes) binding the three optional fields."""
        request = encode_request(
            "Attestation",
            {
                "user_data": _optional_bytes("user_data", user_data),
                "nonce": _optional_bytes("nonce", nonce),
                "public_key": _optional_bytes("public_key", public_key),
            },
        )
        body = _fields(self._call(request), "Attestation", ("document",))
        return _bytes(body, "document")

    def describe_pcr(self, index: int) -> PcrDescription:
        response = self._call(encode_request("DescribePCR", {"index": _index(index)}))
        body = _fields(response, "DescribePCR", ("data", "lock"))
        lock = body["lock"]
        if not isinstance(lock, bool):
            raise _bad("lock is not a boolean")
        return PcrDescription(locked=lock, data=_bytes(body, "data"))

    def extend_pcr(self, index: int, data: bytes) -> bytes:
        """Extend PCR ``index`` with ``data``; returns the new value."""
        if not isinstance(data, (bytes, bytearray)):
            raise UsageError("data must be bytes")
        request = encode_request("ExtendPCR", {"index": _index(index), "data": bytes(data)})
        return _bytes(_fields(self._call(request), "ExtendPCR", ("data",)), "data")

    def lock_pcr(self, index: int) -> None:
        response = self._call(encode_request("LockPCR", {"index": _index(index)}))
        if response != "LockPCR":
            raise _bad(f"expected LockPCR, got {_summary(response)}")

    def lock_pcrs(self, range_: int) -> None:
        """Lock PCRs ``0 .. range_-1``."""
        response = self._call(encode_request("LockPCRs", {"range": _index(range_)}))
        if response != "LockPCRs":
            raise _bad(f"expected LockPCRs, got {_summary(response)}")

    def describe_nsm(self) -> NsmDescription:
        keys = (
            "digest",
            "locked_pcrs",
            "max_pcrs",
            "module_id",
            "version_major",
            "version_minor",
            "version_patch",
        )
        body = _fields(self._call(encode_request("DescribeNSM")), "DescribeNSM", keys)
        locked = body["locked_pcrs"]
        if not isinstance(locked, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in locked
        ):
            raise _bad("locked_pcrs is not a list of integers")
        module_id, digest = body["module_id"], body["digest"]
        if not isinstance(module_id, str) or not isinstance(digest, str):
            raise _bad("module_id and digest must be text")
        return NsmDescription(
            version_major=_uint(body, "version_major"),
            version_minor=_uint(body, "version_minor"),
            version_patch=_uint(body, "version_patch"),
            module_id=module_id,
            max_pcrs=_uint(body, "max_pcrs"),
            locked_pcrs=tuple(int(i) for i in locked),
            digest=digest,
        )

    def get_random(self) -> bytes:
        """Up to 256 random bytes from the NSM."""
        return _bytes(
            _fields(self._call(encode_request("GetRandom")), "GetRandom", ("random",)), "random"
        )


IoctlFn = Callable[[int, int, bytearray, bool], int]
"""The shape of :func:`fcntl.ioctl` as the device uses it (injectable for tests)."""


def _default_ioctl(fd: int, request: int, arg: bytearray, mutate: bool) -> int:
    import fcntl

    return int(fcntl.ioctl(fd, request, arg, mutate))


class NsmDevice(NsmClient):
    """The real NSM behind ``/dev/nsm`` (inside a Nitro enclave only).

    ``ioctl`` defaults to :func:`fcntl.ioctl`; tests inject a fake that plays the driver's part
    (read the request at ``req_addr``, write the response at ``resp_addr``, rewrite
    ``resp_len``). Close with :meth:`close` or use as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str] = "/dev/nsm", *, ioctl: IoctlFn | None = None):
        self.path = os.fspath(path)
        self._ioctl = ioctl or _default_ioctl
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise EnvError(
                f"{self.path} does not exist: this is not a Nitro enclave (or the nsm driver is "
                "not loaded); outside an enclave use NsmEmulator"
            ) from exc
        except PermissionError as exc:
            raise EnvError(f"cannot open {self.path}: permission denied (run as root)") from exc

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> NsmDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exchange(self, request: bytes) -> bytes:
        if self._fd is None:
            raise UsageError("the NSM device is closed")
        # The buffers must outlive the ioctl: the kernel reads and writes them by address.
        req_buf = ctypes.create_string_buffer(bytes(request), len(request))
        resp_buf = ctypes.create_string_buffer(MAX_RESPONSE_BYTES)
        raw = bytearray(
            struct.pack(
                "<QQQQ",
                ctypes.addressof(req_buf),
                len(request),
                ctypes.addressof(resp_buf),
                MAX_RESPONSE_BYTES,
            )
        )
        try:
            self._ioctl(self._fd, NSM_IOCTL_RAW, raw, True)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                raise NsmError("the NSM request is too large", code="InputTooLarge") from exc
            raise EnvError(f"the NSM ioctl on {self.path} failed: {exc}") from exc
        (resp_len,) = struct.unpack("<Q", bytes(raw[24:32]))
        if resp_len > MAX_RESPONSE_BYTES:
            raise NsmError(
                f"the driver reports a {resp_len}-byte response for a {MAX_RESPONSE_BYTES}-byte "
                "buffer",
                code="BufferTooSmall",
            )
        return ctypes.string_at(resp_buf, resp_len)
