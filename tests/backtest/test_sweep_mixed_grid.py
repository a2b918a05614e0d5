"""A grid whose values mix types (``--param slow=20,25.5`` or ``fast=5,x``) builds its table:
the bad point is reported as a failed trial, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from zcbench.backtest._sweep import Grid
from zcbench.cli import main


def test_mixed_int_and_float_values_make_one_float_column() -> None:
    frame = Grid.of({"slow": [20, 25.5]}).frame()
    assert frame["slow"].to_list() == [20.0, 25.5]


def test_a_non_numeric_value_is_a_failed_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["sweep", "--serial", "--param", "fast=5,x"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert code == 0, captured.err
    assert 'failed     {"fast": "x"}' in captured.out
