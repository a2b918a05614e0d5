"""``zcbench run``'s numeric flags: out-of-range values are usage errors named by their flag,
never replaced by defaults, never in internal names; one builder of a run's data source."""

from __future__ import annotations

from pathlib import Path

import pytest

from zcbench.cli import main
from zcbench.errors import UsageError
from zcbench.host.proxy import LiveSource, ReplaySource
from zcbench.host.sources import SYNTHETIC, market_source
from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks, write_events


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--duration", "0"], "--duration"),
        (["--duration", "-5"], "--duration"),
        (["--duration", "nan"], "--duration"),
        (["--rate", "0"], "--rate"),
        (["--rate", "-1"], "--rate"),
        (["--synthetic", "--rate", "inf"], "--rate"),
        (["--data", "x.csv", "--rate", "0"], "--rate"),
        (["--max-delay-ms", "-1"], "--max-delay-ms"),
        (["--snapshot-every", "-1"], "--snapshot-every"),
        (["--max-position", "-1"], "--max-position"),
        (["--price-collar-bps", "-3"], "--price-collar-bps"),
        (["--initial-cash", "0"], "--initial-cash"),
        (["--initial-cash", "nan"], "--initial-cash"),
        (["--leverage", "0.5"], "--leverage"),
        (["--short-margin", "0"], "--short-margin"),
    ],
)
def test_out_of_range_flags_are_usage_errors_named_by_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    code = main(["run", str(tmp_path / "build"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1
    assert flag in err
    for internal in ("SyntheticConfig", "RiskLimits", "duration_s", "Traceback"):
        assert internal not in err
    assert not (tmp_path / "build").exists()


def test_synthetic_settings_errors_name_no_type() -> None:
    for bad in ({"rate": 0}, {"duration_s": -1.0}, {"nope": 1}, {"rate": "fast"}):
        with pytest.raises(UsageError) as info:
            SyntheticConfig.from_dict(bad)
        assert "SyntheticConfig" not in str(info.value)
        assert str(info.value).startswith("synthetic data: ")


def test_one_data_source_builder_for_synthetic_and_files(tmp_path: Path) -> None:
    spec = BatchSpec(count=100)
    default = market_source(spec, seed=3)
    assert default.name == SYNTHETIC
    assert isinstance(default.source, ReplaySource)
    # "synthetic" is SyntheticConfig's defaults with the rate and duration given
    want = generate_ticks(SyntheticConfig(rate=1000.0, duration_s=2.0), seed=3)
    got = market_source(spec, rate=1000.0, duration_s=2.0, seed=3)
    assert got.events.equals(want)
    assert market_source(spec, data=SYNTHETIC, rate=1000.0, duration_s=2.0, seed=3).events.equals(
        want
    )
    live = market_source(spec, rate=1000.0, duration_s=2.0, seed=3, live=True)
    assert isinstance(live.source, LiveSource)
    assert sum(c.height for c in live.source._chunks) == want.height  # type: ignore[attr-defined]
    path = write_events(want, tmp_path / "ticks.parquet")
    cut = market_source(spec, data=path, duration_s=1.0)
    assert 0 < cut.events.height < want.height
    assert int(cut.events["ts"].max()) < int(want["ts"][0]) + 1_000_000_000
    with pytest.raises(UsageError, match="synthetic data only"):
        market_source(spec, data=path, rate=5.0)
    with pytest.raises(UsageError, match="speed must be a positive"):
        market_source(spec, speed=0.0)


def test_run_counts_its_capital_in_the_datas_unit_of_money_as_the_backtest() -> None:
    """``--initial-cash`` becomes the capital in the unit the backtest's account counts in: the
    finest price unit of the data's instruments (the sample's MSFT is quoted to 1/100,000)."""
    from zcbench.host.sources import account_of
    from zcbench.marketdata import load_ohlcv, sample_daily_path
    from zcbench.runsettings import RunSettings

    settings = RunSettings(initial_cash=1_000.5)  # what --initial-cash 1000.5 gives
    msft = account_of(load_ohlcv(sample_daily_path()))
    assert settings.capital(msft) == 100_050_000
    assert (msft.units, msft.money_scale) == ({"MSFT": 1}, 100_000)
    ticks = account_of(generate_ticks(SyntheticConfig(rate=1000.0, duration_s=0.1), seed=3))
    assert (settings.capital(ticks), ticks.money_scale) == (10_005_000, 10_000)
    assert set(ticks.units.values()) == {1}


def test_the_flags_defaults_are_the_one_definition_of_a_runs_defaults() -> None:
    """`zcbench run` with no flag is RUN_DEFAULTS (the live panel's settings too), and each flag
    changes its one setting."""
    from zcbench.cli import build_parser
    from zcbench.cli.run import _settings
    from zcbench.runsettings import RUN_DEFAULTS, RunSettings

    parser = build_parser()
    assert _settings(parser.parse_args(["run", "build"])) == RUN_DEFAULTS
    assert (RUN_DEFAULTS.venue, RUN_DEFAULTS.feedback) == ("paper", True)
    given = parser.parse_args([
        "run", "build", "--no-feedback", "--venue", "fix://127.0.0.1:9878", "--initial-cash",
        "5000", "--max-delay-ms", "20", "--snapshot-every", "0", "--clock", "clockbound",
        "--operator", "ops"])
    assert _settings(given) == RunSettings(
        venue="fix://127.0.0.1:9878", feedback=False, initial_cash=5000.0, max_delay_ms=20.0,
        snapshot_every_s=0.0, clock="clockbound", operator="ops")
