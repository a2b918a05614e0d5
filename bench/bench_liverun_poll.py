"""Live panel poll benchmark: what one poll of the live-run panel costs late in a long run.

One real local run (the tick example strategy, 200-event batches, as fast as possible) makes a
log and a journal. Then, at the run's end:

1. the panel's poll as it is: read the journal from where the last poll ended (the last
   batch's rows are new), and turn the new orders into chart signals;
2. the baseline, the poll as it was before: walk the whole signed log and decode every OUT
   record's signals (done on every poll, so a run's polls cost O(run length²) in all).

Both are timed at the end of a run and of a run twice as long: the first stays flat, the second
grows with the run. Run: ``python bench/bench_liverun_poll.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import zcbench.examples.order_flow as order_flow
from zcbench.auditlog.frame import iter_records
from zcbench.host.execution import JOURNAL_FILE, read_journal
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.sources import market_source
from zcbench.marketdata import BatchSpec
from zcbench.strategy import decode_signals
from zcbench.widgets._localrun import _RunWatcher

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_live import _per_call  # one timing helper for the benchmarks


def _full_walk(run_dir: Path) -> int:
    """The old poll: every record from the start, OUT bodies decoded."""
    signals = 0
    for record, _ in iter_records(run_dir):
        if record.kind == "out":
            signals += len(decode_signals(record.body))
    return signals


def _measure(tmp: Path, name: str, duration: float, spec: BatchSpec, n: int) -> tuple[float, float]:
    run_dir = tmp / name
    market = market_source(spec, rate=20_000.0, duration_s=duration, seed=7)
    t = time.perf_counter()
    summary = run_live(ModuleImage(Path(order_flow.__file__)), run_dir, market.source)
    print(f"{name}: {summary.status}, {summary.batches:,} batches, {summary.log_size:,} records, "
          f"{summary.orders:,} orders in {time.perf_counter() - t:.1f} s")
    seqs = read_journal(run_dir).rows["seq"].to_list()
    lines = (run_dir / JOURNAL_FILE).read_bytes().splitlines(keepends=True)
    # the last poll's offset: where the last batch's rows start (they are what is new)
    offset = sum(len(line) for line in lines[: 1 + seqs.index(seqs[-1])])
    watcher = _RunWatcher(run_dir, market.events, spec, lambda _s: None, None, market.account)

    def poll() -> None:
        watcher.journal_end = offset
        watcher.signals.clear()
        watcher._tail_journal()

    new = _per_call(poll, 10 * n)
    old = _per_call(lambda: _full_walk(run_dir), n)
    before = watcher.rows_read
    poll()
    print(f"  one poll reads {watcher.rows_read - before} journal rows (the last batch's); "
          f"the whole-log poll reads {summary.log_size:,} records")
    print(f"  poll now {new * 1e3:.2f} ms; the whole-log poll {old * 1e3:.1f} ms; "
          f"ratio {old / new:,.0f}x")
    return new, old


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    duration = 3.0 if args.quick else 30.0
    spec = BatchSpec(count=200)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        os.environ.setdefault("ZCBENCH_HOME", str(tmp / "home"))
        n = 2 if args.quick else 5
        new_1, old_1 = _measure(tmp, "run", duration, spec, n)
        new_2, old_2 = _measure(tmp, "run twice as long", 2 * duration, spec, n)
        print(f"growth with the run's length (2x): poll now {new_2 / new_1:.2f}x, "
              f"the whole-log poll {old_2 / old_1:.2f}x (a bounded poll stays near 1x)")
        print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
