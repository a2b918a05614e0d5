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
    # The pinned AWS root passed as a file is the AWS root: what the verdict rests on travels
    # with the root, not with how it was named.
    result = _json(out)
    assert result["root"] == "aws"
    assert result["trust_root"] == {
        "kind": "aws",
        "sha256": "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b",
        "description": "AWS Nitro Enclaves Root-G1",
    }


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
    # An LP cannot make the fund's CA: the message says to ask the fund for its root.
    assert "ask the fund" in err
    assert "zcbench nitro export-root" in err
    assert "zcbench nitro emulate" not in err
    assert len(err.strip().splitlines()) == 1
    assert "--trust dev-root.pem" in err
    assert "trust=" not in err
    assert "Path(" not in err


# -- PCR indexes, --at doc with --max-age ------------------------------------------------------

HEX96 = "ab" * 48


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "attestation", "{doc}", "--at", "doc", "--expect-pcr", f"\u00b2={HEX96}"],
        ["verify", "attestation", "{doc}", "--at", "doc", "--expect-pcr", f"\u0660={DOC1_PCR0}"],
        ["verify", "attestation", "{doc}", "--at", "doc", "--expect-pcr", f"\uff10={DOC1_PCR0}"],
        ["verify", "attestation", "{doc}", "--at", "doc", "--expect-pcr", f"+0={DOC1_PCR0}"],
        ["verify", "attestation", "{doc}", "--at", "doc", "--expect-pcr", f"00={DOC1_PCR0}"],
        ["nitro", "emulate", "--nonce", "00", "--out", "{tmp}/x.cbor", "--pcr", f"\u00b2={HEX96}"],
        ["nitro", "emulate", "--nonce", "00", "--out", "{tmp}/x.cbor", "--pcr", f"\u0663={HEX96}"],
        ["verify", "attestation", "{doc}", "--at", "doc", "--max-age", "5",
         "--expect-pcr", f"0={DOC1_PCR0}"],
        ["verify", "attestation", "{doc}", "--at", "doc", "--max-age", "0",
         "--expect-pcr", f"0={DOC1_PCR0}"],
    ],
)  # fmt: skip
def test_unusable_arguments_are_one_line_usage_errors(
    capsys: pytest.CaptureFixture[str], nitro_vectors: Path, tmp_path: Path, argv: list[str]
) -> None:
    # A PCR index is ASCII digits only ("²" crashed, Arabic-Indic "٠" was read as PCR 0), and
    # --max-age cannot fail at the document's own time.
    doc = str(nitro_vectors / "doc_1.cbor")
    filled = [a.replace("{doc}", doc).replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = _run(capsys, *filled)
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "Error:" not in err
    assert lines[0].startswith("zcbench: ")


# -- what a verdict rests on -------------------------------------------------------------------


def test_an_lp_verifies_the_funds_exported_dev_root_as_simulated(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fund, lp = tmp_path / "fund-home", tmp_path / "lp-home"
    monkeypatch.setenv("ZCBENCH_HOME", str(fund))
    doc = tmp_path / "doc.cbor"
    assert _run(capsys, "nitro", "emulate", "--nonce", "0a0b", "--out", str(doc))[0] == 0
    root_file = tmp_path / "handed-over" / "dev-root.pem"
    root_file.parent.mkdir()
    code, out, err = _run(capsys, "nitro", "export-root", "--out", str(root_file), "--json")
    assert code == 0, err
    exported = _json(out)
    assert exported["kind"] == "dev"
    assert "SIMULATED" in err
    assert root_file.read_bytes() == (fund / "devca" / "root.pem").read_bytes()

    # The LP's home has no development CA: only the file the fund handed over.
    monkeypatch.setenv("ZCBENCH_HOME", str(lp))
    code, _, err = _run(capsys, "verify", "attestation", str(doc), "--trust", "dev")
    assert code == 3
    assert "ask the fund" in err
    code, out, err = _run(capsys, "verify", "attestation", str(doc), "--trust", str(root_file))
    assert code == 0, out + err
    assert out.startswith("VERIFIED (SIMULATED)\n")
    assert f"root:      SIMULATED: zcbench development CA (root {exported['sha256']})" in out
    assert err.startswith("SIMULATED:")
    code, out, _ = _run(capsys, "verify", "attestation", str(doc), "--trust", str(root_file),
                        "--json")  # fmt: skip
    result = _json(out)
    assert result["simulated"] is True
    assert result["root"] == "dev"
    assert result["trust_root"] == {
        "kind": "dev",
        "sha256": exported["sha256"],
        "description": exported["description"],
    }


def test_export_root_without_a_dev_ca_and_into_a_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zcbench_home: Path
) -> None:
    code, _, err = _run(capsys, "nitro", "export-root", "--out", str(tmp_path / "r.pem"))
    assert code == 3
    assert len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "nitro", "export-root", "--out", str(tmp_path))
    assert code == 2


def test_any_other_pem_root_is_a_custom_root_by_fingerprint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    import zcbench.nitro.devca as devca
    from zcbench.nitro import DevCA, NsmEmulator, load_trust_root

    # A CA of someone else's making: the development CA's code without its marker.
    monkeypatch.setattr(devca, "DEV_ROOT_MARKER", "acme-enclaves")
    now = dt.datetime.now(dt.UTC)
    ca = DevCA.load_or_create(tmp_path / "acme", now=now)
    pcrs = {i: bytes([0x40 + i]) * 48 for i in (0, 1, 2)}
    doc = tmp_path / "acme.cbor"
    doc.write_bytes(NsmEmulator(pcrs, ca, clock=lambda: now).attestation(nonce=b"n"))
    fingerprint = load_trust_root(ca.root_pem).fingerprint
    code, out, err = _run(capsys, "verify", "attestation", str(doc), "--trust", str(ca.root_pem),
                          "--expect-pcr", f"0={pcrs[0].hex()}")  # fmt: skip
    assert code == 0, out + err
    assert out.startswith(f"VERIFIED (custom root {fingerprint})\n")
    assert f"CUSTOM ROOT: checked against the root certificate {fingerprint}" in err
    assert "SIMULATED" not in out + err
    code, out, _ = _run(capsys, "verify", "attestation", str(doc), "--trust", str(ca.root_pem),
                        "--expect-pcr", f"0={pcrs[0].hex()}", "--json")  # fmt: skip
    result = _json(out)
    assert result["simulated"] is False
    assert result["trust_root"] == {
        "kind": "custom", "sha256": fingerprint, "description": f"custom root {fingerprint}"
    }  # fmt: skip


# -- the checkpoint in user_data against the run's log -----------------------------------------


def _run_with_lp_document(
    tmp_path: Path, name: str, *, with_checkpoint: bool = True, ca_folder: Path | None = None
) -> tuple[Path, Path, bytes]:
    """A run folder (real emulated boot document, six batches) and an LP document asked of its
    enclave at the end: the LP's nonce, the log key, the latest checkpoint in user_data."""
    import datetime as dt

    import cbor2
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from zcbench.auditlog.checkpoint import LogSigner, log_origin
    from zcbench.auditlog.writer import EnclaveLogState, HostLogWriter
    from zcbench.nitro import DevCA, NsmEmulator

    now = dt.datetime.now(dt.UTC)
    pcr0 = bytes.fromhex("cd" * 48)
    emulator = NsmEmulator({0: pcr0, 1: b"\x01" * 48, 2: b"\x02" * 48},
                           DevCA.load_or_create(ca_folder, now=now), clock=lambda: now)  # fmt: skip
    signer = LogSigner(Ed25519PrivateKey.generate(), log_origin(pcr0, name))
    boot = emulator.attestation(nonce=name.encode(), public_key=signer.public_key_spki_der)
    run = tmp_path / name
    run.mkdir()
    (run / "boot.cbor").write_bytes(boot)
    enclave = EnclaveLogState(signer)
    writer = HostLogWriter.create(run / "log", signer.public_key_spki_der, signer.origin)
    writer.commit(enclave.boot(boot, time_ns=1))
    note = b""
    for seq in range(6):
        step = enclave.batch(seq, cbor2.dumps([seq]), cbor2.dumps([]), time_ns=seq + 2,
                             event_time_ns=seq + 1)  # fmt: skip
        writer.commit(step)
        note = step.checkpoint
    writer.close()
    user_data = cbor2.dumps({"checkpoint": note}) if with_checkpoint else None
    lp = emulator.attestation(nonce=b"lp-nonce", user_data=user_data,
                              public_key=signer.public_key_spki_der)  # fmt: skip
    path = tmp_path / f"{name}-lp.cbor"
    path.write_bytes(lp)
    return run, path, pcr0


def test_log_binding_of_an_lp_document(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zcbench_home: Path
) -> None:
    run, doc, pcr0 = _run_with_lp_document(tmp_path, "run-a")
    other, _, _ = _run_with_lp_document(tmp_path, "run-b")
    bare_run, bare, _ = _run_with_lp_document(tmp_path, "run-c", with_checkpoint=False)
    base = ["verify", "attestation", "--trust", "dev", "--nonce", b"lp-nonce".hex(),
            "--expect-pcr", f"0={pcr0.hex()}", "--json"]  # fmt: skip

    code, out, err = _run(capsys, *base, str(doc), "--log", str(run))
    assert code == 0, out + err
    binding = _json(out)["log_binding"]
    assert isinstance(binding, dict)
    assert binding["bound"] is True
    assert binding["log_checked"] is True
    assert binding["size"] == 13
    assert binding["origin"] == "zcbench/cdcdcdcdcdcdcdcd/run-a"

    # Another run's log does not hold this checkpoint.
    code, out, _ = _run(capsys, *base, str(doc), "--log", str(other))
    result = _json(out)
    assert code == 1
    assert result["verified"] is False
    assert result["failed_check"] == "log_binding"
    # A document without a checkpoint cannot be bound to a log.
    code, out, _ = _run(capsys, *base, str(bare), "--log", str(bare_run))
    assert code == 1
    assert _json(out)["failed_check"] == "log_binding"
    # Without --log the document alone still verifies; the human output names the binding.
    assert _run(capsys, *base, str(doc))[0] == 0
    code, out, _ = _run(capsys, *base[:-1], str(doc), "--log", str(run))
    assert code == 0
    assert "log:       zcbench/cdcdcdcdcdcdcdcd/run-a, 13 records, bound in" in out
    code, out, _ = _run(capsys, *base[:-1], str(doc), "--log", str(other))
    assert code == 1
    assert out.startswith("FAILED: log_binding:")
    assert _run(capsys, *base, str(doc), "--log", str(tmp_path / "nope"))[0] == 2


def test_log_verify_under_an_exported_dev_root_says_simulated(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zcbench_home: Path
) -> None:
    run, _, _ = _run_with_lp_document(tmp_path, "run-x")
    pem = tmp_path / "dev-root.pem"
    assert _run(capsys, "nitro", "export-root", "--out", str(pem))[0] == 0
    code, out, err = _run(capsys, "log", "verify", str(run), "--trust", str(pem))
    assert code == 0, out + err
    assert "SIMULATED" in out
    code, out, _ = _run(capsys, "log", "verify", str(run), "--trust", str(pem), "--json")
    assert _json(out)["simulated"] is True


def test_log_verify_under_a_custom_root_names_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zcbench_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import zcbench.nitro.devca as devca
    from zcbench.nitro import load_trust_root

    monkeypatch.setattr(devca, "DEV_ROOT_MARKER", "acme-enclaves")
    run, _, _ = _run_with_lp_document(tmp_path, "run-acme", ca_folder=tmp_path / "acme")
    pem = tmp_path / "acme" / "root.pem"
    fingerprint = load_trust_root(pem).fingerprint
    code, out, err = _run(capsys, "log", "verify", str(run), "--trust", str(pem))
    assert code == 0, out + err
    assert f"custom root {fingerprint}" in err
    assert "SIMULATED" not in out + err
