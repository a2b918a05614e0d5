"""AttestationPanel and its backend over real documents: emulated (dev CA) and real AWS ones."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.errors import EnvError, UsageError
from zcbench.nitro import DevCA, NsmEmulator, parse_document
from zcbench.widgets.attestation import (
    AttestationPanel,
    AttestationResult,
    VerifyingBackend,
    attestation_result,
    parse_nonce,
    result_to_json,
)

NOW = dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=dt.UTC)
PCRS = {0: bytes([1]) * 48, 1: bytes([2]) * 48, 2: bytes([3]) * 48}


def _commitment(folder: Path, pcrs: dict[int, bytes]) -> Path:
    path = folder / "commitment.json"
    path.write_text(
        json.dumps(
            {
                "schema": "zcbench.commitment/1",
                "strategy": "momentum",
                "pcrs": {str(i): v.hex() for i, v in pcrs.items()},
                "strategy_sha256": "ab" * 32,
                "lock_sha256": "cd" * 32,
                "zcbench_version": "0.1.0",
                "source_date_epoch": 0,
            }
        )
    )
    return path


@pytest.fixture
def emulator() -> NsmEmulator:
    ca = DevCA.load_or_create(now=NOW - dt.timedelta(minutes=1))
    return NsmEmulator(PCRS, ca, clock=lambda: NOW)


def _backend(emulator: NsmEmulator, commitment: Path, trust: str = "dev") -> VerifyingBackend:
    return VerifyingBackend(
        lambda nonce: emulator.attestation(nonce=nonce),
        commitment=commitment,
        trust=trust,
        description="NSM emulator",
        clock=lambda: NOW + dt.timedelta(seconds=3),
    )


class _Counting:
    """Byte source for the nonce field that counts calls (a deterministic rng)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, n: int) -> bytes:
        self.calls += 1
        return bytes([self.calls]) * n


@pytest.mark.parametrize(
    ("text", "expected"),
    [("00ff", b"\x00\xff"), ("0xABcd", b"\xab\xcd"), (" 01 02\n03 ", b"\x01\x02\x03")],
)
def test_parse_nonce_accepts_hex(text: str, expected: bytes) -> None:
    assert parse_nonce(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("0x", "empty"),
        ("abc", "even number"),
        ("zz11", "'z'"),
        ("12-34", "'-'"),
        ("00" * 1025, "at most 1024"),
    ],
)
def test_parse_nonce_refuses_with_a_readable_message(text: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        parse_nonce(text)


def test_emulated_document_is_verified_and_simulated(
    tmp_path: Path, emulator: NsmEmulator
) -> None:
    panel = AttestationPanel(_backend(emulator, _commitment(tmp_path, PCRS)), rng=_Counting())
    result = panel.request()
    assert result is not None, panel.last_error
    assert result.verdict == "VERIFIED"
    assert result.report.simulated
    assert result.report.checked_pcrs == (0, 1, 2)
    assert result.age == dt.timedelta(seconds=3)
    assert "VERIFIED" in panel.banner.value
    assert "SIMULATED" in panel.banner.value
    assert panel.pcrs.value.count("<b>match</b>") == 3
    assert "development CA" in panel.banner.value
    root = result.report.chain[0]
    assert root.subject == root.issuer  # root first, self-issued
    assert "NOT VALID" not in panel.chain.value
    assert "3 s" in panel.facts.value
    assert not panel.export_button.disabled


def test_mismatched_commitment_fails_naming_the_pcr(tmp_path: Path, emulator: NsmEmulator) -> None:
    other = {**PCRS, 0: bytes([9]) * 48}
    panel = AttestationPanel(_backend(emulator, _commitment(tmp_path, other)))
    result = panel.request()
    assert result is not None
    assert result.verdict == "FAILED"
    assert result.report.failed_check == "pcr0"
    assert "FAILED" in panel.banner.value
    assert "pcr0" in panel.banner.value
    assert ("09" * 48) in panel.banner.value
    assert ("01" * 48) in panel.banner.value
    assert "MISMATCH" in panel.pcrs.value
    assert "SIMULATED" in panel.banner.value  # still said: the root is the dev CA


def test_emulated_document_fails_under_the_aws_root(tmp_path: Path, emulator: NsmEmulator) -> None:
    panel = AttestationPanel(_backend(emulator, _commitment(tmp_path, PCRS), trust="aws"))
    result = panel.request()
    assert result is not None
    assert result.verdict == "FAILED"
    assert result.report.failed_check == "root"
    assert "SIMULATED" not in panel.banner.value


def test_malformed_nonce_is_shown_and_panel_stays_usable(
    tmp_path: Path, emulator: NsmEmulator
) -> None:
    calls: list[bytes] = []

    def fetch(nonce: bytes) -> bytes:
        calls.append(nonce)
        return emulator.attestation(nonce=nonce)

    backend = VerifyingBackend(
        fetch, commitment=_commitment(tmp_path, PCRS), trust="dev", clock=lambda: NOW
    )
    panel = AttestationPanel(backend)
    panel.nonce.value = "not hex!"
    panel.request_button.click()
    assert calls == []
    assert panel.result is None
    assert "Nonce:" in panel.status.value
    assert "hex digits" in panel.status.value
    assert not panel.request_button.disabled
    panel.nonce.value = "c0ffee"
    panel.request_button.click()
    assert calls == [bytes.fromhex("c0ffee")]
    assert panel.result is not None
    assert panel.result.verdict == "VERIFIED"
    assert panel.last_error is None


def test_new_nonce_button_draws_a_fresh_nonce(tmp_path: Path, emulator: NsmEmulator) -> None:
    rng = _Counting()
    panel = AttestationPanel(_backend(emulator, _commitment(tmp_path, PCRS)), rng=rng)
    assert panel.nonce.value == "01" * 32
    panel.new_nonce_button.click()
    assert panel.nonce.value == "02" * 32


def test_missing_commitment_and_backend_errors_are_shown(tmp_path: Path) -> None:
    backend = VerifyingBackend(
        lambda nonce: b"", commitment=tmp_path / "nope" / "commitment.json", trust="dev"
    )
    panel = AttestationPanel(backend)
    assert panel.request() is None
    assert "No document" in panel.status.value
    assert "commitment" in panel.status.value

    class Broken:
        description = "broken"

        def request(self, nonce: bytes) -> AttestationResult:
            raise RuntimeError("socket fell over")

    panel = AttestationPanel(Broken())
    assert panel.request() is None
    assert "Unexpected error" in panel.status.value
    assert "socket fell over" in panel.status.value

    class Dead:
        description = "dead"

        def request(self, nonce: bytes) -> AttestationResult:
            raise EnvError("the enclave is not running: start a run first")

    panel = AttestationPanel(Dead())
    assert panel.request() is None
    assert "start a run first" in panel.status.value


def test_garbage_document_is_a_failed_verdict_not_a_crash(tmp_path: Path) -> None:
    backend = VerifyingBackend(
        lambda nonce: b"\xa0garbage", commitment=_commitment(tmp_path, PCRS), trust="dev",
        clock=lambda: NOW,
    )
    DevCA.load_or_create(now=NOW)
    panel = AttestationPanel(backend)
    result = panel.request()
    assert result is not None
    assert result.verdict == "FAILED"
    assert result.report.failed_check == "decode"
    assert "no certificate chain" in panel.chain.value


def test_export_writes_json_and_the_raw_document(tmp_path: Path, emulator: NsmEmulator) -> None:
    panel = AttestationPanel(
        _backend(emulator, _commitment(tmp_path, PCRS)), export_dir=tmp_path / "out"
    )
    assert panel.export() is None
    assert "request an attestation first" in panel.status.value
    result = panel.request()
    assert result is not None
    path = panel.export()
    assert path is not None
    assert path.parent == tmp_path / "out"
    data = json.loads(path.read_text())
    assert data["verdict"] == "VERIFIED"
    assert data["simulated"] is True
    assert data["nonce"] == data["requested_nonce"] == result.nonce.hex()
    assert data["pcrs"]["0"] == PCRS[0].hex()
    assert path.with_suffix(".cbor").read_bytes() == result.document
    assert "zcbench verify attestation" in panel.status.value
    assert panel.reverify_command is not None
    assert panel.reverify_command in panel.status.value


def test_the_exported_json_is_the_verifiers_report_plus_the_request(
    tmp_path: Path, emulator: NsmEmulator
) -> None:
    """One attestation-report JSON: the panel's export carries ``zcbench verify attestation
    --json``'s object unchanged, and adds only what the request knows."""
    nonce = b"\x05" * 8
    doc = emulator.attestation(nonce=nonce)
    result = attestation_result(doc, nonce=nonce, expected_pcrs=PCRS, trust="dev", at=NOW,
                                source="test")  # fmt: skip
    data = result_to_json(result)
    verifier = result.report.to_dict()
    assert {k: data[k] for k in verifier} == verifier
    assert set(data) - set(verifier) == {
        "schema", "verdict", "source", "requested_nonce", "requested_at", "age_seconds",
        "expected_pcrs", "checkpoint", "checkpoint_problem", "commitment", "tee", "measured",
    }  # fmt: skip
    assert data["tee"] == "nitro"
    statuses = {m["name"]: m["status"] for m in data["measured"]}
    assert {name: statuses.pop(name) for name in ("pcr0", "pcr1", "pcr2")} == dict.fromkeys(
        ("pcr0", "pcr1", "pcr2"), "match")
    assert set(statuses.values()) <= {"not committed"}  # shown, not committed (PCR4: the host)
    assert data["schema"] == "zcbench.attestation-report/2"


def test_an_export_re_verifies_on_another_machine_with_only_its_files(
    tmp_path: Path, emulator: NsmEmulator, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Notebook 04's Export: the command it prints names only files it wrote, and run in a
    fresh zcbench home (no development CA, no build folder) it gives the same verdict,
    SIMULATED."""
    import shlex

    from zcbench.cli import main

    panel = AttestationPanel(
        _backend(emulator, _commitment(tmp_path, PCRS)), export_dir=tmp_path / "handed-over"
    )
    assert panel.request() is not None
    assert panel.export() is not None
    command = panel.reverify_command
    assert command is not None
    assert command.startswith("zcbench verify attestation ")
    named = [w for w in shlex.split(command) if w.startswith("attestation-")]
    written = sorted(p.name for p in (tmp_path / "handed-over").iterdir())
    assert set(named) <= set(written), (named, written)
    assert len(named) == 3  # the document, the commitment, the root it rests on

    monkeypatch.setenv("ZCBENCH_HOME", str(tmp_path / "lp-home"))
    monkeypatch.chdir(tmp_path / "handed-over")
    capsys.readouterr()
    code = main(shlex.split(command)[1:])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out.startswith("VERIFIED (SIMULATED)")
    assert not (tmp_path / "lp-home" / "devca").exists()  # nothing of the fund's was needed


def test_checkpoint_in_user_data_is_checked_against_the_attested_key(
    emulator: NsmEmulator,
) -> None:
    key = Ed25519PrivateKey.generate()
    signer = LogSigner(key, log_origin(PCRS[0], "run-1"))
    note = signer.sign(7, bytes(32))
    user_data = cbor2.dumps({"checkpoint": note})
    nonce = b"\x01" * 8

    def check(public_key: bytes) -> AttestationResult:
        doc = emulator.attestation(nonce=nonce, user_data=user_data, public_key=public_key)
        return attestation_result(
            doc, nonce=nonce, expected_pcrs=PCRS, trust="dev", at=NOW, source="test"
        )

    good = check(signer.public_key_spki_der)
    assert good.verdict == "VERIFIED"
    assert good.checkpoint is not None
    assert good.checkpoint.signed
    assert good.checkpoint.size == 7
    assert result_to_json(good)["checkpoint"]["signed_by_attested_key"] is True

    other = LogSigner(Ed25519PrivateKey.generate(), signer.origin).public_key_spki_der
    bad = check(other)
    assert bad.checkpoint is not None
    assert not bad.checkpoint.signed
    assert "does not verify" in (bad.checkpoint.problem or "")


def test_real_aws_documents_verify_without_simulated(nitro_vectors: Path) -> None:
    facts = json.loads((nitro_vectors / "doc_1.json").read_text())["facts"]
    raw = (nitro_vectors / "doc_1.cbor").read_bytes()
    doc = parse_document(raw)
    assert doc.nonce is not None
    stated = facts["pcrs_stated_by_source"]["values"]
    expected = {int(k): bytes.fromhex(v) for k, v in stated.items()}
    result = attestation_result(
        raw, nonce=doc.nonce, expected_pcrs=expected, trust="aws", at=doc.time, source="vector"
    )
    assert result.verdict == "VERIFIED"
    assert not result.report.simulated
    panel_json = result_to_json(result)
    assert panel_json["root"] == "aws"
    assert panel_json["checked_pcrs"] == [0, 1, 2, 8]
    later = attestation_result(
        raw, nonce=doc.nonce, expected_pcrs=expected, trust="aws",
        at=doc.time + dt.timedelta(hours=4), source="vector",
    )
    assert later.verdict == "FAILED"
    assert later.report.failed_check == "validity"


def test_the_panel_says_what_the_verdict_rests_on_however_the_root_was_trusted(
    emulator: NsmEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zcbench.nitro import export_dev_root, load_trust_root
    from zcbench.widgets.attestation import document_facts_html, verdict_html

    nonce = b"\x02" * 8
    doc = emulator.attestation(nonce=nonce)
    # The fund's dev root handed to an LP as a file: still SIMULATED everywhere.
    pem = tmp_path / "dev-root.pem"
    export_dev_root(pem)
    as_file = attestation_result(doc, nonce=nonce, expected_pcrs=PCRS, trust=pem, at=NOW,
                                 source="file")  # fmt: skip
    assert as_file.verdict == "VERIFIED"
    assert "SIMULATED" in verdict_html(as_file)
    assert "SIMULATED" in document_facts_html(as_file)
    data = result_to_json(as_file)
    assert data["simulated"] is True
    assert data["trust_root"]["kind"] == "dev"

    # Anyone else's root: named by its fingerprint, never shown as a plain VERIFIED by AWS.
    import zcbench.nitro.devca as devca

    monkeypatch.setattr(devca, "DEV_ROOT_MARKER", "acme-enclaves")
    acme = DevCA.load_or_create(tmp_path / "acme", now=NOW - dt.timedelta(minutes=1))
    other = NsmEmulator(PCRS, acme, clock=lambda: NOW).attestation(nonce=nonce)
    custom = attestation_result(other, nonce=nonce, expected_pcrs=PCRS, trust=acme.root_pem,
                                at=NOW, source="acme")  # fmt: skip
    fingerprint = load_trust_root(acme.root_pem).fingerprint
    assert custom.verdict == "VERIFIED"
    assert f"custom root {fingerprint}" in verdict_html(custom)
    assert "CUSTOM ROOT" in verdict_html(custom)
    assert "AWS Nitro root" not in verdict_html(custom)
    assert f"custom root {fingerprint}" in document_facts_html(custom)
    assert result_to_json(custom)["trust_root"]["kind"] == "custom"


class _FakeHandle:
    def __init__(self, run_id: str, emulator: NsmEmulator) -> None:
        self.run_id = run_id
        self._emulator = emulator

    def attest(self, nonce: bytes) -> bytes:
        return self._emulator.attestation(nonce=nonce)


class _FakeRunner:
    """LocalRunBackend's surface that EnclaveSource uses, with an emulator for an enclave."""

    def __init__(self, emulator: NsmEmulator) -> None:
        import threading

        self.trust = "dev"
        self.handle: _FakeHandle | None = None
        self.booted = threading.Event()
        self.error: str | None = None
        self.starts = 0
        self._emulator = emulator

    def start_in_background(self, request: object) -> object:
        import threading

        self.starts += 1
        self.handle = _FakeHandle(f"run-{self.starts}", self._emulator)
        self.booted.set()
        return threading.Event()


def test_request_reuses_the_running_enclave_and_says_when_it_starts_one(
    emulator: NsmEmulator, tmp_path: Path
) -> None:
    from zcbench.widgets.attestation import enclave_backend
    from zcbench.widgets.liverun import RunRequest

    build = tmp_path / "build"
    build.mkdir()
    _commitment(build, PCRS)
    runner = _FakeRunner(emulator)
    start = RunRequest(build_dir=build, rate=1.0, run_dir=tmp_path / "run")
    backend = enclave_backend(runner, build, start=start, clock=lambda: NOW)
    panel = AttestationPanel(backend)

    first = panel.request()
    assert first is not None, panel.last_error
    assert first.verdict == "VERIFIED"
    assert runner.starts == 1
    assert "a run was started for this request (run run-1" in first.source
    assert "a run was started for this request" in panel.status.value

    for _ in range(3):  # the same run answers every later request: no new run, no new folder
        again = panel.request()
        assert again is not None
        assert runner.starts == 1
        assert "asked the running local enclave (run run-1" in again.source
        assert "started" not in again.source

    runner.handle = None  # the run ended: the next request starts one, and says so
    later = panel.request()
    assert later is not None
    assert runner.starts == 2
    assert "a run was started for this request (run run-2" in later.source
