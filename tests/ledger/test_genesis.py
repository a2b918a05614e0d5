"""``zcbench ledger init``: the genesis build's enclave makes the ledger key, seals it to the key
broker and signs the genesis; no host process holds the key, and without an enclave there is
no genesis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import zcbench.examples.order_flow as order_flow
from zcbench.auditlog.checkpoint import LogSigner
from zcbench.cli import main
from zcbench.errors import EnvError
from zcbench.host.live import ModuleImage
from zcbench.keys import is_enclave_sealed
from zcbench.ledger import Ledger
from zcbench.ledger.key import KEY_FILE

ORIGIN = "acme.example/zcbench/order-flow"
IMAGE = ModuleImage(Path(order_flow.__file__))


def _build_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build folder whose image is the order-flow module (packaging is slow, and the module
    image boots the same enclave process)."""
    build = tmp_path / "build"
    build.mkdir()
    pcrs = IMAGE.expected_pcrs()
    (build / "commitment.json").write_text(json.dumps(
        {"schema": "zcbench.commitment/1", "pcrs": {str(i): pcrs[i].hex() for i in (0, 1, 2)}}))
    (build / "manifest.json").write_text("{}")
    monkeypatch.setattr("zcbench.host.BuildImage", lambda _folder: IMAGE)
    return build


def test_without_an_enclave_there_is_no_genesis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    build = _build_of(tmp_path, monkeypatch)

    def no_enclave(*_args: Any, **_kwargs: Any) -> Any:
        raise EnvError("no enclave can be started here")

    monkeypatch.setattr("zcbench.host.genesis.open_session", no_enclave)
    folder = tmp_path / "ledger"
    assert main(["ledger", "init", str(folder), "--origin", ORIGIN, "--genesis",
                 str(build)]) == 3
    assert "no enclave" in capsys.readouterr().err
    assert not folder.exists()  # nothing signed or sealed in this process instead


@pytest.mark.slow
def test_the_genesis_enclave_makes_the_key_and_the_host_never_holds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    build = _build_of(tmp_path, monkeypatch)
    signers: list[str] = []  # every log signer this (the host's) process makes
    real_init = LogSigner.__init__

    def spy(self: LogSigner, key: Any, origin: str) -> None:
        signers.append(origin)
        real_init(self, key, origin)

    monkeypatch.setattr(LogSigner, "__init__", spy)
    folder = tmp_path / "ledger"
    assert main(["ledger", "init", str(folder), "--origin", ORIGIN, "--genesis", str(build),
                 "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert ORIGIN not in signers  # the ledger key was never a signer in this process
    assert is_enclave_sealed((folder / KEY_FILE).read_bytes())
    assert (folder / "enclave-state").is_file()  # the genesis enclave's sealed state
    with Ledger.open(folder) as ledger:
        assert ledger.vkey == made["vkey"]
        assert [e.type for e in ledger.entries] == ["commitment"]
        assert ledger.state.is_allowed(IMAGE.expected_pcrs()[0], ledger.entries[0].time_ns)
    assert main(["ledger", "show", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["key_made_in_enclave"]
    assert main(["ledger", "verify", str(folder)]) == 0
    assert "outside an enclave" not in capsys.readouterr().err
    # the broker releases the key to the genesis build's next enclave: a run in the ledger
    from zcbench.host import ReplaySource
    from zcbench.host.live import run_live
    from zcbench.ledger.runs import LedgerRunHook
    from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks

    source = ReplaySource(generate_ticks(SyntheticConfig(rate=500, duration_s=0.5), seed=3),
                          BatchSpec(count=50))
    summary = run_live(IMAGE, tmp_path / "run", source,
                       ledger=LedgerRunHook(folder, tmp_path / "run"))
    assert summary.status == "completed", summary.reason
    assert ORIGIN not in signers
    with Ledger.open(folder) as ledger:
        assert [e.type for e in ledger.entries][:2] == ["commitment", "run-start"]
        assert ledger.entries[-1].type == "run-end"
    # archive entries: refused in this process before any upload, appended by the enclave
    from zcbench.archive.ledger import check_runs_in_ledger
    from zcbench.errors import UsageError
    from zcbench.host.endorse import archive_request, endorse
    from zcbench.ledger.entries import ArchiveEntry, ArchiveEntryObject

    run_id = summary.run_id
    with pytest.raises(UsageError, match="needs --by LIVE_BUILD_DIR"):
        check_runs_in_ledger(folder, [run_id])
    check_runs_in_ledger(folder, [run_id], by_enclave=True)
    with Ledger.open(folder) as ledger:
        [run_origin] = [o for o in ledger.state.runs if o.endswith("/" + run_id)]
    body = ArchiveEntry(run_origin, "bucket", b"\x03" * 32, 2**62,
                        (ArchiveEntryObject("runs/r/log", "v1", b"\x04" * 32),))
    signed = endorse(IMAGE, folder, [archive_request(body)])
    assert [a.entry.body for a in signed.every] == [body]
    assert ORIGIN not in signers
    from zcbench.ledger.verify import check_ledger

    report = check_ledger(folder)
    assert report.ok, report.message
    assert [a for _, a in report.state.runs[run_origin].archives] == [body]
