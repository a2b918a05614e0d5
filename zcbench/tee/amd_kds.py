"""AMD's Key Distribution Service (KDS): where a chip's VCEK comes from, behind one interface.

Owns :class:`KdsClient` (what :mod:`zcbench.tee.sevsnp` asks for: the VCEK of one chip at one
TCB), :class:`HttpKds` (the real client for ``https://kdsintf.amd.com``, which this machine
cannot reach and tests never call) and :class:`MemoryKds` (an in-memory store for tests and
for callers who cache VCEKs). A fetched VCEK is trusted no more than a given one: it is checked
against the pinned AMD roots like any other.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Final, Protocol

from zcbench.errors import EnvError, UsageError

__all__ = ["KDS_URL", "HttpKds", "KdsClient", "MemoryKds", "vcek_path"]

KDS_URL: Final = "https://kdsintf.amd.com"
_MAX_CERT: Final = 16 * 1024
_SPL_PARAMS: Final = (
    ("fmc", "fmcSPL"),
    ("boot_loader", "blSPL"),
    ("tee", "teeSPL"),
    ("snp", "snpSPL"),
    ("microcode", "ucodeSPL"),
)


class KdsClient(Protocol):
    """Where VCEKs come from: ``vcek(product, hwid, spl)`` returns the DER certificate.

    ``hwid`` is the report's chip_id (64 bytes; 8 for Turin); ``spl`` the reported TCB's patch
    levels by name (``boot_loader``, ``tee``, ``snp``, ``microcode`` and, for Turin, ``fmc``).
    Failures raise :class:`~zcbench.errors.EnvError`.
    """

    def vcek(self, product: str, hwid: bytes, spl: Mapping[str, int]) -> bytes: ...


def vcek_path(product: str, hwid: bytes, spl: Mapping[str, int]) -> str:
    """The KDS path and query for one VCEK (AMD KDS interface specification, ``/vcek/v1``)."""
    pairs = [(param, spl[name]) for name, param in _SPL_PARAMS if name in spl]
    query = urllib.parse.urlencode(pairs)
    return f"/vcek/v1/{urllib.parse.quote(product)}/{hwid.hex()}?{query}"


class HttpKds:
    """The real KDS over HTTPS (``urllib``, a timeout, a size bound); never used in tests."""

    def __init__(self, base_url: str = KDS_URL, *, timeout: float = 10.0) -> None:
        if not base_url.startswith("https://"):
            raise UsageError(f"the KDS URL must be https: {base_url}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def vcek(self, product: str, hwid: bytes, spl: Mapping[str, int]) -> bytes:
        url = self.base_url + vcek_path(product, hwid, spl)
        if not url.startswith("https://"):
            raise EnvError(f"the KDS URL must be https: {self.base_url}")
        # https only (checked above): no file: or custom scheme reaches urlopen.
        request = urllib.request.Request(url, headers={"Accept": "application/pkix-cert"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body: bytes = response.read(_MAX_CERT + 1)
        except urllib.error.HTTPError as exc:
            raise EnvError(
                f"AMD KDS answered {exc.code} for {url}: check the product and chip, or give "
                "the VCEK with --cert FILE (KDS rate-limits; cache VCEKs)"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise EnvError(
                f"cannot reach AMD KDS at {self.base_url}: {exc}; give the VCEK with --cert FILE"
            ) from None
        if len(body) > _MAX_CERT:
            raise EnvError(f"AMD KDS sent more than {_MAX_CERT} bytes for one certificate")
        return body


class MemoryKds:
    """VCEKs held in memory, keyed like the KDS path; records every request in ``requests``."""

    def __init__(self, certificates: Mapping[str, bytes] | None = None) -> None:
        self.certificates = dict(certificates or {})
        self.requests: list[str] = []

    def add(self, product: str, hwid: bytes, spl: Mapping[str, int], der: bytes) -> None:
        self.certificates[vcek_path(product, hwid, spl)] = der

    def vcek(self, product: str, hwid: bytes, spl: Mapping[str, int]) -> bytes:
        path = vcek_path(product, hwid, spl)
        self.requests.append(path)
        try:
            return self.certificates[path]
        except KeyError:
            raise EnvError(f"no VCEK held for {path}") from None
