"""The research record and the deflated Sharpe ratio: a hand-checked DSR, a deterministic and
durable record, strict reading (every alteration refused), and the summary a build commits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from zcbench.backtest import BacktestConfig, load_research_record, research_summary, sweep
from zcbench.backtest._metrics import deflated_sharpe_ratio, expected_max_sharpe
from zcbench.backtest._research import parse_record
from zcbench.errors import DataError, UsageError
from zcbench.examples import OrderFlowImbalance
from zcbench.marketdata import SyntheticConfig, generate_ticks

CONFIG = BacktestConfig(width_ns=50_000_000, fee_bps=0.2)
GRID = {"window": [2, 4], "enter_pct": [2, 10, 20]}
BASE = {"exit_pct": 3}


def test_deflated_sharpe_single_trial_is_the_probabilistic_sharpe_by_hand() -> None:
    # N = 1: SR0 = 0. SR 0.1 over T = 101 normal returns (skew 0, kurtosis 3):
    # spread = 1 - 0 + (3 - 1) / 4 * 0.01 = 1.005; z = 0.1 * sqrt(100) / sqrt(1.005) = 0.997509
    # Z(0.997509) = Z(1) - 0.002491 * phi(1) = 0.8413447 - 0.002491 * 0.2419707 = 0.840742
    assert expected_max_sharpe(1, 0.7) == 0.0
    dsr = deflated_sharpe_ratio(0.1, n_trials=1, trials_variance=0.0, n_obs=101, skewness=0.0,
                                kurtosis=3.0)
    assert dsr == pytest.approx(0.840742, abs=2e-6)


def test_deflated_sharpe_hundred_trials_by_hand() -> None:
    # N = 100, V = 0.0025 (sd 0.05): Z^-1(1 - 1/100) = 2.326348, Z^-1(1 - 1/(100 e)) = 2.680200
    # (tail 0.0036788); SR0 = 0.05 * (0.4227843 * 2.326348 + 0.5772157 * 2.680200) = 0.126530
    sr0 = expected_max_sharpe(100, 0.0025)
    assert sr0 == pytest.approx(0.126530, abs=2e-6)
    # SR 0.2, T 251, skew -0.5, kurtosis 5: spread = 1 + 0.1 + 1.0 * 0.04 = 1.14
    # z = (0.2 - 0.126530) * sqrt(250) / sqrt(1.14) = 0.073470 * 15.811388 / 1.067708 = 1.088000
    # Z(1.088) = 0.861702
    dsr = deflated_sharpe_ratio(0.2, n_trials=100, trials_variance=0.0025, n_obs=251,
                                skewness=-0.5, kurtosis=5.0)
    assert dsr == pytest.approx(0.861702, abs=2e-5)
    # more trials, same Sharpe: a higher bar, a lower DSR; negative skew lowers it too
    assert deflated_sharpe_ratio(0.2, n_trials=10_000, trials_variance=0.0025, n_obs=251,
                                 skewness=-0.5, kurtosis=5.0) < dsr  # type: ignore[operator]
    assert deflated_sharpe_ratio(0.2, n_trials=100, trials_variance=0.0025, n_obs=251,
                                 skewness=0.5, kurtosis=5.0) > dsr  # type: ignore[operator]


def test_deflated_sharpe_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, 1.0)
    with pytest.raises(ValueError, match="variance"):
        expected_max_sharpe(3, math.nan)
    assert deflated_sharpe_ratio(0.1, n_trials=2, trials_variance=0.1, n_obs=1, skewness=0,
                                 kurtosis=3) is None
    # a spread of 1 - 10 * 1 + ... < 0: no estimate
    assert deflated_sharpe_ratio(1.0, n_trials=2, trials_variance=0.1, n_obs=50, skewness=10,
                                 kurtosis=3) is None


@pytest.fixture(scope="module")
def ticks() -> pl.DataFrame:
    return generate_ticks(SyntheticConfig(rate=3_000, duration_s=2.0), seed=11)


@pytest.fixture(scope="module")
def record_path(ticks: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("research") / "research.json"
    sweep(OrderFlowImbalance, GRID, ticks, CONFIG, base_params=BASE, serial=True,
          show_progress=False, record=path)
    return path


def test_record_is_deterministic_and_complete(
    record_path: Path, ticks: pl.DataFrame, tmp_path: Path
) -> None:
    again = tmp_path / "again.json"
    sweep(OrderFlowImbalance, GRID, ticks, CONFIG, base_params=BASE, serial=True,
          show_progress=False, record=again)
    assert again.read_bytes() == record_path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["again.json"]  # no temporary file left
    rec = load_research_record(record_path)
    doc = rec.doc
    assert (doc["kind"], doc["strategy"]) == ("sweep", "order_flow_imbalance")
    assert (rec.n_trials, doc["n_failed"]) == (6, 2)  # enter_pct 2 < exit_pct 3
    assert (doc["grid"], doc["base_params"]) == (GRID, BASE)
    assert doc["distribution"]["count"] == 4
    assert doc["distribution"]["min"] <= doc["distribution"]["median"] <= doc["distribution"]["max"]
    assert [t["params"] for t in rec.trials] == [
        {"window": w, "enter_pct": e} for w in (2, 4) for e in (2, 10, 20)
    ]
    other = generate_ticks(SyntheticConfig(rate=3_000, duration_s=2.0), seed=12)
    third = tmp_path / "other-data.json"
    sweep(OrderFlowImbalance, GRID, other, CONFIG, base_params=BASE, serial=True,
          show_progress=False, record=third)
    assert load_research_record(third).doc["data_sha256"] != doc["data_sha256"]


def test_record_alterations_are_refused(record_path: Path) -> None:
    raw = record_path.read_bytes()
    doc = json.loads(raw)
    for change in (
        lambda d: d.update(n_trials=d["n_trials"] - 1),
        lambda d: d["trials"].pop(),
        lambda d: d["trials"][1].update(sharpe=99.0),
        lambda d: d.update(schema="zcbench.research/0"),
        lambda d: d.update(digest="0" * 64),
        lambda d: d.pop("data_sha256"),
        lambda d: d.update(kind="guess"),
    ):
        altered = json.loads(raw)
        change(altered)
        with pytest.raises(DataError):
            parse_record(json.dumps(altered).encode())
    with pytest.raises(DataError, match="twice"):
        parse_record(raw[:-2] + b', "kind": "sweep"}\n')
    with pytest.raises(DataError):
        parse_record(raw[: len(raw) // 2])
    with pytest.raises(UsageError):
        load_research_record(record_path.with_name("missing.json"))
    assert parse_record(json.dumps(doc).encode()).digest == doc["digest"]


def test_summary_counts_trials_and_deflates_the_packaged_point(record_path: Path) -> None:
    rec = load_research_record(record_path)
    params = {"window": 4, "enter_pct": 10, "exit_pct": 3, "quantity": 100}
    summary = research_summary([rec], strategy="order_flow_imbalance", params=params)
    assert summary["n_trials"] == 6
    assert summary["records"][0]["digest"] == rec.digest
    assert summary["selected"]["params"] == {"window": 4, "enter_pct": 10}
    chosen = next(t for t in rec.trials if t["params"] == {"window": 4, "enter_pct": 10})
    ok = [t["sharpe_per_period"] for t in rec.trials if t["error"] is None]
    mean = sum(ok) / len(ok)
    variance = sum((x - mean) ** 2 for x in ok) / (len(ok) - 1)
    assert summary["trials_sharpe_variance"] == pytest.approx(variance)
    assert summary["deflated_sharpe"] == pytest.approx(
        deflated_sharpe_ratio(chosen["sharpe_per_period"], n_trials=6, trials_variance=variance,
                              n_obs=chosen["n_obs"], skewness=chosen["skewness"],
                              kurtosis=chosen["kurtosis"])
    )
    # two records: the trials add up
    assert research_summary([rec, rec], strategy="order_flow_imbalance",
                            params=params)["n_trials"] == 12
    with pytest.raises(DataError, match="not on the packaged"):
        research_summary([rec], strategy="ma_crossover", params=params)
    with pytest.raises(DataError, match="no point"):
        research_summary([rec], strategy="order_flow_imbalance", params={**params, "window": 3})
    with pytest.raises(DataError, match="no point"):  # a refused point is no candidate
        research_summary([rec], strategy="order_flow_imbalance", params={**params, "enter_pct": 2})


def test_the_record_is_written_as_every_output_into_a_pipe_too(
    record_path: Path, tmp_path: Path
) -> None:
    # write_output: a pipe (--record /dev/stdout, a FIFO) is written into, never renamed over
    import os
    import threading

    from zcbench.backtest._research import write_record

    fifo = tmp_path / "record.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_record(fifo, json.loads(record_path.read_bytes()))
    reader.join(timeout=60)
    assert got == [record_path.read_bytes()]
    assert fifo.is_fifo()
    assert (record_path.stat().st_mode & 0o777) == 0o644  # a record is for others to read
