"""The evidence pack of a real local run, archived to a real SeaweedFS server: every part is
there, every printed re-verify command passes, and an edited table or run file is caught."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests._seaweed import SeaweedS3
from tests.live_world import LiveWorld
from zcbench.auditlog import events_frame
from zcbench.auditlog.frame import iter_records
from zcbench.cli import main
from zcbench.evidence.clock import is_clock_note

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(live_world: LiveWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's copy of the shared run (archiving writes its manifest beside the run)."""
    return live_world.copy_to(tmp_path_factory.mktemp("evidence")).folder


@pytest.fixture
def archived(world: Path, seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> Path:
    """The run archived once (module state: the manifest stays beside the run)."""
    monkeypatch.setenv("ZCBENCH_HOME", str(world / "home"))
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    run = world / "run"
    if not (run / "archive.json").exists():
        assert main(["archive", str(run), "--s3", seaweed.endpoint, "--bucket",
                     "evidence-records", "--retain-days", "1900"]) == 0
    capsys.readouterr()
    return run


def _commands(out: str) -> list[str]:
    lines = out.splitlines()
    start = lines.index("Re-verify each file with:") + 1
    return [line.strip() for line in lines[start:]]


def test_pack_of_an_archived_run_holds_each_part_and_each_command_verifies(
    archived: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    pack = tmp_path / "pack"
    assert main(["evidence", str(archived), "--out", str(pack), "--trust", "dev"]) == 0
    commands = _commands(capsys.readouterr().out)
    for name in ("runs", "algorithms", "orders", "controls", "control_changes", "control_flags",
                 "control_events", "clock", "performance", "performance_backtest", "archive",
                 "files"):
        csv = pl.read_csv(pack / f"{name}.csv", infer_schema=False)
        assert pl.read_parquet(pack / f"{name}.parquet").height == csv.height
    html = (pack / "index.html").read_text()
    assert "SIMULATED" in html
    assert "RTS 25 limit chosen: algo" in html

    runs = pl.read_parquet(pack / "runs.parquet")
    [pcr0] = runs["pcr0"].to_list()
    assert len(pcr0) == 96
    assert runs["log_verdict"].to_list() == ["intact"]
    algorithms = pl.read_parquet(pack / "algorithms.parquet")
    commitment = json.loads((archived.parent / "build" / "commitment.json").read_text())
    assert algorithms["pcr0"].to_list() == [commitment["pcrs"]["0"]] == [pcr0]

    orders = pl.read_parquet(pack / "orders.parquet")
    journal = [json.loads(line) for line in (archived / "journal.jsonl").read_text().splitlines()]
    assert orders.height == len(journal) - 1 > 0
    assert orders["in_signed_log"].all()
    assert set(orders["pcr0"]) == {pcr0}
    outs = {r.index for r, _ in iter_records(archived) if r.kind == "out"}
    assert set(orders["out_log_index"]) <= outs  # every order names an OUT record

    # the limits in force at the start, from the run's signed start record; no change, no flag
    controls = pl.read_parquet(pack / "controls.parquet")
    assert controls["source"].str.starts_with("signed control record at log index 1").all()
    assert set(controls["control"]) == {"kill_switch", "max_notional", "max_orders_per_s",
                                        "max_position", "price_collar_bps"}
    changes = pl.read_parquet(pack / "control_changes.parquet")
    assert set(changes["action"]) == {"start"}
    assert pl.read_parquet(pack / "control_flags.parquet").height == 0

    # every record's time: its source, and a bound from the run's clock records, or a flag
    clock = pl.read_parquet(pack / "clock.parquet")
    assert clock.height == runs["entries"][0]
    bounded = clock.filter(pl.col("bound_ns").is_not_null())
    assert (bounded["within_limit"] == (bounded["bound_ns"] <= 1_000_000)).all()
    assert (clock.filter(~pl.col("within_limit").fill_null(False))["flag"] != "").all()
    notes = [r for r, _ in iter_records(archived) if r.kind == "note"]
    assert sum(is_clock_note(r.body) for r in notes) >= 2
    spread = json.loads((pack / "pack.json").read_text())["clock_distribution"]
    assert (spread["records"], spread["bounded"], spread["limit_ns"]) == (
        clock.height, bounded.height, 1_000_000)
    assert spread["within"] == bounded["within_limit"].sum()
    assert spread["max_ns"] == (bounded["bound_ns"].max() if bounded.height else None)
    if bounded.height:  # this machine's kernel said it is synchronised
        assert bounded["source"].str.contains("checked against host CLOCK_REALTIME").all()

    backtest = pl.read_parquet(pack / "performance_backtest.parquet")
    assert backtest["n_batches"].to_list() == pl.read_parquet(
        pack / "performance.parquet")["n_batches"].to_list()

    # the run's PnL recomputed here from the signed log alone: verified fills, marked at the
    # last logged price (the execution layer may have marked at quotes the strategy never
    # declared, so the summary's figure is compared, not assumed)
    performance = pl.read_parquet(pack / "performance.parquet")
    events = events_frame(archived)
    last: dict[str, int] = {}
    for symbol, price, bid, ask in events.select(
            "symbol", *(c if c in events.columns else pl.lit(None).alias(c)
                        for c in ("price", "bid", "ask"))).iter_rows():
        mark = price if price is not None else (bid + ask) // 2 if None not in (bid, ask) else None
        if mark:
            last[symbol] = mark
    cash, held = 0, {}
    for row in orders.filter(pl.col("event") == "fill").iter_rows(named=True):
        signed = row["quantity"] if row["side"] == "buy" else -row["quantity"]
        cash -= signed * row["price_ticks"]
        held[row["symbol"]] = held.get(row["symbol"], 0) + signed
    pnl = cash + sum(q * last[s] for s, q in held.items())
    assert performance["pnl_ticks"].to_list() == [pnl]
    summary = json.loads((archived / "summary.json").read_text())
    assert performance["pnl_matches_summary"].to_list() == [pnl == summary["pnl_ticks"]]

    archive = pl.read_parquet(pack / "archive.parquet")
    manifest = json.loads((archived / "archive.json").read_text())
    assert sorted(archive["version_id"]) == sorted(
        o["version_id"] for a in manifest["archives"] for o in a["objects"])

    files = pl.read_parquet(pack / "files.parquet")
    assert set(files["verify_command"]) == set(commands)
    kinds = " ".join(commands)
    for needed in ("zcbench log verify", "zcbench verify attestation", "zcbench archive verify",
                   "zcbench evidence verify"):
        assert needed in kinds
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "zcbench"
        assert main(argv[1:]) == 0, (command, capsys.readouterr())
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=pack, capture_output=True,
                          text=True, check=False)
    assert sums.returncode == 0, sums.stdout + sums.stderr


def test_an_edited_table_or_run_file_fails_the_pack(
    archived: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(archived, run)
    pack = tmp_path / "pack"
    assert main(["evidence", str(run), "--out", str(pack), "--trust", "dev"]) == 0
    csv = pack / "orders.csv"
    csv.write_text(csv.read_text().replace(",buy,", ",sell,", 1))
    capsys.readouterr()
    assert main(["evidence", "verify", str(pack), "--json"]) == 1
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert any(p.startswith("orders.csv: its SHA-256") for p in report["problems"])
    assert "orders.csv differs from a rebuild from the run folders" in report["problems"]

    # a forged journal row: the pack flags it as not in the signed log, and the old pack fails
    journal = run / "journal.jsonl"
    rows = journal.read_text().splitlines()
    forged = json.loads(rows[1])
    forged["quantity"] = forged["quantity"] + 1
    journal.write_text("\n".join([*rows, json.dumps(forged)]) + "\n")
    second = tmp_path / "pack2"
    assert main(["evidence", str(run), "--out", str(second), "--trust", "dev"]) == 0
    orders = pl.read_parquet(second / "orders.parquet")
    assert orders["in_signed_log"].to_list()[-1] is False
    assert orders["in_signed_log"].sum() == orders.height - 1
    assert main(["evidence", "verify", str(pack)]) == 1
    assert "files.csv differs" in capsys.readouterr().out


def test_refusals(archived: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evidence", str(archived), "--out", str(archived / "pack"),
                 "--trust", "dev"]) == 2
    assert "inside the run folder" in capsys.readouterr().err
    assert not (archived / "pack").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    assert main(["evidence", str(archived), "--out", str(tmp_path / "used"),
                 "--trust", "dev"]) == 2
    assert main(["evidence", "verify", str(tmp_path / "used")]) == 2
    assert main(["evidence", str(archived)]) == 2
