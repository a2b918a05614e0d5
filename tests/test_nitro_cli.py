"""``zcbench verify attestation`` and ``zcbench nitro emulate``: exit codes, JSON, warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zcbench.cli import main

DOC1_PCR0 = (
    "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28"
    "d9d5599936332687e6f66fc890ac8cf150142d8b"
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _json(out: str) -> dict[str, object]:
    lines = out.strip().splitlines()
    assert len(lines) == 1  # one JSON object on stdout, nothing else
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_real_documents_at_their_own_time(
    capsys: pytest.CaptureFixture[str], nitro_vectors: Path, n: int
) -> None:
    sidecar = json.loads((nitro_vectors / f"doc_{n}.json").read_text())["facts"]
    path = str(nitro_vectors / f"doc_{n}.cbor")
    stated = (sidecar["pcrs_stated_by_source"] or {}).get("values", {})
    expect = [f"--expect-pcr={i}={v}" for i, v in stated.items()]
    debug = ["--allow-debug"] if sidecar["debug_mode_pcr0_1_2_zero"] else []
    code, out, err = _run(
        capsys, "verify", "attestation", path, "--at", "doc", *expect, *debug, "--json"
    )
    assert code == 0, out
    report = _json(out)
    assert report["verified"] is True
    assert report["failed_check"] is None
    assert report["root"] == "aws"
    assert report["simulated"] is False
    assert report["debug"] is sidecar["debug_mode_pcr0_1_2_zero"]
    assert report["timestamp"] == sidecar["timestamp_utc"]
    assert report["module_id"]
    pcrs = report["pcrs"]
    assert isinstance(pcrs, dict)
    for index, value in stated.items():
        assert pcrs[index] == value
    assert report["pcrs_checked"] is bool(stated)
    if not stated:
        assert "no PCR was checked" in err
    if debug:
        assert "debug" in err
        code, out, _ = _run(capsys, "verify", "attestation", path, "--at", "doc", *expect, "--json")
        assert code == 1
        assert _json(out)["failed_check"] == "debug"


def test_four_hours_later_fails_with_validity(
    capsys: pytest.CaptureFixture[str], nitro_vectors: Path
) -> None:
    path = str(nitro_vectors / "doc_1.cbor")
    code, out, _ = _run(
        capsys, "verify", "attestation", path, "--at", "2022-10-13T12:58:02.136Z",
        "--expect-pcr", f"0={DOC1_PCR0}", "--json",
    )  # fmt: skip
    assert code == 1
    report = _json(out)
    assert report["verified"] is False
    assert report["failed_check"] == "validity"
    assert report["module_id"] == "i-020b6af9246d90e92-enc0183d09086c24190"


def test_human_output_names_the_failed_check(
    capsys: pytest.CaptureFixture[str], nitro_vectors: Path
) -> None:
    path = str(nitro_vectors / "doc_1.cbor")
    wrong = "ab" * 48
    code, out, _ = _run(
        capsys, "verify", "attestation", path, "--at", "doc", "--expect-pcr", f"0={wrong}"
    )
    assert code == 1
    assert out.startswith("FAILED: pcr0:")
    assert "expected: " + wrong in out
    assert f"actual:   {DOC1_PCR0}" in out


def test_a_pcr_of_the_wrong_length_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], nitro_vectors: Path
) -> None:
    path = str(nitro_vectors / "doc_1.cbor")
    code, _, err = _run(
        capsys, "verify", "attestation", path, "--at", "doc", "--expect-pcr", "0=00"
    )
    assert code == 2
    assert "48 or 64 bytes" in err


def test_wrong_nonce_and_max_age(capsys: pytest.CaptureFixture[str], nitro_vectors: Path) -> None:
    path = str(nitro_vectors / "doc_1.cbor")
    base = [
        "verify",
        "attestation",
        path,
        "--at",
        "doc",
        "--expect-pcr",
        f"0={DOC1_PCR0}",
        "--json",
    ]
    code, out, _ = _run(capsys, *base, "--nonce", "00ff")
    assert (code, _json(out)["failed_check"]) == (1, "nonce")
    code, out, _ = _run(
        capsys, "verify", "attestation", path, "--at", "2022-10-13T09:08:02Z",
        "--expect-pcr", f"0={DOC1_PCR0}", "--max-age", "60", "--json",
    )  # fmt: skip
    assert (code, _json(out)["failed_check"]) == (1, "max_age")


def test_commitment_file(
    capsys: pytest.CaptureFixture[str], nitro_vectors: Path, tmp_path: Path
) -> None:
    commitment = tmp_path / "commitment.json"
    commitment.write_text(json.dumps({"schema": "zcbench.commitment/1", "pcrs": {"0": DOC1_PCR0}}))
    path = str(nitro_vectors / "doc_1.cbor")
    code, out, err = _run(
        capsys,
        "verify",
        "attestation",
        path,
        "--at",
        "doc",
        "--commitment",
        str(commitment),
        "--json",
    )
    assert code == 0
    assert _json(out)["checked_pcrs"] == [0]
    assert "no PCR" not in err
    commitment.write_text(json.dumps({"schema": "zcbench.commitment/1", "pcrs": {"0": "11" * 48}}))
    code, out, _ = _run(
        capsys,
        "verify",
        "attestation",
        path,
        "--at",
        "doc",
        "--commitment",
        str(commitment),
        "--json",
    )
    assert (code, _json(out)["failed_check"]) == (1, "pcr0")


def test_emulate_then_verify_under_dev_and_aws(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_path = tmp_path / "doc.cbor"
    code, out, err = _run(
        capsys, "nitro", "emulate", "--nonce", "c0ffee", "--out", str(out_path), "--json"
    )
    assert code == 0
    assert "SIMULATED" in err
    emitted = _json(out)
    assert emitted["simulated"] is True
    pcrs = emitted["pcrs"]
    assert isinstance(pcrs, dict)
    pcr0 = pcrs["0"]

    argv = [
        "verify",
        "attestation",
        str(out_path),
        "--expect-pcr",
        f"0={pcr0}",
        "--nonce",
        "c0ffee",
    ]
    code, out, err = _run(capsys, *argv, "--trust", "dev", "--json")
    assert code == 0
    report = _json(out)
    assert report["verified"] is True
    assert report["root"] == "dev"
    assert report["simulated"] is True
    assert "SIMULATED" in err

    code, out, _ = _run(capsys, *argv, "--json")  # default trust: aws
    assert code == 1
    assert _json(out)["failed_check"] == "root"

    code, out, _ = _run(capsys, *argv, "--trust", "dev")
    assert code == 0
    assert out.startswith("VERIFIED (SIMULATED)")


def test_emulate_indefinite_with_pcrs_and_fields(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "key.der"
    key.write_bytes(b"\x30\x2a" + bytes(42))
    out_path = tmp_path / "doc.cbor"
    code, _, _ = _run(
        capsys, "nitro", "emulate", "--nonce", "01", "--out", str(out_path), "--indefinite",
        "--pcr", "0=" + "ab" * 48, "--user-data", "beef", "--public-key", str(key),
    )  # fmt: skip
    assert code == 0
    code, out, _ = _run(
        capsys, "verify", "attestation", str(out_path), "--trust", "dev", "--at", "doc",
        "--expect-pcr", "0=" + "ab" * 48, "--json",
    )  # fmt: skip
    assert code == 0
    report = _json(out)
    assert report["payload_framing"] == "indefinite"
    assert report["user_data"] == "beef"
    assert report["public_key"] == (b"\x30\x2a" + bytes(42)).hex()


def test_pem_file_trust(capsys: pytest.CaptureFixture[str], nitro_vectors: Path) -> None:
    path = str(nitro_vectors / "doc_1.cbor")
    root = str(nitro_vectors / "aws_nitro_root_g1.pem")
    code, out, _ = _run(
        capsys, "verify", "attestation", path, "--at", "doc", "--trust", root,
        "--expect-pcr", f"0={DOC1_PCR0}", "--json",
    )  # fmt: skip
    assert code == 0
    assert _json(out)["root"] == "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"


def test_malformed_document_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.cbor"
    bad.write_bytes(b"\x84\x01")
    code, out, _ = _run(capsys, "verify", "attestation", str(bad), "--at", "doc", "--json")
    assert code == 1
    report = _json(out)
    assert report["failed_check"] == "decode"
    assert report["module_id"] is None


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "attestation", "{doc}", "--at", "yesterday"],
        ["verify", "attestation", "{doc}", "--at", "2024-01-01T00:00:00"],
        ["verify", "attestation", "{doc}", "--nonce", "xyz"],
        ["verify", "attestation", "{doc}", "--expect-pcr", "0"],
        ["verify", "attestation", "{doc}", "--expect-pcr", "40=00"],
        ["verify", "attestation", "{doc}", "--expect-pcr", "0=00", "--expect-pcr", "0=11"],
        ["verify", "attestation", "{doc}", "--trust", "azure"],
        ["verify", "attestation", "{doc}", "--max-age", "-5"],
        ["verify", "attestation", "{doc}", "--max-age", "soon"],
        ["verify", "attestation", "{doc}", "--max-age", "inf"],
        ["verify", "attestation", "/no/such/file.cbor"],
        ["verify", "attestation"],
        ["nitro", "emulate", "--out", "x.cbor"],
        ["nitro", "emulate", "--nonce", "zz", "--out", "{tmp}/x.cbor"],
        ["nitro", "emulate", "--nonce", "00", "--out", "{tmp}/x.cbor", "--pcr", "0=00"],
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], nitro_vectors: Path, tmp_path: Path, argv: list[str]
) -> None:
    doc = str(nitro_vectors / "doc_1.cbor")
    filled = [a.replace("{doc}", doc).replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = _run(capsys, *filled)
    assert code == 2, err


def test_default_time_is_now(capsys: pytest.CaptureFixture[str], nitro_vectors: Path) -> None:
    # A 2022 document's three-hour leaf has long expired: archived documents need --at doc.
    path = str(nitro_vectors / "doc_1.cbor")
    code, out, _ = _run(capsys, "verify", "attestation", path, "--expect-pcr", f"0={DOC1_PCR0}")
    assert code == 1
    assert out.startswith("FAILED: validity:")
    assert "--at doc" in out


def test_dev_trust_without_a_dev_ca_exits_3(
    capsys: pytest.CaptureFixture[str], nitro_vectors: Path
) -> None:
    path = str(nitro_vectors / "doc_1.cbor")
    code, _, err = _run(capsys, "verify", "attestation", path, "--trust", "dev", "--at", "doc")
    assert code == 3
    assert "zcbench nitro emulate" in err
