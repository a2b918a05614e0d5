"""SEV-SNP launch measurements through sev-snp-measure, and the schema-2 commitment carrying
them. No OVMF build ships here: the firmware is a minimal image with the OVMF footer table
(the SEV-ES reset block) that the tool reads, built below."""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from pathlib import Path

import pytest

from zcbench.errors import DataError, UsageError
from zcbench.nitro.commitment import Commitment
from zcbench.tee import AttestationPolicy, check_evidence, decode_evidence
from zcbench.tee.snp_measure import snp_commitment, snp_launch_measurement

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
_FOOTER = "96b582de-1fb2-45f7-baea-a366c55a082d"
_RESET_BLOCK = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"


def _firmware(path: Path, fill: int = 0x90) -> Path:
    data = bytearray([fill]) * 0x4000
    reset = struct.pack("<I", 0xFFFFF000) + struct.pack("<H", 4 + 18)
    reset += uuid.UUID(_RESET_BLOCK).bytes_le
    footer = struct.pack("<H", len(reset) + 18) + uuid.UUID(_FOOTER).bytes_le
    table = reset + footer
    data[len(data) - 32 - len(table) : len(data) - 32] = table
    path.write_bytes(bytes(data))
    return path


def test_measurement_is_deterministic_and_depends_on_every_input(tmp_path: Path) -> None:
    ovmf = _firmware(tmp_path / "ovmf.fd")
    one = snp_launch_measurement(ovmf, vcpus=1, vcpu_type="EPYC-Milan")
    assert len(one) == 48
    assert snp_launch_measurement(ovmf, vcpus=1, vcpu_type="EPYC-Milan") == one
    assert snp_launch_measurement(ovmf, vcpus=2, vcpu_type="EPYC-Milan") != one
    assert snp_launch_measurement(ovmf, vcpus=1, vcpu_type="EPYC-Genoa") != one
    assert snp_launch_measurement(ovmf, vcpus=1, vcpu_type="EPYC-Milan", vmm="ec2") != one
    other = _firmware(tmp_path / "other.fd", fill=0x91)
    assert snp_launch_measurement(other, vcpus=1, vcpu_type="EPYC-Milan") != one


def test_commitment_carries_it_and_the_verifier_compares(tmp_path: Path) -> None:
    ovmf = _firmware(tmp_path / "ovmf.fd")
    commitment = snp_commitment(ovmf, vcpus=4, vcpu_type="EPYC-Milan", host_data=b"\1" * 32)
    again = Commitment.from_json(commitment.to_json())
    assert again.tee == "sev-snp"
    assert again.expected_measurement == snp_launch_measurement(
        ovmf, vcpus=4, vcpu_type="EPYC-Milan"
    )
    assert again.expected_fields == {"host_data": b"\1" * 32}
    # The real Milan report is another guest's: its measurement does not match this one.
    report = decode_evidence((TEE / "snp" / "report_milan.hex").read_bytes())
    policy = AttestationPolicy(expected_measurement=again.expected_measurement)
    verdict = check_evidence(
        report, policy, at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        certificates=[(TEE / "snp" / "vcek_milan.der").read_bytes()],
    )
    assert verdict.failed_check == "measurement"
    assert verdict.expected == again.expected_measurement.hex()


def test_bad_inputs(tmp_path: Path) -> None:
    ovmf = _firmware(tmp_path / "ovmf.fd")
    with pytest.raises(UsageError, match="does not exist"):
        snp_launch_measurement(tmp_path / "none.fd", vcpus=1, vcpu_type="EPYC-Milan")
    with pytest.raises(UsageError, match="vCPU type"):
        snp_launch_measurement(ovmf, vcpus=1, vcpu_type="Pentium")
    with pytest.raises(UsageError, match="vcpus"):
        snp_launch_measurement(ovmf, vcpus=0, vcpu_type="EPYC-Milan")
    with pytest.raises(UsageError, match="kernel"):
        snp_launch_measurement(ovmf, vcpus=1, vcpu_type="EPYC-Milan", append="console=ttyS0")
    junk = tmp_path / "junk.fd"
    junk.write_bytes(bytes(0x1000))
    with pytest.raises(DataError, match="SEV-SNP firmware"):
        snp_launch_measurement(junk, vcpus=1, vcpu_type="EPYC-Milan")
