"""``zcbench backtest``: defaults, --json, --synthetic, --out, and errors as exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from zcbench.cli import main


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object on one line
    doc: dict[str, object] = json.loads(out)
    return doc


def test_default_runs_the_daily_example_on_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest"]) == 0
    out = capsys.readouterr().out
    assert "ma_crossover" in out
    assert "7983 events" in out
    assert "sharpe" in out


def test_synthetic_json_and_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = [
        "backtest",
        "--synthetic",
        "--duration",
        "1",
        "--rate",
        "10000",
        "--seed",
        "3",
        "--width-ms",
        "20",
        "--param",
        "window=2",
        "--param",
        "enter_pct=10",
        "--fee-bps",
        "0.5",
        "--out",
        str(tmp_path / "r"),
        "--json",
    ]
    doc = _json(capsys, argv)
    assert doc["strategy"] == "order_flow_imbalance"
    assert doc["params"] == {"window": 2, "enter_pct": 10, "exit_pct": 3, "quantity": 100}
    assert doc["n_events"] == 10_000
    assert doc["config"]["width_ns"] == 20_000_000  # type: ignore[index]
    metrics = doc["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["n_signals"] > 0
    again = _json(capsys, argv)
    assert again["signals_digest"] == doc["signals_digest"]
    written = Path(str(doc["out"]))
    assert json.loads((written / "summary.json").read_text())["metrics"] == metrics
    equity = pl.read_parquet(written / "equity.parquet")
    assert equity.height == metrics["n_batches"]


def test_data_file_of_events(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from zcbench.marketdata import SyntheticConfig, write_ticks

    path = write_ticks(SyntheticConfig(rate=5_000, duration_s=1.0), tmp_path / "t.parquet", seed=1)
    doc = _json(capsys, ["backtest", "--data", str(path), "--count", "100", "--json"])
    assert doc["data"] == {"path": str(path)}
    assert doc["metrics"]["n_batches"] == 50  # type: ignore[index]


def test_bad_input_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1.5,10\n2020-01-01,1,2,1,1,1\n"
    )
    assert main(["backtest", "--data", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "row 2" in err
    assert "'Date'" in err
    assert main(["backtest", "--param", "fast=60"]) == 2
    assert "fast < slow" in capsys.readouterr().err
    assert main(["backtest", "--param", "nope"]) == 2
    assert main(["backtest", "--strategy", "nope"]) == 2
    assert main(["backtest", "--synthetic", "--rate", "0"]) == 2
    with pytest.raises(SystemExit) as info:
        main(["backtest", "--count", "1", "--width-ms", "5"])
    assert info.value.code == 2


def test_unwritable_out_is_an_environment_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = ["backtest", "--synthetic", "--duration", "0.2", "--out", str(blocker / "sub")]
    assert main(argv) == 3
    assert "cannot write" in capsys.readouterr().err


def test_synthetic_settings_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"symbols": ["X", "Y"], "rate": 4000.0, "duration_s": 0.5}))
    argv = ["backtest", "--synthetic-config", str(settings), "--json"]
    doc = _json(capsys, argv)
    assert doc["n_events"] == 2000
    assert doc["data"]["synthetic"]["symbols"] == ["X", "Y"]  # type: ignore[index]
    doc = _json(capsys, [*argv, "--duration", "1"])
    assert doc["n_events"] == 4000
