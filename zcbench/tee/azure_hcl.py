"""Azure's HCL attestation report: the wrapping in which an Azure confidential VM's paravisor
(its HCL) hands out the TEE's hardware report with the runtime data it binds.

Owns the byte format, as Azure's confidential VMs write it (checked here on real reports of
confidential-containers/trustee's test data): a 32-byte header (``HCLA``, version, report size,
request type, status, reserved), the hardware report in a 0x4A0-byte slot (an SEV-SNP
ATTESTATION_REPORT, or a TDX TDREPORT, which only a TD quote signs), then the runtime data
(its size, version, report type 2 for SEV-SNP or 4 for TDX, hash type 1/2/3 for SHA-256/384/512,
the variable data's size, the variable data: JSON naming the vTPM's keys), then zero padding.
The hardware report's report data is the hash of the variable data, zero-padded to 64 bytes.

It verifies nothing cryptographic and imports no TEE module: :mod:`zcbench.tee` checks the
SEV-SNP report it carries like any other and adds :func:`binding_problem`'s verdict (check
``hcl_binding``).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from zcbench.errors import DataError

__all__ = ["HCL_MAGIC", "HclReport", "binding_problem", "parse_hcl"]

HCL_MAGIC: Final = b"HCLA"
_HEADER: Final = 32
_HW_SLOT: Final = 0x4A0
_RUNTIME_HEADER: Final = 20
_SNP, _TDX = 2, 4
_HASHES: Final = {1: hashlib.sha256, 2: hashlib.sha384, 3: hashlib.sha512}
_MAX: Final = 64 * 1024


@dataclass(frozen=True)
class HclReport:
    """One parsed HCL report: ``hw_report`` the 0x4A0-byte hardware report slot,
    ``runtime_data`` the variable data its report data hashes."""

    version: int
    report_type: int
    hash_type: int
    hw_report: bytes
    runtime_data: bytes

    @property
    def tee(self) -> str:
        return "sev-snp" if self.report_type == _SNP else "tdx"

    def runtime_digest(self) -> bytes:
        """The hash of the runtime data, zero-padded to the 64 bytes of a report data."""
        return _HASHES[self.hash_type](self.runtime_data).digest().ljust(64, b"\0")


def _refuse(message: str) -> DataError:
    return DataError(f"not an Azure HCL report this verifier knows: {message}")


def parse_hcl(data: bytes) -> HclReport:
    """Parse an HCL report strictly (sizes, types, zero padding); :class:`DataError` if not one.

    A TDX VM's HCL report is refused with what to verify instead: its TDREPORT is signed by
    no one outside the machine; the TD quote made from it is."""
    b = bytes(data)
    if len(b) > _MAX or len(b) < _HEADER + _HW_SLOT + _RUNTIME_HEADER or b[:4] != HCL_MAGIC:
        raise _refuse(f"{len(b)} bytes, starting {b[:4]!r}")
    version, report_size, _request, _status = struct.unpack("<4I", b[4:20])
    if version not in (1, 2) or any(b[20:_HEADER]):
        raise _refuse(f"header version {version} or non-zero reserved bytes")
    if not _HEADER + _HW_SLOT + _RUNTIME_HEADER <= report_size <= len(b):
        raise _refuse(f"report size {report_size} outside the {len(b)} bytes given")
    if any(b[report_size:]):
        raise _refuse("non-zero bytes after the report (only zero padding may follow it)")
    runtime = b[_HEADER + _HW_SLOT : report_size]
    size, _rt_version, report_type, hash_type, var_size = struct.unpack(
        "<5I", runtime[:_RUNTIME_HEADER]
    )
    if report_type == _TDX:
        raise DataError(
            "this is an Azure HCL report of a TDX VM: its TDREPORT is signed by no one outside "
            "the machine; verify the TD quote made from it instead (it binds the same report "
            "data)"
        )
    if report_type != _SNP or hash_type not in _HASHES:
        raise _refuse(f"report type {report_type}, hash type {hash_type}")
    if size != _RUNTIME_HEADER + var_size or size != len(runtime):
        raise _refuse(
            f"runtime data of {size} bytes ({var_size} variable) in a {len(runtime)}-byte space"
        )
    return HclReport(
        version=version,
        report_type=report_type,
        hash_type=hash_type,
        hw_report=b[_HEADER : _HEADER + _HW_SLOT],
        runtime_data=runtime[_RUNTIME_HEADER:],
    )


def binding_problem(hcl: HclReport, report_data: bytes) -> str | None:
    """Why the hardware report's ``report_data`` does not bind the runtime data, or None."""
    want = hcl.runtime_digest()
    if report_data == want:
        return None
    return (
        "the SEV-SNP report's report data is not the hash of the HCL runtime data it comes "
        f"with (expected {want.hex()}): the runtime data (the vTPM's keys) was altered or "
        "belongs to another report"
    )
