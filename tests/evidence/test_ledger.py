"""``zcbench evidence --ledger``: the algorithm inventory as the strategy's ledger holds it
(every PCR0 announced, valid from, revoked, and the runs under it) and its archive entries, from
a real local run archived into a real SeaweedFS server with ``--ledger``; every printed
re-verify command passes, ``zcbench ledger verify`` among them, and a ledger that does not
verify is refused."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
from pathlib import Path

import polars as pl
import pytest

from tests._seaweed import SeaweedS3
from tests.live_world import LiveWorld
from zcbench.auditlog.checkpoint import log_origin, log_verifier
from zcbench.cli import main
from zcbench.ledger import Ledger
from zcbench.ledger.entries import RunStartEntry
from zcbench.nitro import parse_document

pytestmark = pytest.mark.slow

NEXT = hashlib.sha384(b"the next build").digest()


def _ledger_of(run: Path, folder: Path) -> tuple[Path, str, str]:
    document = (run / "boot.cbor").read_bytes()
    parsed = parse_document(document)
    pcr0 = bytes(parsed.pcrs[0])
    assert parsed.public_key is not None
    origin = log_origin(pcr0, json.loads((run / "summary.json").read_text())["run_id"])
    with Ledger.init_insecure_host_key(
            folder, origin="acme.example/zcbench/demo", genesis_pcr0=pcr0,
            commitment_sha256=b"\x01" * 32) as ledger:
        ledger.append(RunStartEntry(pcr0, origin, log_verifier(bytes(parsed.public_key),
                                                               origin).vkey,
                                    hashlib.sha256(document).digest(), None))
        ledger.announce(NEXT, b"\x02" * 32, notice_ns=7 * 86_400 * 10**9)
        ledger.revoke(NEXT, reason="withdrawn before its notice ran out")
    return folder, pcr0.hex(), origin


def test_pack_with_the_ledger_holds_its_inventory_and_archive_entries(
    seaweed: SeaweedS3, live_world: LiveWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = live_world.copy_to(tmp_path)
    monkeypatch.setenv("ZCBENCH_HOME", str(world.home))
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    run = world.run
    ledger, pcr0, origin = _ledger_of(run, tmp_path / "ledger")
    assert main(["archive", str(run), "--s3", seaweed.endpoint, "--bucket", "ledger-records",
                 "--retain-days", "1900", "--ledger", str(ledger)]) == 0
    capsys.readouterr()
    pack = tmp_path / "pack"
    assert main(["evidence", str(run), "--out", str(pack), "--trust", "dev", "--ledger",
                 str(ledger)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    commands = [line.strip() for line in lines[lines.index("Re-verify each file with:") + 1:]]

    versions = pl.read_parquet(pack / "ledger_versions.parquet")
    assert versions["pcr0"].to_list() == [pcr0, NEXT.hex()]
    assert versions["runs"].to_list() == [origin, ""]
    assert versions["revoked_utc"][0] == ""
    assert versions["revoked_utc"][1] != ""
    assert versions["valid_from_utc"][1] > versions["announced_utc"][1]  # the notice period
    assert versions["revocation_index"].to_list() == [None, 3]
    held = pl.read_parquet(pack / "ledger_archives.parquet")
    manifest = json.loads((run / "archive.json").read_text())
    objects = manifest["archives"][0]["objects"]
    assert sorted(zip(held["key"], held["version_id"], held["sha256"], strict=True)) == sorted(
        (o["key"], o["version_id"], o["sha256"]) for o in objects)
    assert set(held["run_origin"]) == {origin}
    assert "Algorithm inventory in the ledger" in (pack / "index.html").read_text()

    assert f"zcbench ledger verify {ledger}" in commands
    assert any("archive verify" in c and f"--ledger {ledger}" in c for c in commands)
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, (command, capsys.readouterr())

    # a pack built over a damaged ledger is refused; the built pack then fails to re-verify
    damaged = tmp_path / "damaged"
    shutil.copytree(ledger, damaged)
    segment = sorted((damaged / "log").glob("seg-*.zlog"))[0]
    data = bytearray(segment.read_bytes())
    data[-40] ^= 1
    segment.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["evidence", str(run), "--out", str(tmp_path / "pack2"), "--trust", "dev",
                 "--ledger", str(damaged)]) == 1
    assert "does not verify" in capsys.readouterr().err
    assert not (tmp_path / "pack2").exists()
