"""``zcbench run`` has feedback on by default: a packaged crossover whose reversal a notional
limit refuses is told so before its next batch and orders again from the position it holds;
``--no-feedback`` logs no feedback and the strategy never hears of the refusal."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import zcbench.examples.ma_crossover as crossover
from zcbench.auditlog.frame import iter_records
from zcbench.cli import main
from zcbench.marketdata import load_ohlcv, sample_daily_path, write_events
from zcbench.packager import package_notebook
from zcbench.strategy import decode_context, decode_signals, is_context

pytestmark = pytest.mark.slow


def _build(tmp: Path) -> tuple[Path, Path, int]:
    nb = nbformat.v4.new_notebook()
    source = Path(crossover.__file__).read_text()
    source = source.replace("from __future__ import annotations\n", "")
    params = "batch_count = 1\nfast = 3\nslow = 8\nquantity = 100\nallow_short = True"
    nb.cells = [
        nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(source, metadata={"tags": ["strategy"]}),
    ]
    nbformat.write(nb, tmp / "research.ipynb")
    package_notebook(tmp / "research.ipynb", tmp / "build")
    bars = load_ohlcv(sample_daily_path()).slice(2_000, 120)
    top = int(bars.get_column("close").max())  # type: ignore[arg-type]
    write_events(bars, tmp / "bars.parquet")
    # a reversal is 200 units: over the limit; an entry of 100 is within it
    return tmp / "build", tmp / "bars.parquet", 150 * top


def test_run_feeds_back_refusals_by_default_and_not_with_no_feedback(tmp_path: Path) -> None:
    build, bars, limit = _build(tmp_path)
    base = ["run", str(build), "--data", str(bars), "--max-notional", str(limit), "--json"]
    assert main([*base, "--run-dir", str(tmp_path / "on")]) == 0
    records = [r for r, _ in iter_records(tmp_path / "on")]
    outs = {r.seq: r for r in records if r.kind == "out"}
    fed = [r for r in records if r.kind == "in" and is_context(r.body)]
    refusals = [(r, o) for r in fed for o in decode_context(r.body, seq=r.batch_seq).refusals()]
    assert refusals, "the notional limit refused nothing"
    for record, refusal in refusals:
        assert refusal.limit == "max_notional"
        refused = decode_signals(outs[refusal.batch].body)[refusal.signal]
        assert refused.quantity == 200
        if record.index == records[-1].index:  # the last batch's outcomes: no batch follows
            continue
        # the refusal came before the next batch's market data, in that batch's seq ...
        nxt = [r for r in records if r.seq == record.seq]
        assert [r.kind for r in nxt] == ["in", "in", "out"]
        assert refusal.batch == record.seq - 1
        # ... and the strategy, told its position has not moved, orders the reversal again
        # (unless the averages crossed back meanwhile)
        held = decode_context(record.body, seq=record.batch_seq).position(refused.symbol)
        assert held == (100 if refused.side == "sell" else -100)
        again = decode_signals(nxt[2].body)
        assert again in ([], [refused])
    assert main(["log", "verify", str(tmp_path / "on"), "--trust", "dev"]) == 0

    assert main([*base, "--run-dir", str(tmp_path / "off"), "--no-feedback"]) == 0
    off = [r for r, _ in iter_records(tmp_path / "off")]
    assert not [r for r in off if r.kind == "in" and is_context(r.body)]
    # told nothing, it assumes its refused reversal filled and does not order it again
    signals_on = sum(len(decode_signals(r.body)) for r in records if r.kind == "out")
    signals_off = sum(len(decode_signals(r.body)) for r in off if r.kind == "out")
    assert 0 < signals_off < signals_on
