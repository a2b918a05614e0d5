"""Strategy snapshots: what taking them costs a live run, against the same run without them.

The example crossover (fast 3, slow 8) over daily bars, one bar per batch, feedback on the
paper venue (as ``zcbench run`` does), replayed as fast as the enclave takes it:

1. batches/s with snapshots at the default rate (at most one a second, and one at the end) and
   after every batch (``--snapshot-every 0``), each as a ratio to the same run without
   snapshots (``snapshot_every_s=None``), runs interleaved, each kind first in turn, after one
   uncounted warm-up run;
2. in the enclave runtime alone (no boundary, no host): one take + seal + log of the
   crossover's snapshot against one batch's ingest, the median of many;
3. a continuing run's catch-up (at its start, never per batch), in the runtime alone: the
   records of N batches logged after a snapshot checked against the final checkpoint and fed
   to the restored crossover (one ``catch_up`` request), against the ingest of the same N
   batches by the run that logged them, the median of several.

Usage: ``python bench/bench_snapshot.py [--bars N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zcbench.examples.ma_crossover as crossover_module
from zcbench.host import ReplaySource
from zcbench.host.live import ModuleImage, run_live
from zcbench.marketdata import BatchSpec, load_ohlcv, sample_daily_path
from zcbench.venue import PaperVenue

PARAMS = {"fast": 3, "slow": 8, "quantity": 100, "allow_short": True}


def _bars(n: int) -> pl.DataFrame:
    return load_ohlcv(sample_daily_path()).slice(0, n)


def _run(image: ModuleImage, bars: pl.DataFrame, folder: Path, every: float | None) -> float:
    run = folder / f"run-{time.monotonic_ns()}"
    t0 = time.perf_counter()
    summary = run_live(image, run, ReplaySource(bars, BatchSpec(count=1)), venue=PaperVenue(),
                       feedback=True, clock_every_s=None, snapshot_every_s=every)
    elapsed = time.perf_counter() - t0
    assert summary.status == "completed", summary.reason
    shutil.rmtree(run)
    return summary.batches / elapsed


def _in_enclave(n: int) -> tuple[float, float]:
    import datetime as dt

    from zcbench.enclave import EnclaveRuntime
    from zcbench.examples import MACrossover
    from zcbench.nitro import DevCA, NsmEmulator
    from zcbench.strategy import Batch, encode_batch, make_strategy

    now = dt.datetime.now(dt.UTC)
    pcrs = {0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}
    nsm = NsmEmulator(pcrs=pcrs, ca=DevCA.load_or_create(now=now), clock=lambda: now)
    rt = EnclaveRuntime(make_strategy(MACrossover, PARAMS), nsm, pcr0=pcrs[0],
                        state_secret=b"\x07" * 32)
    rt.boot("bench")
    bars = _bars(n).select("ts", "symbol", "close")
    ingest, take = [], []
    for i in range(n):
        data = encode_batch(Batch(i, bars.slice(i, 1)))
        t0 = time.perf_counter()
        rt.ingest(i, data)
        t1 = time.perf_counter()
        rt.snapshot()
        t2 = time.perf_counter()
        ingest.append(t1 - t0)
        take.append(t2 - t1)
    return statistics.median(ingest), statistics.median(take)


def _catch_up(n: int, repeats: int = 5) -> tuple[float, float]:
    """Seconds to ingest ``n`` one-bar batches after a snapshot, and to catch up on them."""
    import datetime as dt

    from zcbench.auditlog.link import RunLink, encode_link
    from zcbench.auditlog.merkle import CompactRange, leaf_hash
    from zcbench.auditlog.records import encode_record
    from zcbench.auditlog.writer import batch_event_time, batch_records
    from zcbench.enclave import EnclaveRuntime
    from zcbench.examples import MACrossover
    from zcbench.nitro import DevCA, NsmEmulator
    from zcbench.strategy import Batch, encode_batch, make_strategy

    now = dt.datetime.now(dt.UTC)
    pcrs = {0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}
    ca = DevCA.load_or_create(now=now)

    def runtime() -> EnclaveRuntime:
        nsm = NsmEmulator(pcrs=pcrs, ca=ca, clock=lambda: now)
        return EnclaveRuntime(make_strategy(MACrossover, PARAMS), nsm, pcr0=pcrs[0],
                              state_secret=b"\x07" * 32, clock=lambda: 1_000)

    bars = _bars(n + 20).select("ts", "symbol", "close")
    ingests, catch_ups = [], []
    for _ in range(repeats):
        first = runtime()
        booted = first.boot("bench-first")
        records = [booted["record"]]
        for i in range(20):  # the windows fill before the snapshot
            step = first.ingest(i, encode_batch(Batch(i, bars.slice(i, 1))))
            records += batch_records(len(records), i, encode_batch(Batch(i, bars.slice(i, 1))),
                                     step["signals"], time_ns=step["time_ns"],
                                     event_time_ns=batch_event_time(bars.slice(i, 1)["ts"]))
        taken = first.snapshot()
        index = len(records)
        records.append(encode_record(index=index, kind="note", body=taken["body"],
                                     time_ns=taken["time_ns"]))
        sent = [encode_batch(Batch(20 + k, bars.slice(20 + k, 1))) for k in range(n)]
        t0 = time.perf_counter()
        steps = [first.ingest(20 + k, data) for k, data in enumerate(sent)]
        ingests.append(time.perf_counter() - t0)
        for k, (data, step) in enumerate(zip(sent, steps, strict=True)):
            records += batch_records(len(records), 20 + k, data, step["signals"],
                                     time_ns=step["time_ns"],
                                     event_time_ns=batch_event_time(bars.slice(20 + k, 1)["ts"]))
        whole = CompactRange()
        for r in records:
            whole.append(leaf_hash(r))
        prefix = CompactRange()
        for r in records[:index + 1]:
            prefix.append(leaf_hash(r))
        link = RunLink(booted["origin"], whole.size, whole.root())
        nxt = runtime()
        nxt.boot("bench-next", encode_link(link))
        from zcbench.auditlog.merkle import MerkleTree

        tree = MerkleTree([leaf_hash(r) for r in records])
        nxt.restore(taken["sealed"], records[index], index, link.origin, link.size, link.root,
                    tree.inclusion_proof(index))
        t0 = time.perf_counter()
        caught = nxt.catch_up(index + 1, list(prefix.hashes), records[index + 1:], 1)
        catch_ups.append(time.perf_counter() - t0)
        assert caught["batches"] == n
    return statistics.median(ingests), statistics.median(catch_ups)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    bars = _bars(args.bars)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        module = folder / "crossover.py"
        shutil.copy(crossover_module.__file__, module)
        image = ModuleImage(module, PARAMS)
        rates: dict[str, list[float]] = {"none": [], "default (1 s)": [], "every batch": []}
        every: dict[str, float | None] = {"none": None, "default (1 s)": 1.0,
                                          "every batch": 0.0}
        _run(image, bars, folder, None)  # warm-up, not counted
        order = list(every)
        for r in range(args.rounds):
            for name in order[r % 3:] + order[:r % 3]:  # each goes first in turn
                rates[name].append(_run(image, bars, folder, every[name]))
    base = statistics.median(rates["none"])
    print(f"crossover, {args.bars} one-bar batches, feedback on the paper venue, "
          f"{args.rounds} interleaved rounds (medians)")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"  snapshots {name:14s} {rate:8.1f} batches/s  ratio to none {rate / base:.2f}")
    ingest, take = _in_enclave(min(args.bars, 400))
    print(f"  in the runtime: take+seal+log {take * 1e6:.0f} us against one ingest "
          f"{ingest * 1e6:.0f} us: ratio {take / ingest:.2f}")
    logged, caught = _catch_up(min(args.bars, 400))
    print(f"  catch-up on {min(args.bars, 400)} batches after a snapshot {caught * 1e3:.1f} ms "
          f"against their ingest {logged * 1e3:.1f} ms: ratio {caught / logged:.2f}")


if __name__ == "__main__":
    main()
