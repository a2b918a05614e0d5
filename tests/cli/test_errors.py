"""Errors that are not verdicts stay out of verdicts: a missing root, a misused option or a
file that cannot be used exits 2 or 3 with a message, never 1 and never a traceback."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zcbench.auditlog.verify import BootIdentity, verify_boot
from zcbench.cli import build_parser, main
from zcbench.errors import EXIT_PIPE, EnvError, UsageError, VerificationError


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
    assert "no space left on device" in err.lower()
    assert "Traceback" not in err


# -- The exit-code table, command by command ----------------------------------------------------
#
# README.md and DESIGN.md: a missing input path or one of the wrong kind exits 2, malformed
# content 1, a failed verification 1, an unwritable output, disk or device 3, and a broken pipe
# is quiet. Every case also checks that standard error holds one readable line: no traceback
# and no Python internals.

_INTERNALS = (
    re.compile(r"Traceback"),
    re.compile(r"\[Errno \d+\]"),
    re.compile(r"\bb'|\bb\""),  # bytes reprs
    re.compile(r"\{'|': "),  # dict reprs
    re.compile(r"\w='"),  # dataclass or keyword reprs such as trust='dev'
    re.compile(r" object at 0x"),
    re.compile(r"\bNone\b"),
    re.compile(r"\d{15,} bytes"),
)


def _error_lines(err: str) -> list[str]:
    """Standard error without the notices every run may print (SIMULATED, warnings)."""
    notices = ("zcbench: warning:", "zcbench: trusting the development CA", "SIMULATED",
               "zcbench: the replay enclave runs locally")
    return [line for line in err.splitlines() if line.strip() and not line.startswith(notices)
            and not _PROGRESS.match(line)]


# zcbench.progress's lines, printed when work takes a while (a loaded machine): not errors
_PROGRESS = re.compile(r"zcbench: [\w -]+: (done, )?[\d,]+ (of [\d,]+ )?\w+.* [\d.]+ s$")


def _assert_one_readable_line(err: str, out: str = "") -> None:
    """One error line on stderr; or, for a verdict (a verification that failed), none there
    and the verdict as the first line of stdout. Either way free of Python internals."""
    lines = _error_lines(err)
    if not lines and out:
        lines = out.splitlines()[:1]
        assert lines[0].split(":")[0].isupper(), out  # CORRUPT: ..., FAILED: ...
    assert len(lines) == 1, err
    assert lines[0].startswith("zcbench") or lines[0].split(":")[0].isupper(), err
    text = " ".join(out.splitlines()[:6]) if not _error_lines(err) else lines[0]
    for pattern in _INTERNALS:
        assert not pattern.search(text), (pattern.pattern, text)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths of every class: missing, a folder, a build folder, malformed files, outputs that
    cannot be written, and a real (development CA) run whose log verifies."""
    from tests.auditlog.support import real_run

    root = tmp_path_factory.mktemp("exit-codes")
    mp = pytest.MonkeyPatch()
    mp.setenv("ZCBENCH_HOME", str(root / "home"))
    try:
        run = real_run(root, batches=3)
    finally:
        mp.undo()
    (root / "folder").mkdir()
    build = root / "build"
    build.mkdir()
    (build / "commitment.json").write_text('{"schema": "zcbench.commitment/1"}')
    (root / "text.txt").write_text("garbage, not any format zcbench reads\n")
    (root / "doc.json").write_text('{"pcrs": {"0": "00"}}\n')
    (root / "empty.pem").write_bytes(b"")
    (root / "bad-slice.cbor").write_bytes(b"\xa5\x64boot" + b"\x00" * 20)
    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "01_research.ipynb"
    return {
        "home": str(root / "home"),
        "missing": str(root / "nope"),
        "folder": str(root / "folder"),
        "build": str(build),
        "text": str(root / "text.txt"),
        "json": str(root / "doc.json"),
        "empty_pem": str(root / "empty.pem"),
        "bad_slice": str(root / "bad-slice.cbor"),
        "run": str(run),
        "document": str(run / "boot.cbor"),
        "notebook": str(notebook),
        "snp_report": str(Path(__file__).resolve().parents[1] / "vectors" / "tee" / "snp"
                          / "report_milan.hex"),
        "blocked": str(root / "text.txt" / "out"),  # under a file: cannot be created
        "full": "/dev/full",  # every write fails with ENOSPC
    }


# (argv, expected exit code); {name} is a path from the world fixture.
_TABLE: list[Any] = [
    # backtest
    (["backtest", "--data", "{missing}"], 2),
    (["backtest", "--data", "{folder}"], 2),
    (["backtest", "--data", "{text}"], 1),
    (["backtest", "--data", "{json}"], 1),
    (["backtest", "--out", "{blocked}"], 3),
    (["backtest", "--out", "{full}"], 3),
    # sweep, walkforward
    (["sweep", "--serial", "--param", "window=2", "--data", "{missing}"], 2),
    (["sweep", "--serial", "--param", "window=2", "--data", "{text}"], 1),
    (["sweep", "--serial", "--param", "window"], 2),
    (["sweep", "--scheduler", "localhost:1", "--param", "window=2"], 2),
    (["sweep", "--serial", "--param", "fast=5", "--record", "{blocked}"], 3),
    (["walkforward", "--serial", "--param", "window=2", "--train", "0", "--test", "1"], 2),
    (["sweep", "--serial", "--synthetic", "--duration", "0.5", "--param", "window=2",
      "--record", "{folder}/r.json", "--table", "{blocked}"], 3),
    (["walkforward", "--serial", "--synthetic", "--duration", "1", "--param", "window=2",
      "--train", "3", "--test", "2", "--record", "{folder}/w.json", "--folds-out",
      "{blocked}"], 3),
    (["walkforward", "--serial", "--param", "window=2", "--train", "1", "--test", "1",
      "--data", "{folder}"], 2),
    # package
    (["package", "{missing}"], 2),
    (["package", "{folder}"], 2),
    (["package", "{text}"], 1),
    (["package", "{json}"], 1),
    (["package", "{notebook}", "-o", "{blocked}"], 3),
    # measure
    (["measure", "{missing}"], 2),
    (["measure", "{folder}"], 2),
    (["measure", "{text}"], 1),
    # run
    (["run", "{missing}"], 2),
    (["run", "{text}"], 2),
    (["run", "{folder}"], 2),
    (["run", "{build}", "--venue", "fix://nohost"], 2),
    # venue sim
    (["venue", "sim", "--port", "70000", "--drop-copy", "{folder}/d"], 2),
    (["venue", "sim", "--port", "0", "--drop-copy", "{folder}/d", "--data", "{missing}"], 2),
    (["venue", "sim", "--port", "0", "--drop-copy", "{blocked}"], 3),
    # reconcile
    (["reconcile", "{missing}", "--statement", "{text}"], 2),
    (["reconcile", "{folder}", "--statement", "{missing}"], 2),
    (["reconcile", "{run}", "--statement", "{text}", "--trust", "dev"], 1),
    # demo
    (["demo", "--out", "{text}"], 2),
    (["demo", "--out", "{blocked}"], 3),
    # verify attestation
    (["verify", "attestation", "{missing}", "--trust", "dev"], 2),
    (["verify", "attestation", "{folder}", "--trust", "dev"], 2),
    (["verify", "attestation", "{document}", "--trust", "{missing}"], 2),
    (["verify", "attestation", "{document}", "--trust", "dev", "--commitment", "{missing}"], 2),
    (["verify", "attestation", "{document}", "--trust", "dev", "--commitment", "{folder}"], 2),
    (["verify", "attestation", "{document}", "--trust", "{empty_pem}"], 1),
    (["verify", "attestation", "{text}", "--trust", "dev"], 1),
    (["verify", "attestation", "{json}", "--trust", "dev"], 1),
    (["verify", "attestation", "{document}", "--trust", "dev", "--commitment", "{json}"], 1),
    (["verify", "attestation", "{document}"], 1),  # a development-CA document, trust aws
    (["verify", "attestation", "{snp_report}"], 1),  # an SEV-SNP report without its VCEK
    # nitro emulate
    (["nitro", "emulate", "--nonce", "00", "--out", "{blocked}"], 3),
    (["nitro", "emulate", "--nonce", "00", "--out", "{full}"], 3),
    # nitro export-root
    (["nitro", "export-root", "--out", "{folder}"], 2),
    (["nitro", "export-root", "--out", "{blocked}"], 3),
    # log verify
    (["log", "verify", "{missing}"], 2),
    (["log", "verify", "{build}", "--trust", "dev"], 2),
    (["log", "verify", "{folder}", "--trust", "dev"], 2),
    (["log", "verify", "{document}", "--trust", "dev"], 2),
    (["log", "verify", "{json}", "--trust", "dev"], 2),
    (["log", "verify", "{bad_slice}", "--trust", "dev"], 1),
    (["log", "verify", "{run}"], 1),  # the development CA is not trusted by default
    (["log", "verify", "{run}", "--trust", "dev", "--known-checkpoint", "{missing}"], 2),
    (["log", "verify", "{run}", "--trust", "dev", "--known-checkpoint", "{json}"], 1),
    (["log", "verify", "{run}", "--trust", "dev", "--commitment", "{missing}"], 2),
    # log show
    (["log", "show", "{missing}"], 2),
    (["log", "show", "{build}"], 2),
    (["log", "show", "{document}"], 2),
    (["log", "show", "{bad_slice}"], 1),
    (["log", "show", "{run}", "--time", "yesterday:today"], 2),
    # log export
    (["log", "export", "{missing}", "--range", "1:3", "--out", "{folder}/x"], 2),
    (["log", "export", "{build}", "--range", "1:3", "--out", "{folder}/x"], 2),
    (["log", "export", "{run}", "--trust", "dev", "--range", "1:3", "--out", "{blocked}"], 3),
    (["log", "export", "{run}", "--trust", "dev", "--range", "1:3", "--out", "{full}"], 3),
    (["log", "export", "{run}", "--range", "1:3", "--out", "{folder}/y"], 1),
    # log witness, replay, vkey
    (["log", "witness", "{missing}"], 2),
    (["log", "witness", "{build}", "--trust", "dev"], 2),
    (["log", "replay", "{missing}", "--trust", "dev"], 2),
    (["log", "replay", "{build}", "--trust", "dev", "--build", "{build}"], 2),
    (["log", "replay", "{run}", "--trust", "dev", "--build", "{missing}"], 2),
    (["log", "vkey", "{missing}"], 2),
    (["log", "vkey", "{build}"], 2),
    (["log", "vkey", "{bad_slice}", "--trust", "dev"], 1),
    (["log", "vkey", "{run}"], 1),
    # keys (a PCR0 is a value, not a path)
    (["keys", "list", "--nope"], 2),
    (["keys", "revoke", "zz"], 2),
    (["keys", "revoke", "{missing}"], 2),
    (["keys", "refusals", "--limit", "0"], 2),
    # ledger, witness
    (["ledger", "init", "{missing}", "--origin", "a/zcbench/s", "--genesis", "{missing}"], 2),
    (["ledger", "init", "{missing}", "--origin", "no-fund", "--genesis", "{build}"], 2),
    (["ledger", "init", "{build}", "--origin", "a/zcbench/s", "--genesis", "{build}"], 2),
    (["ledger", "show", "{missing}"], 2),
    (["ledger", "show", "{build}"], 2),
    (["ledger", "announce", "{missing}", "--ledger", "{folder}", "--notice", "1s"], 2),
    (["ledger", "announce", "{build}", "--ledger", "{folder}", "--notice", "1w"], 2),
    (["ledger", "revoke", "zz", "--ledger", "{folder}"], 2),
    (["ledger", "revoke", "ab" * 48, "--ledger", "{folder}", "--by", "{missing}"], 2),
    (["ledger", "witness", "{folder}", "--policy", "{missing}"], 2),
    (["ledger", "proof", "{missing}", "--index", "0", "--out", "{folder}/p"], 2),
    (["ledger", "verify", "{missing}"], 2),
    (["ledger", "verify", "{folder}"], 2),
    (["ledger", "verify", "{folder}", "--policy", "{text}"], 1),
    (["witness", "serve", "--port", "0", "--state", "{folder}", "--key", "{text}", "--log",
      "x"], 2),
    (["witness", "vkey", "--key", "{missing}"], 2),
    (["witness", "vkey", "--key", "{text}"], 1),
    # report
    # archive (no server is reached: each refusal comes first)
    (["archive", "{missing}", "--s3", "http://127.0.0.1:9", "--bucket", "records",
      "--retain-days", "3000"], 2),
    (["archive", "{folder}", "--s3", "http://127.0.0.1:9", "--bucket", "records",
      "--retain-days", "3000"], 2),
    (["archive", "verify", "{missing}", "--s3", "http://127.0.0.1:9", "--bucket", "records"], 2),
    (["archive", "verify", "{run}", "--s3", "http://127.0.0.1:9", "--bucket", "records"], 1),
    # evidence
    (["evidence", "{missing}", "--out", "{folder}/pack"], 2),
    (["evidence", "{build}", "--out", "{folder}/pack", "--trust", "dev"], 2),
    (["evidence", "{run}", "--out", "{blocked}", "--trust", "dev"], 3),
    (["evidence", "verify", "{missing}"], 2),
    (["evidence", "verify", "{folder}"], 2),
    # limits, kill, enable: only a live run takes a change; a malformed one is refused first
    (["limits", "set", "{missing}", "--operator", "alice", "max_position=1"], 2),
    (["limits", "set", "{folder}", "--operator", "alice", "max_pos=1"], 2),
    (["limits", "set", "{run}", "--operator", "alice", "max_position=1"], 3),
    (["limits", "show", "{missing}"], 2),
    (["kill", "{run}", "--operator", "alice"], 3),
    (["enable", "{missing}", "--operator", "alice"], 2),
    (["report", "{missing}"], 2),
    (["report", "{text}"], 2),
    (["report", "{build}"], 2),
    (["report", "{folder}", "--trust", "dev"], 2),
    # serve, verify remote
    (["serve", "--runs", "{missing}"], 2),
    (["serve", "--runs", "{text}"], 2),
    (["serve", "--runs", "{folder}", "--readers", "{missing}"], 2),
    (["serve", "--runs", "{folder}", "--readers", "{json}"], 1),
    (["serve", "--add-reader", "lp"], 2),
    (["verify", "remote", "http://127.0.0.1:9", "--commitment", "{missing}"], 2),
    (["verify", "remote", "http://127.0.0.1:9", "--commitment", "{text}"], 1),
]


def _argv(template: list[str], world: dict[str, str]) -> list[str]:
    return [part.format(**world) for part in template]


@pytest.mark.parametrize(("template", "code"), _TABLE)
def test_exit_code_table(template: list[str], code: int, world: dict[str, str],
                         capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZCBENCH_HOME", world["home"])
    try:
        got = main(_argv(template, world))
    except SystemExit as exc:  # argparse refuses the option itself
        got = int(exc.code or 0)
    captured = capsys.readouterr()
    assert got == code, captured.err
    _assert_one_readable_line(captured.err, captured.out)


def test_every_command_is_in_the_table() -> None:
    parser = build_parser()
    covered = {" ".join(p for p in (t.values[0] if hasattr(t, "values") else t[0])[:2]
                        if not p.startswith(("{", "-"))) for t in _TABLE}
    for command, sub in parser._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        actions = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        names = [f"{command} {name}" for a in actions for name in a.choices] or [command]
        for name in names:
            assert any(c == name or c.startswith(name + " ") or name.startswith(c + " ")
                       or (c == name.split()[0] and " " not in c and len(names) == 1)
                       for c in covered), f"no exit-code case for 'zcbench {name}'"


def test_argparse_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["log", "verify"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    _assert_one_readable_line(err)
    assert "--help" in err


def _zcbench_into_a_closed_pipe(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: like `| head` that has exited
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; from zcbench.cli import main; "
             "raise SystemExit(main(sys.argv[1:]))", *argv],
            stdout=write, stderr=subprocess.PIPE, text=True, env=env, timeout=120, check=False,
        )
    finally:
        os.close(write)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(("argv", "codes"), [
    (["--help"], (0, EXIT_PIPE)),  # argparse itself ignores a failed write of its help
    (["log", "show", "{run}", "--limit", "0"], (EXIT_PIPE,)),
    pytest.param(["log", "verify", "{run}", "--trust", "dev", "--json"], (EXIT_PIPE,),
                 marks=pytest.mark.slow),
    pytest.param(["log", "vkey", "{run}", "--trust", "dev"], (EXIT_PIPE,), marks=pytest.mark.slow),
])
def test_a_broken_pipe_is_quiet(argv: list[str], codes: tuple[int, ...],
                                world: dict[str, str]) -> None:
    env = {**os.environ, "ZCBENCH_HOME": world["home"]}
    code, err = _zcbench_into_a_closed_pipe(_argv(argv, world), env)
    assert code in codes, err
    assert _error_lines(err) == [], err
    assert "Errno" not in err
