"""An SEV-SNP launch measurement computed ahead of time, and the commitment that carries it.

Owns the step from a guest's boot artefacts (the OVMF firmware, optionally a kernel, initrd and
command line measured through OVMF's hash table, the vCPU count and type, the VMM) to the
48-byte ``MEASUREMENT`` an SEV-SNP report of that guest carries, through ``sev-snp-measure``
(the lock's ``sev-snp-measure``, the AMD launch-digest algorithm as the VMMs implement it), and
to a schema-2 :class:`~zcbench.nitro.commitment.Commitment` naming it. It verifies nothing:
:mod:`zcbench.tee.sevsnp` compares a report against the commitment.

Errors: a missing file is a :class:`~zcbench.errors.UsageError`; firmware the tool cannot read
(no OVMF footer table, no SEV-ES reset block) a :class:`~zcbench.errors.DataError`.
"""

from __future__ import annotations

import os
from typing import Final, Literal

from sevsnpmeasure import guest, vcpu_types, vmm_types  # type: ignore[import-untyped]

from zcbench.errors import DataError, UsageError
from zcbench.nitro.commitment import Commitment

__all__ = ["VCPU_TYPES", "Vmm", "snp_commitment", "snp_launch_measurement"]

VCPU_TYPES: Final = tuple(sorted(vcpu_types.CPU_SIGS))
"""The vCPU type names ``sev-snp-measure`` knows (QEMU's ``-cpu`` names: EPYC-Milan, ...)."""

Vmm = Literal["qemu", "ec2", "gce"]
_VMM = {"qemu": vmm_types.VMMType.QEMU, "ec2": vmm_types.VMMType.ec2, "gce": vmm_types.VMMType.gce}


def _file(path: str | os.PathLike[str] | None, what: str) -> str:
    if path is None:
        return ""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise UsageError(f"{what} {name} does not exist or is not a file")
    return name


def snp_launch_measurement(
    ovmf: str | os.PathLike[str],
    *,
    vcpus: int,
    vcpu_type: str,
    kernel: str | os.PathLike[str] | None = None,
    initrd: str | os.PathLike[str] | None = None,
    append: str | None = None,
    guest_features: int = 0x1,
    vmm: Vmm = "qemu",
) -> bytes:
    """The 48-byte launch measurement of an SEV-SNP guest booted from these artefacts."""
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or not 1 <= vcpus <= 512:
        raise UsageError("vcpus must be an integer 1..512")
    if vcpu_type not in vcpu_types.CPU_SIGS:
        raise UsageError(f"unknown vCPU type {vcpu_type!r}; one of {', '.join(VCPU_TYPES)}")
    if vmm not in _VMM:
        raise UsageError(f"unknown VMM {vmm!r}; one of {', '.join(_VMM)}")
    if (initrd is not None or append is not None) and kernel is None:
        raise UsageError("an initrd or a command line is measured only with a kernel")
    firmware = _file(ovmf, "OVMF firmware")
    try:
        digest = guest.snp_calc_launch_digest(
            vcpus,
            vcpu_types.CPU_SIGS[vcpu_type],
            firmware,
            _file(kernel, "kernel"),
            _file(initrd, "initrd"),
            append or "",
            guest_features,
            "",
            _VMM[vmm],
        )
    except (RuntimeError, ValueError, KeyError) as exc:
        raise DataError(f"cannot measure {firmware} as SEV-SNP firmware: {exc}") from None
    if not isinstance(digest, bytes) or len(digest) != 48:
        raise DataError("sev-snp-measure returned no 48-byte launch digest")
    return digest


def snp_commitment(
    ovmf: str | os.PathLike[str],
    *,
    vcpus: int,
    vcpu_type: str,
    kernel: str | os.PathLike[str] | None = None,
    initrd: str | os.PathLike[str] | None = None,
    append: str | None = None,
    guest_features: int = 0x1,
    vmm: Vmm = "qemu",
    host_data: bytes | None = None,
    image: str | None = None,
) -> Commitment:
    """A schema-2 commitment to the guest these artefacts boot (``host_data`` committed too
    when the VMM sets it)."""
    measurements = {
        "measurement": snp_launch_measurement(
            ovmf,
            vcpus=vcpus,
            vcpu_type=vcpu_type,
            kernel=kernel,
            initrd=initrd,
            append=append,
            guest_features=guest_features,
            vmm=vmm,
        )
    }
    if host_data is not None:
        if not isinstance(host_data, bytes) or len(host_data) != 32:
            raise UsageError("host_data is 32 bytes")
        measurements["host_data"] = host_data
    return Commitment(
        pcrs={},
        tee="sev-snp",
        measurements=measurements,
        image=image,
        measurement="sev-snp launch digest (sev-snp-measure, "
        f"{vmm}, {vcpus} x {vcpu_type}, guest features 0x{guest_features:x})",
    )
