"""Slices and ``.tlog-proof`` files over HTTP, on a real uvicorn server: gated by reader tokens like
entry bundles, strictly parsed, the same bytes the CLI writes, and verifiable by its checks."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.auditlog.support import build_log, fake_boot_verifier
from tests.serve.support import RunningServer, fake_boot_key
from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.auditlog.export import export_slice
from zcbench.auditlog.slice import LogSlice, check_slice_bytes
from zcbench.ledger import (
    RunCheckpointEntry,
    RunStartEntry,
    format_tlog_proof,
    tlog_proof_for,
    verify_tlog_proof,
)
from zcbench.ledger.store import Ledger
from zcbench.serve import app as serve_app
from zcbench.serve.app import ServeConfig
from zcbench.serve.readers import Readers, add_reader

P0 = hashlib.sha384(b"build 0").digest()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("proofs")
    runs = root / "runs"
    a = build_log(runs / "run-a", batches=6, run_id="run-a")
    b = build_log(runs / "run-b", batches=2, run_id="run-b", seed=8)
    t0 = time.time_ns() - 60 * 10**9
    ledger = Ledger.init_insecure_host_key(
            root / "ledger", origin="acme.example/zcbench/ledger", genesis_pcr0=P0,
            commitment_sha256=b"\x01" * 32, at_ns=t0)
    signers = {}
    for n, run_id in enumerate(("run-a", "run-b")):
        origin = log_origin(P0, run_id)
        signers[run_id] = LogSigner(Ed25519PrivateKey.generate(), origin)
        ledger.append(RunStartEntry(P0, origin, signers[run_id].vkey, b"\x05" * 32, None),
                      at_ns=t0 + 1 + n)
    ledger.append(RunCheckpointEntry(log_origin(P0, "run-a"),
                                     signers["run-a"].sign(4, b"\x07" * 32)), pcr0=P0)
    readers = root / "readers.json"
    tokens = {
        "a": add_reader(readers, "lp-a", runs=["run-a"], bodies=True),
        "hashes": add_reader(readers, "lp-h", runs=["*"], bodies=False),
    }
    config = ServeConfig(runs=runs, readers=Readers.load(readers), boot_key=fake_boot_key,
                         ledger=ledger.folder, access_log=root / "access.log",
                         request_burst=10_000, requests_per_s=10_000.0, proof_burst=10_000,
                         proof_per_s=10_000.0)
    try:
        with RunningServer(config) as server:
            yield {"url": server.url, "tokens": tokens, "a": a, "b": b, "root": root,
                   "ledger": ledger, "server": server}
    finally:
        ledger.close()


def _get(world: dict[str, Any], path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(world["url"] + path, headers=headers, timeout=10)


def test_a_slice_needs_a_token_in_scope_and_is_what_log_export_writes(
        world: dict[str, Any], tmp_path: Path) -> None:
    path = "/runs/run-a/slice?start=3&end=7"
    assert _get(world, path).status_code == 401
    assert _get(world, path).headers["www-authenticate"].startswith("Bearer")
    assert _get(world, path, "zcbr_not-a-reader").status_code == 401
    assert _get(world, "/runs/run-b/slice?start=1&end=3", world["tokens"]["a"]).status_code == 403
    served = _get(world, path, world["tokens"]["a"])
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "application/cbor"
    assert "x-zcbench-withheld" not in served.headers
    # the same bytes as the CLI's export of that range (the served checkpoint is the newest)
    out = tmp_path / "exported.cbor"
    export_slice(world["a"].run, out, index_range=(3, 7), trust="fake",
                 boot_verifier=fake_boot_verifier)
    assert served.content == out.read_bytes()
    report = check_slice_bytes(served.content, "served", trust="fake",
                               boot_verifier=fake_boot_verifier)
    assert report.verified, report.message
    assert report.entries == 4
    assert report.origin == world["a"].origin
    # the served checkpoint is the one the slice proves against
    assert LogSlice.from_bytes(served.content).checkpoint == _get(
        world, "/runs/run-a/checkpoint").content


def test_a_reader_without_bodies_gets_the_slice_without_in_records(
        world: dict[str, Any]) -> None:
    served = _get(world, "/runs/run-a/slice?start=1&end=13", world["tokens"]["hashes"])
    assert served.status_code == 200, served.text
    assert served.headers["x-zcbench-withheld"] == "in-records"
    sliced = LogSlice.from_bytes(served.content)
    kinds = [r.kind for r in sliced.records()]
    assert kinds == ["boot"] + ["out"] * 6
    report = check_slice_bytes(served.content, "served", trust="fake",
                               boot_verifier=fake_boot_verifier)
    assert report.verified, report.message
    whole = _get(world, "/runs/run-a/slice?start=1&end=13", world["tokens"]["a"])
    assert [r.kind for r in LogSlice.from_bytes(whole.content).records()].count("in") == 6


@pytest.mark.parametrize("query", [
    "", "start=1", "end=3", "start=1&end=1", "start=3&end=2", "start=01&end=3", "start=-1&end=2",
    "start=%31&end=3", "start=1&end=3&x=1", "start=1&start=1&end=3", "start=1&end=3&",
    "start=1&end=14", "start=0&end=99999999999999999999", "start=+1&end=3", "start=1 &end=3",
    "start&end=3", "start=1&end=3&end=3",
])
def test_bad_slice_queries_are_400_with_a_reason(world: dict[str, Any], query: str) -> None:
    response = _get(world, f"/runs/run-a/slice?{query}", world["tokens"]["a"])
    assert response.status_code == 400, (query, response.text)
    assert response.json()["error"]


def test_a_range_over_the_bound_is_refused(world: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_app, "MAX_SLICE_RECORDS", 3)
    refused = _get(world, "/runs/run-a/slice?start=1&end=5", world["tokens"]["a"])
    assert refused.status_code == 400
    assert "at most 3 records" in refused.json()["error"]
    assert _get(world, "/runs/run-a/slice?start=1&end=4", world["tokens"]["a"]).status_code == 200


@pytest.mark.slow
def test_a_ledger_proof_is_what_ledger_proof_writes_and_verifies(world: dict[str, Any]) -> None:
    ledger: Ledger = world["ledger"]
    for index in range(ledger.size):
        path = f"/ledger/proof/{index}"
        assert _get(world, path).status_code == 401
        served = _get(world, path, world["tokens"]["hashes"])
        assert served.status_code == 200, served.text
        expected = format_tlog_proof(tlog_proof_for(list(ledger.entry_bytes), index,
                                                    ledger.latest_checkpoint()))
        assert served.content == expected
        entry, checkpoint = verify_tlog_proof(served.content, ledger.vkey)
        assert entry.index == index
        assert checkpoint.size == ledger.size
    # lp-a's scope is run-a: the run-start of run-b (entry 2) is refused, the rest served
    assert _get(world, "/ledger/proof/2", world["tokens"]["a"]).status_code == 403
    for index in (0, 1, 3):
        assert _get(world, f"/ledger/proof/{index}", world["tokens"]["a"]).status_code == 200
    beyond = _get(world, f"/ledger/proof/{ledger.size}", world["tokens"]["a"])
    assert beyond.status_code == 404
    assert f"0 to {ledger.size - 1}" in beyond.json()["error"]
    for bad in ("01", "-1", "x", "", "1/2", "1?x=1", "99999999999999999999"):
        response = _get(world, f"/ledger/proof/{bad}", world["tokens"]["a"])
        assert response.status_code in (400, 404), (bad, response.status_code)
        assert response.json()["error"]


def test_slices_and_proofs_are_in_the_access_log_without_tokens(world: dict[str, Any]) -> None:
    token = world["tokens"]["a"]
    assert _get(world, "/runs/run-a/slice?start=1&end=2", token).status_code == 200
    assert _get(world, "/runs/run-a/slice?start=1&end=2").status_code == 401
    assert _get(world, "/ledger/proof/0", token).status_code == 200
    text = (world["root"] / "access.log").read_text()
    assert token not in text
    assert "start=" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    slices = [line for line in lines if line["path"] == "/runs/run-a/slice"]
    assert {(line["reader"], line["status"]) for line in slices} >= {("lp-a", 200), (None, 401)}
    assert any(line["path"] == "/ledger/proof/0" and line["reader"] == "lp-a" for line in lines)


def test_slices_and_proofs_are_rate_limited_per_reader(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    build_log(runs / "run-a", batches=2, run_id="run-a")
    readers = tmp_path / "readers.json"
    first = add_reader(readers, "first", bodies=True)
    second = add_reader(readers, "second")
    config = ServeConfig(runs=runs, readers=Readers.load(readers), boot_key=fake_boot_key,
                         proof_burst=2, proof_per_s=0.01)
    with RunningServer(config) as server:
        def get(token: str) -> httpx.Response:
            return httpx.get(server.url + "/runs/run-a/slice?start=1&end=3", timeout=10,
                             headers={"Authorization": f"Bearer {token}"})

        assert [get(first).status_code for _ in range(3)] == [200, 200, 429]
        limited = get(first)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert get(second).status_code == 200  # per reader
        assert httpx.get(server.url + "/runs", timeout=10).status_code == 200  # still up


def test_a_client_holding_an_older_checkpoint_reads_the_tiles_of_its_size(
        world: dict[str, Any]) -> None:
    from tests.serve.support import IndependentTlogClient
    from zcbench.auditlog.follow import LogFollower

    # the server followed run-a's seven checkpoints in one sync: each one's tiles are served
    notes = [(n, c) for n, c in LogFollower(world["a"].log).poll().checkpoints if c.size]
    assert len(notes) == 7
    for note, checkpoint in notes:
        def get(path: str, note: bytes = note) -> bytes:
            if path == "checkpoint":
                return note
            response = _get(world, f"/runs/run-a/{path}")
            assert response.status_code == 200, (path, response.text)
            return response.content

        size, signed, computed = IndependentTlogClient(get).recompute_root(
            world["a"].signer.public_key_spki_der)
        assert (size, computed) == (checkpoint.size, signed)


@pytest.mark.parametrize("flags", [
    ["--slice", "5"], ["--slice", "3:3"], ["--slice", "4:2"], ["--slice=-1:2"],
    ["--slice", "a:b"], ["--slice-out", "kept.slice"],
])
def test_verify_remote_refuses_a_bad_slice_before_any_request(
        flags: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from zcbench.cli import main

    # port 9 (discard) is never asked: the arguments are refused first, as usage (exit 2)
    (tmp_path / "commitment.json").write_text("{}")
    assert main(["verify", "remote", "http://127.0.0.1:9", "--commitment",
                 str(tmp_path / "commitment.json"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zcbench: ")
    assert "--slice" in err
