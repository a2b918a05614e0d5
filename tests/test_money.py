"""One representation of money (int ticks of 1/10,000 currency unit) and one way to show it."""

from __future__ import annotations

from decimal import Decimal
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
