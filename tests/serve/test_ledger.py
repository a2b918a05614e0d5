"""The ledger on the proof service: ``/ledger/`` as tlog-tiles on a real uvicorn server, and an LP
holding a run to it (announcement of the running PCR0, the run's run-start, the last visit)."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.serve.support import RunningServer
from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.ledger import RunCheckpointEntry, RunStartEntry
from zcbench.ledger.store import Ledger
from zcbench.serve.app import ServeConfig
from zcbench.serve.remote import check_remote_ledger
from zcbench.serve.tiles import TileReader

P0 = hashlib.sha384(b"build 0").digest()
P1 = hashlib.sha384(b"build 1").digest()
ORIGIN = "acme.example/zcbench/ma-crossover"


def _ledger(tmp_path: Path) -> tuple[Ledger, LogSigner, str]:
    t0 = time.time_ns() - 60 * 10**9
    ledger = Ledger.init_insecure_host_key(tmp_path / "ledger", origin=ORIGIN, genesis_pcr0=P0,
                         commitment_sha256=b"\x01" * 32, at_ns=t0)
    origin = log_origin(P0, "run-1")
    signer = LogSigner(Ed25519PrivateKey.generate(), origin)
    ledger.append(RunStartEntry(P0, origin, signer.vkey, b"\x05" * 32, None), at_ns=t0 + 1)
    return ledger, signer, origin


def _serve(tmp_path: Path, ledger_dir: Path, name: str) -> RunningServer:
    runs = tmp_path / f"runs-{name}"
    runs.mkdir()
    return RunningServer(ServeConfig(runs=runs, ledger=ledger_dir))


def _hold(url: str, ledger: Ledger, origin: str, vkey: str, **kw: Any) -> dict[str, Any]:
    return check_remote_ledger(f"{url}/ledger", pcr0=kw.pop("pcr0", P0), run_origin=origin,
                               run_vkey=vkey, vkey=ledger.vkey, **kw)


def test_the_ledger_is_served_as_public_tiles_and_a_run_is_held_to_it(tmp_path: Path) -> None:
    ledger, signer, origin = _ledger(tmp_path)
    with _serve(tmp_path, ledger.folder, "a") as server:
        # any tlog-tiles client, no token: checkpoint, hash tiles and entry bundles are public
        note = httpx.get(f"{server.url}/ledger/checkpoint").content
        assert note == ledger.latest_checkpoint()
        reader = TileReader(lambda p: httpx.get(f"{server.url}/ledger/{p}").raise_for_status()
                            .content)
        assert list(reader.iter_entries(ledger.size)) == list(ledger.entry_bytes)
        assert httpx.get(f"{server.url}/ledger/../ledger.json").status_code == 404
        assert httpx.get(f"{server.url}/ledger/ledger-key.sealed").status_code == 404
        verdict = _hold(server.url, ledger, origin, signer.vkey, state=tmp_path / "lp")
        assert verdict["verified"], verdict
        assert verdict["checks"] == ["ledger_checkpoint", "ledger_tiles", "ledger_entries",
                                     "ledger_pcr0", "ledger_run", "ledger_state"]
        assert verdict["run_start_index"] == 1
        assert verdict["state"] == "first_visit"
        # the ledger grows; the next visit is consistent with the saved checkpoint
        ledger.append(RunCheckpointEntry(origin, signer.sign(4, b"\x07" * 32)), pcr0=P0)
        server.catalog.sync_once()
        again = _hold(server.url, ledger, origin, signer.vkey, state=tmp_path / "lp")
        assert again["verified"]
        assert again["state"] == "consistent"
        assert again["size"] == 3
        # a checkpoint under another key than the one handed over fails
        other = Ledger.init_insecure_host_key(tmp_path / "other", origin=ORIGIN, genesis_pcr0=P0,
                            commitment_sha256=b"\x01" * 32)
        wrong = check_remote_ledger(f"{server.url}/ledger", pcr0=P0, run_origin=origin,
                                    run_vkey=signer.vkey, vkey=other.vkey)
        assert wrong["failed_check"] == "ledger_checkpoint"
        # a run log key other than the run-start's fails
        stranger = LogSigner(Ed25519PrivateKey.generate(), origin)
        assert _hold(server.url, ledger, origin, stranger.vkey)["failed_check"] == "ledger_run"
    other.close()
    ledger.close()


def test_a_run_missing_from_the_ledger_fails(tmp_path: Path) -> None:
    ledger, _, _ = _ledger(tmp_path)
    hidden = log_origin(P0, "run-2")
    signer = LogSigner(Ed25519PrivateKey.generate(), hidden)
    with _serve(tmp_path, ledger.folder, "a") as server:
        verdict = _hold(server.url, ledger, hidden, signer.vkey)
    assert not verdict["verified"]
    assert verdict["failed_check"] == "ledger_run"
    assert "no run-start" in verdict["message"]
    ledger.close()


def test_a_revoked_pcr0_fails(tmp_path: Path) -> None:
    ledger, signer, origin = _ledger(tmp_path)
    ledger.announce(P1, b"\x02" * 32, notice_ns=0)
    ledger.revoke(P0, reason="retired", by=P1)
    with _serve(tmp_path, ledger.folder, "a") as server:
        verdict = _hold(server.url, ledger, origin, signer.vkey)
        unknown = _hold(server.url, ledger, origin, signer.vkey,
                        pcr0=hashlib.sha384(b"never announced").digest())
    assert verdict["failed_check"] == "ledger_pcr0"
    assert "revoked" in verdict["message"]
    assert unknown["failed_check"] == "ledger_pcr0"
    assert "not announced" in unknown["message"]
    ledger.close()


def test_a_ledger_rolled_back_between_visits_fails(tmp_path: Path) -> None:
    ledger, signer, origin = _ledger(tmp_path)
    shutil.copytree(ledger.folder, tmp_path / "old", ignore=shutil.ignore_patterns(".lock"))
    ledger.append(RunCheckpointEntry(origin, signer.sign(4, b"\x07" * 32)), pcr0=P0)
    state = tmp_path / "lp"
    with _serve(tmp_path, ledger.folder, "new") as server:
        assert _hold(server.url, ledger, origin, signer.vkey, state=state)["verified"]
    with _serve(tmp_path, tmp_path / "old", "old") as server:
        verdict = _hold(server.url, ledger, origin, signer.vkey, state=state)
    assert verdict["failed_check"] == "ledger_rollback"
    assert verdict["state"] == "rollback"
    assert verdict["previous"]["size"] == 3
    assert verdict["size"] == 2
    ledger.close()


def test_the_mounted_witness_cosigns_and_the_served_checkpoint_carries_the_quorum(
        tmp_path: Path) -> None:
    from zcbench.auditlog.note import parse_vkey
    from zcbench.auditlog.witness import Witness, load_cosigner
    from zcbench.ledger import parse_policy
    from zcbench.ledger.policy import policy_text
    from zcbench.ledger.witness_client import witness_ledger
    from zcbench.ledger.witness_server import build_app

    ledger, signer, origin = _ledger(tmp_path)
    cosigner = load_cosigner(tmp_path / "witness.pem", "witness.lp", create=True)
    witness = build_app(Witness(tmp_path / "witness-state"), cosigner, [parse_vkey(ledger.vkey)])
    runs = tmp_path / "runs"
    runs.mkdir()
    with RunningServer(ServeConfig(runs=runs, ledger=ledger.folder, witness=witness)) as server:
        policy = parse_policy(policy_text(ledger.vkey, [("lp", cosigner,
                                                          f"{server.url}/witness")], "all"))
        assert httpx.post(f"{server.url}/ledger/checkpoint").status_code == 405
        assert httpx.post(f"{server.url}/witness/add-checkpoint",
                          content=b"x" * 70_000).status_code == 413
        assert httpx.post(f"{server.url}/witness/add-checkpoint",
                          content=b"garbage").status_code == 400
        assert witness_ledger(ledger, policy).quorum_met
        server.catalog.sync_once()
        served = httpx.get(f"{server.url}/ledger/checkpoint").content
        assert served == ledger.witnessed_checkpoint()
        verdict = check_remote_ledger(f"{server.url}/ledger", pcr0=P0, run_origin=origin,
                                      run_vkey=signer.vkey, policy=policy)
        assert verdict["verified"], verdict
        assert "ledger_quorum" in verdict["checks"]
        assert verdict["cosigned_by"] == ["lp"]
        # an entry appended and not witnessed: the newest checkpoint has no quorum
        ledger.append(RunCheckpointEntry(origin, signer.sign(4, b"\x07" * 32)), pcr0=P0)
        server.catalog.sync_once()
        unwitnessed = check_remote_ledger(f"{server.url}/ledger", pcr0=P0, run_origin=origin,
                                          run_vkey=signer.vkey, policy=policy)
        assert unwitnessed["failed_check"] == "ledger_quorum"
    ledger.close()


def test_serve_and_verify_remote_refuse_bad_ledger_arguments(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zcbench.cli import main

    runs = tmp_path / "runs"
    runs.mkdir()
    assert main(["serve", "--runs", str(runs), "--ledger", str(runs)]) == 2  # not a ledger
    assert main(["serve", "--runs", str(runs), "--witness-state", str(tmp_path / "w")]) == 2
    commitment = tmp_path / "commitment.json"
    commitment.write_text("{}")
    assert main(["verify", "remote", "http://127.0.0.1:9", "--commitment", str(commitment),
                 "--ledger-vkey", "not a vkey"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 3
    assert all(line.startswith("zcbench: ") for line in lines)
    assert "not a ledger" in lines[0]
    assert "--ledger-vkey" in lines[2]
