"""Errors that are not verdicts stay out of verdicts: a missing root, a misused option or a
file that cannot be used exits 2 or 3 with a message, never 1 and never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from zcbench.auditlog.verify import BootIdentity, verify_boot
from zcbench.cli import main
from zcbench.errors import EnvError, UsageError, VerificationError


def _verifier_raising(exc: Exception):  # type: ignore[no-untyped-def]
    def verify(document: bytes, trust: str | Path) -> BootIdentity:
        raise exc

    return verify


@pytest.mark.parametrize("exc", [EnvError("no dev CA here"), UsageError("bad trust option")])
def test_boot_verifier_environment_and_usage_errors_propagate(exc: Exception) -> None:
    with pytest.raises(type(exc)):
        verify_boot(b"doc", "dev", _verifier_raising(exc))


def test_boot_verifier_refusal_is_untrusted_boot() -> None:
    refusal = VerificationError("chain does not verify", check="chain")
    with pytest.raises(Exception, match="the boot document does not verify") as info:
        verify_boot(b"doc", "aws", _verifier_raising(refusal))
    assert getattr(info.value, "classification", None) == "untrusted_boot"


def test_demo_out_naming_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    assert main(["demo", "--out", str(target)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_missing_commitment_file_is_a_usage_error(
    nitro_vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "verify", "attestation", str(nitro_vectors / "doc_1.cbor"), "--at", "doc",
        "--commitment", str(tmp_path / "nowhere.json"),
    ])  # fmt: skip
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_an_os_error_exits_3_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import zcbench.demo

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zcbench.demo, "run_demo", full_disk)
    assert main(["demo", "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("zcbench: ")
    assert "No space left on device" in err
    assert "Traceback" not in err
