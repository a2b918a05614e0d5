"""One representation of money (int ticks of 1/10,000 currency unit) and one way to show it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from zcbench.money import MONEY_UNIT, format_money, money


@pytest.mark.parametrize(
    ("ticks", "text"),
    [
        (1_275_000, "127.50 currency units"),
        (185_000, "18.50 currency units"),
        (-185_000, "-18.50 currency units"),
        (5, "0.0005 currency units"),
        (0, "0.00 currency units"),
        (123_456_789, "12,345.6789 currency units"),
    ],
)
def test_format_money_is_exact_grouped_and_names_its_unit(ticks: int, text: str) -> None:
    assert format_money(ticks) == text
    assert money(ticks) == Decimal(ticks) / 10_000


def test_signed_and_unitless_forms() -> None:
    assert format_money(125_000, signed=True, unit=False) == "+12.50"
    assert format_money(-30_000, signed=True) == f"-3.00 {MONEY_UNIT}"
    assert format_money(0, signed=True, unit=False) == "0.00"
    with pytest.raises(TypeError):
        money(1.5)  # type: ignore[arg-type]


def test_the_run_summary_json_names_money_in_ticks() -> None:
    from dataclasses import fields

    from zcbench.host.live import RunSummary

    values = {f.name: 0 for f in fields(RunSummary)}
    values.update(pnl=185_000, positions={}, freshness_histogram={}, attestation=None)
    out = RunSummary(**values).to_json()  # type: ignore[arg-type]
    assert out["pnl_ticks"] == 185_000
    assert "pnl" not in out


def test_the_report_shows_pnl_with_the_one_formatter() -> None:
    from zcbench.report._lp import _run_html

    report = SimpleNamespace(
        summary={"status": "completed", "pnl_ticks": 1_275_000}, journal=None,
        journal_problem=None,
    )
    html = _run_html(report)  # type: ignore[arg-type]
    assert "+127.50 currency units" in html
    assert "ticks" not in html.replace("pnl_ticks", "")


def test_the_report_shows_pnl_in_the_currency_and_unit_the_run_recorded() -> None:
    from zcbench.report._lp import _run_html

    summary = {"status": "completed", "pnl_ticks": 1_275_000, "currency": "EUR",
               "money_scale": 100_000, "units": {"EURUSD": 1}}
    report = SimpleNamespace(summary=summary, journal=None, journal_problem=None)
    html = _run_html(report)  # type: ignore[arg-type]
    assert "+12.75 EUR" in html
    assert "currency unit" not in html
    # a killed host's run: no summary, the journal's header (written at the start) says it
    header = {"schema": "zcbench.journal/1", "currency": "USD", "money_scale": 10**8,
              "units": {"BTCUSD": 1}}
    killed = SimpleNamespace(summary={"status": "unfinished", "pnl_ticks": 5},
                             journal=SimpleNamespace(header=header, rows=_no_rows(), torn=None),
                             journal_problem=None)
    assert "+0.00000005 USD" in _run_html(killed)  # type: ignore[arg-type]


def _no_rows() -> object:
    import polars as pl

    return pl.DataFrame({"event": []}, schema={"event": pl.String})


def test_an_account_scale_and_currency_are_shown_by_the_same_formatter() -> None:
    assert format_money(123_456_789, scale=10**8, currency="BTC") == "1.23456789 BTC"
    assert format_money(-250, scale=100, currency="USD", signed=True) == "-2.50 USD"
    assert format_money(1_275_000, currency="USD") == "127.50 USD"
    assert money(5, scale=10**8) == Decimal("0.00000005")
    with pytest.raises(ValueError, match="power of ten"):
        money(1, scale=12)


@pytest.mark.slow
def test_the_backtest_table_shows_exact_money_through_the_one_formatter(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The backtest CLI has no money formatter of its own: its amounts are the ledger's exact
    integers shown by format_money, in the instruments' currency."""
    import json

    import polars as pl

    import zcbench.cli.backtest as cli_backtest
    from zcbench.cli import main

    assert not hasattr(cli_backtest, "money")
    assert main(["backtest", "--fee-bps", "1.5", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    equity = pl.read_parquet(tmp_path / "o" / "equity.parquet").get_column("equity")
    fills = pl.read_parquet(tmp_path / "o" / "fills.parquet")
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    scale, ccy = summary["money_scale"], summary["currency"]
    initial = 1_000_000 * scale
    final, fees = int(equity[-1]), int(fills.get_column("fee").sum())
    assert fees > 0
    line = next(x for x in out.splitlines() if x.startswith("capital "))
    shown = (
        f"{format_money(initial, scale=scale, currency=ccy)} -> "
        f"{format_money(final, scale=scale, currency=ccy)}   "
        f"pnl {format_money(final - initial, signed=True, scale=scale, currency=ccy)}   "
        f"fees {format_money(fees, scale=scale, currency=ccy)}"
    )
    assert line.split(None, 1)[1] == shown


def test_a_fine_amount_is_written_out_not_in_exponent_form() -> None:
    # an account of 1/10^8 (an eight-decimal instrument): 5 units were shown as "5E-8"
    assert format_money(-5, scale=10**8, currency="USD") == "-0.00000005 USD"
    assert format_money(1, signed=True, scale=10**8, currency="USD") == "+0.00000001 USD"
