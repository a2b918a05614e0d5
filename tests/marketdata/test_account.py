"""An account (currency, unit of money, units per symbol): made by one rule for the backtest and
the live run, recorded by a run and read back strictly."""

from __future__ import annotations

from typing import Any

import pytest

from zcbench.errors import DataError
from zcbench.host.summary import recorded_account, run_account
from zcbench.marketdata import Account, default_instruments


def test_the_account_of_mixed_ticks_counts_in_the_finest() -> None:
    account = default_instruments().account(["AAA", "EURUSD"])
    assert (account.currency, account.money_scale) == ("USD", 100_000)
    assert account.units == {"AAA": 10, "EURUSD": 1}
    assert account.price_scale_of("AAA") == 10_000
    assert default_instruments().account(["BTCUSD", "AAA"]).units == {"AAA": 10_000, "BTCUSD": 1}
    assert Account.from_json(account.to_json(), source="s") == Account(
        currency="USD", money_scale=100_000, units={"AAA": 10, "EURUSD": 1})


@pytest.mark.parametrize("bad", [
    {"currency": "usd", "money_scale": 10_000, "units": {}},
    {"currency": "USD", "money_scale": 12_000, "units": {}},
    {"currency": "USD", "money_scale": True, "units": {}},
    {"currency": "USD", "money_scale": 10_000, "units": {"A": 0}},
    {"currency": "USD", "money_scale": 10_000, "units": {"A": 100_000}},
    {"currency": "USD", "money_scale": 10_000, "units": [1]},
    {"currency": "USD"},
])
def test_a_malformed_record_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(DataError, match=r"run/summary\.json"):
        Account.from_json(bad, source="run/summary.json")


def test_a_run_without_a_record_names_no_account(tmp_path: Any) -> None:
    assert Account.from_json({"status": "completed"}, source="s") is None
    assert run_account(tmp_path) is None
    header = {"schema": "zcbench.journal/1", "currency": "EUR", "money_scale": 10**8,
              "units": {}}
    found = recorded_account({"status": "unfinished"}, header, source="run")
    assert found is not None
    assert (found.currency, found.money_scale) == ("EUR", 10**8)
