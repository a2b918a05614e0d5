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
    for label in ("Sharpe", "Sortino", "Calmar", "CAGR", "profit factor", "buy and hold    MSFT"):
        assert label in out
    assert "1,000,000.00 USD ->" in out  # money in one named unit
    assert "note " not in out  # daily bars: annualised figures need no warning
    assert out.rstrip().splitlines()[-1].startswith("next            zcbench package ")


def test_tick_scale_sharpe_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--synthetic", "--duration", "1"]) == 0
    out = capsys.readouterr().out
    assert "batches a year of event time" in out
    assert "do not read them as yearly figures" in out


@pytest.mark.slow
def test_out_writes_the_plot_and_the_trades(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = _json(capsys, ["backtest", "--out", str(tmp_path / "o"), "--json"])
    assert (tmp_path / "o" / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trades = pl.read_parquet(tmp_path / "o" / "trades.parquet")
    assert trades.height == doc["metrics"]["n_trades"] > 0  # type: ignore[index]
    assert {"entry_ts", "exit_ts", "quantity", "pnl", "return", "duration_s"} <= set(trades.columns)
    assert doc["currency"] == "USD"
    assert set(doc["benchmark"]) == {"MSFT"}  # type: ignore[arg-type]
    assert doc["next"].startswith("zcbench package")  # type: ignore[union-attr]


@pytest.mark.slow
def test_capital_and_instrument_errors_exit_by_the_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for cash in ("0", "-5"):
        assert main(["backtest", "--initial-cash", cash]) == 2
        assert "initial_cash must be positive" in capsys.readouterr().err
    assert main(["backtest", "--leverage", "0.5"]) == 2
    capsys.readouterr()
    table = tmp_path / "instruments.csv"
    table.write_text("symbol,currency,tick_size,lot_size\nABC,USD,0.05,1\n")
    data = tmp_path / "abc_daily.csv"
    data.write_text("Date,Open,High,Low,Close,Volume\n2020-01-01,1.05,1.1,1.0,1.03,5\n")
    assert main(["backtest", "--data", str(data), "--instruments", str(table)]) == 1
    err = capsys.readouterr().err
    assert f"{data}: row 1, column 'Close'" in err
    assert "tick 0.05" in err
    assert err.count("\n") == 1
    other = tmp_path / "xyz_daily.csv"
    other.write_text(data.read_text())
    assert main(["backtest", "--data", str(other), "--instruments", str(table)]) == 1
    assert "unknown instrument 'XYZ'" in capsys.readouterr().err


@pytest.mark.slow
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


_SWEEP = ["--synthetic", "--duration", "1", "--rate", "3000", "--width-ms", "50", "--serial"]


def test_sweep_and_walkforward_explain_the_tick_scale_sharpe_and_name_points_as_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = str(tmp_path / "r.json")
    assert main(["sweep", *_SWEEP, "--record", record, "--param", "enter_pct=10,20"]) == 0
    out = capsys.readouterr().out
    assert "batches a year of event time" in out
    assert "do not read them as yearly figures" in out
    argv = ["walkforward", *_SWEEP, "--record", record, "--param", "enter_pct=10,20",
            "--param", "window=2", "--train", "6", "--test", "4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "do not read them as yearly figures" in out
    assert "enter_pct=" in out  # the point as --param names it
    assert " window=2" in out
    assert "{'" not in out  # never a Python dict
    assert '{"' not in out
    assert main([*argv, "--json"]) == 0
    folds = json.loads(capsys.readouterr().out)["folds"]
    assert all(set(f["params"]) == {"enter_pct", "window"} for f in folds)


def test_sweep_takes_the_capital_and_instrument_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def fills(*extra: str) -> int:
        argv = ["sweep", *_SWEEP, "--record", str(tmp_path / "r.json"), "--json",
                "--param", "enter_pct=5", "--initial-cash", "5000", *extra]
        assert main(argv) == 0
        (row,) = json.loads(capsys.readouterr().out)["rows"]
        return int(row["n_fills"])

    # 100 units at about 100 USD do not fit in 5,000 USD of cash; with leverage 4 they do
    assert fills() < fills("--leverage", "4")
    assert fills("--leverage", "4") < fills("--leverage", "4", "--short-margin", "0.1")
    table = tmp_path / "instruments.csv"
    table.write_text("symbol,currency,tick_size,lot_size\nZZZ,USD,0.01,1\n")
    assert main(["sweep", *_SWEEP, "--record", str(tmp_path / "r.json"),
                 "--param", "enter_pct=5", "--instruments", str(table)]) == 0
    assert "unknown instrument 'AAA'" in capsys.readouterr().out  # the point failed on it
