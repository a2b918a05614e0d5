"""Launchers: nitro-cli command building and output parsing (cannot run here), and the local
enclave's process handling."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from zcbench.errors import DataError, EnvError, UsageError
from zcbench.host.launcher import (
    describe_enclaves_command,
    launch_local,
    network_isolation_available,
    parse_describe_enclaves,
    parse_run_enclave,
    run_enclave_command,
    terminate_enclave_command,
)

# Shaped like nitro-cli 1.x output (aws/aws-nitro-enclaves-cli, docs "nitro-cli run-enclave").
RUN_OUTPUT = json.dumps(
    {
        "EnclaveName": "zcbench",
        "EnclaveID": "i-0123456789abcdef0-enc0123456789abcdef",
        "ProcessID": 12345,
        "EnclaveCID": 16,
        "NumberOfCPUs": 2,
        "CPUIDs": [1, 3],
        "MemoryMiB": 2048,
    }
)
DESCRIBE_OUTPUT = json.dumps(
    [
        {
            "EnclaveName": "zcbench",
            "EnclaveID": "i-0123456789abcdef0-enc0123456789abcdef",
            "ProcessID": 12345,
            "EnclaveCID": 16,
            "NumberOfCPUs": 2,
            "CPUIDs": [1, 3],
            "MemoryMiB": 2048,
            "State": "RUNNING",
            "Flags": "NONE",
            "Measurements": {
                "HashAlgorithm": "Sha384 { ... }",
                "PCR0": "ab" * 48,
                "PCR1": "cd" * 48,
                "PCR2": "ef" * 48,
            },
        }
    ]
)


def test_run_enclave_command() -> None:
    cmd = run_enclave_command(Path("s.eif"), cpus=2, memory_mib=4096, cid=16, name="zc")
    assert cmd == [
        "nitro-cli",
        "run-enclave",
        "--eif-path",
        "s.eif",
        "--cpu-count",
        "2",
        "--memory",
        "4096",
        "--enclave-cid",
        "16",
        "--enclave-name",
        "zc",
    ]
    assert "--debug-mode" in run_enclave_command(Path("s.eif"), debug=True)
    with pytest.raises(UsageError):
        run_enclave_command(Path("s.eif"), cid=3)
    with pytest.raises(UsageError):
        run_enclave_command(Path("s.eif"), cpus=0)


def test_describe_and_terminate_commands() -> None:
    assert describe_enclaves_command() == ["nitro-cli", "describe-enclaves"]
    eid = "i-0123456789abcdef0-enc0123456789abcdef"
    assert terminate_enclave_command(eid)[-2:] == ["--enclave-id", eid]
    with pytest.raises(UsageError):
        terminate_enclave_command("; rm -rf /")


def test_parse_outputs() -> None:
    info = parse_run_enclave(RUN_OUTPUT)
    assert (info.cid, info.cpus, info.memory_mib, info.state) == (16, 2, 2048, "RUNNING")
    [desc] = parse_describe_enclaves(DESCRIBE_OUTPUT)
    assert desc.enclave_id == info.enclave_id
    assert desc.pcrs == {0: "ab" * 48, 1: "cd" * 48, 2: "ef" * 48}
    assert parse_describe_enclaves("[]") == []
    for bad in ("not json", "{}", '[{"EnclaveID": "x"}]', '{"EnclaveCID": "x"}'):
        with pytest.raises(DataError):
            parse_describe_enclaves(bad) if bad.startswith("[") else parse_run_enclave(bad)


@pytest.mark.slow
def test_local_enclave_reports_a_failed_start(tmp_path: Path) -> None:
    missing = tmp_path / "missing.py"
    enclave = launch_local(["--module", str(missing)], isolate_network=False)
    try:
        folder = enclave.socket_dir
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        with pytest.raises(EnvError, match="did not start"):
            enclave.connect(timeout=30)
    finally:
        enclave.stop(timeout=10)
    assert not folder.exists()


def test_network_isolation_probe_answers() -> None:
    assert network_isolation_available() in (True, False)


def test_launch_nitro_runs_parses_describes_and_terminates() -> None:
    from zcbench.host.launcher import launch_nitro

    calls: list[list[str]] = []

    def runner(cmd: object) -> str:
        calls.append(list(cmd))  # type: ignore[call-overload]
        if calls[-1][1] == "run-enclave":
            return RUN_OUTPUT
        if calls[-1][1] == "describe-enclaves":
            return DESCRIBE_OUTPUT
        return json.dumps({"EnclaveID": "x", "Terminated": True})

    enclave = launch_nitro(Path("s.eif"), port=5005, runner=runner)
    assert enclave.address == "vsock:16:5005"
    assert "--debug-mode" not in calls[0]
    assert enclave.alive()
    enclave.terminate()
    assert calls[-1] == ["nitro-cli", "terminate-enclave", "--enclave-id", enclave.info.enclave_id]
