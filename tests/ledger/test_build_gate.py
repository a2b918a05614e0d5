"""A build packaged for a ledger: the manifest measures the ledger requirement, so its enclave
serves only through the ledger's gate; ``zcbench run BUILD --ledger DIR`` passes it, a run
without the ledger is refused batch by batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.promoted_build import write_research_notebook
from zcbench.cli import main
from zcbench.enclave.ledger import LedgerRequirement
from zcbench.enclave.manifest import BundleManifest
from zcbench.errors import DataError
from zcbench.ledger import Ledger

pytestmark = pytest.mark.slow

ORIGIN = "acme.example/zcbench/ma-crossover"


def test_a_ledger_build_serves_only_through_its_gate(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    notebook = write_research_notebook(tmp_path / "research.ipynb")
    plain, gated = tmp_path / "plain", tmp_path / "gated"
    assert main(["package", str(notebook), "-o", str(plain), "--json"]) == 0
    assert main(["package", str(notebook), "-o", str(gated), "--ledger-origin", ORIGIN,
                 "--ledger-interval", "0.5", "--json"]) == 0
    capsys.readouterr()
    manifest = BundleManifest.load(gated / "manifest.json")
    assert manifest.ledger_requirement is not None
    assert LedgerRequirement.from_bytes(manifest.ledger_requirement.encode()) == (
        LedgerRequirement(ORIGIN, None, 0.5))
    assert BundleManifest.load(plain / "manifest.json").ledger_requirement is None
    from zcbench.host.live import BuildImage

    assert BuildImage(plain).expected_pcrs()[0] != BuildImage(gated).expected_pcrs()[0]
    ledger_dir = tmp_path / "ledger"
    assert main(["ledger", "init", str(ledger_dir), "--origin", ORIGIN, "--genesis",
                 str(gated)]) == 0
    capsys.readouterr()
    # without the ledger the enclave refuses every batch: the run ends with an enclave error
    code = main(["run", str(gated), "--synthetic", "--duration", "1", "--run-dir",
                 str(tmp_path / "r0"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code != 0
    assert out["status"] == "enclave_error"
    assert "gate" in out["reason"]
    # with it, the run starts in the ledger and ends there
    assert main(["run", str(gated), "--synthetic", "--duration", "1.5", "--run-dir",
                 str(tmp_path / "r1"), "--ledger", str(ledger_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    with Ledger.open(ledger_dir) as ledger:
        kinds = [e.type for e in ledger.entries]
    assert kinds[:2] == ["commitment", "run-start"]
    assert kinds[-1] == "run-end"
    assert main(["log", "verify", str(tmp_path / "r1"), "--trust", "dev", "--ledger",
                 str(ledger_dir)]) == 0
    # a replay of the gated build goes through the gate too, and is a run in the ledger
    capsys.readouterr()
    assert main(["log", "replay", str(tmp_path / "r1"), "--trust", "dev", "--json"]) == 1
    assert "gate" in capsys.readouterr().out
    assert main(["log", "replay", str(tmp_path / "r1"), "--trust", "dev", "--ledger",
                 str(ledger_dir), "--keep", str(tmp_path / "kept"), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    # the replay's own log, held to the ledger like a run's
    assert main(["log", "verify", str(tmp_path / "kept"), "--trust", "dev", "--ledger",
                 str(ledger_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ledger"]["ok"]
    with Ledger.open(ledger_dir) as ledger:
        [origin] = [run for run in ledger.state.runs
                    if run.endswith("/" + replayed["replay_run_id"])]
        replay_run = ledger.state.runs[origin]
        # its log as it ended is in the ledger: a final run-checkpoint, no run-end
        assert ledger.entries[-1].type == "run-checkpoint"
        assert replay_run.last_checkpoint is not None
        assert not replay_run.ended
    # the run after the replay names the replay's last checkpoint: its log is in the chain
    assert main(["run", str(gated), "--synthetic", "--duration", "1", "--run-dir",
                 str(tmp_path / "r2"), "--ledger", str(ledger_dir), "--json"]) == 0
    capsys.readouterr()
    with Ledger.open(ledger_dir) as ledger:
        after = ledger.state.runs[ledger.state.last_run or ""]
        start = ledger.entries[after.start_index].body
        assert start.previous_checkpoint == replay_run.last_checkpoint  # type: ignore[union-attr]
    # the live version's enclave announces its successor, and withdraws it, signing both itself
    assert main(["ledger", "announce", str(plain), "--ledger", str(ledger_dir), "--notice", "7d",
                 "--by", str(gated), "--json"]) == 0
    announced = json.loads(capsys.readouterr().out)
    plain_pcr0 = BuildImage(plain).expected_pcrs()[0]
    assert main(["ledger", "revoke", plain_pcr0.hex(), "--ledger", str(ledger_dir), "--by",
                 str(gated), "--reason", "withdrawn"]) == 0
    capsys.readouterr()
    with Ledger.open(ledger_dir) as ledger:
        kinds = [e.type for e in ledger.entries]
        assert kinds[announced["index"] - 1:] == [  # each in a session of the live version
            "run-start", "commitment", "run-checkpoint", "run-start", "revocation",
            "run-checkpoint"]
        version = ledger.state.versions[plain_pcr0]
        assert version.revoked_ns is not None
        assert version.valid_from_ns - version.announced_ns == 7 * 86_400 * 10**9
    from zcbench.ledger.verify import check_ledger

    assert check_ledger(ledger_dir).ok


def test_the_manifest_requirement_is_strict() -> None:
    good = BundleManifest(
        strategy="s", strategy_class="S", strategy_sha256="0" * 64,
        sealed_content_sha256="1" * 64, input_fields=("price",), batching={"count": 1},
        parameters=(), zcbench_version="0", lock_sha256="2" * 64, runtime_sha256="3" * 64,
        source_date_epoch=0,
        ledger_requirement=LedgerRequirement(ORIGIN).to_bytes().decode())
    assert BundleManifest.from_json(good.to_json()) == good
    plain = json.loads(good.to_json())
    del plain["ledger_requirement"]
    assert BundleManifest.from_json(json.dumps(plain)).ledger_requirement is None
    for bad in ('{"origin": "x"}', 5):
        doc = json.loads(good.to_json())
        doc["ledger_requirement"] = bad
        with pytest.raises(DataError, match="ledger_requirement"):
            BundleManifest.from_json(json.dumps(doc))
