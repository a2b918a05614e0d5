"""Benchmark: zcbench's strict decoders against ``cbor2.loads`` on the same bytes.

Every format zcbench decodes goes through one strict CBOR reader (zcbench/_cbor.py): exactly one
item, shortest forms, no trailing bytes, no duplicate keys, bounded sizes and depth. The batch
and signals decoders and the frame decoder are on the live path, once per batch; this measures
what the strictness costs there.

Baseline, measured in the same run and interleaved round by round: ``cbor2.loads`` (its C
decoder, lenient: it accepts trailing bytes and non-shortest forms) on exactly the same bytes.
Measured, each as the full decoder a caller uses:

* ``decode_batch`` on a 1,000-event column-wise batch (ts, symbol, price, size), which also
  builds the polars DataFrame; and the strict CBOR layer alone on the same bytes;
* ``decode_signals`` on 10 signals with hints;
* ``decode_body`` on an ``ingest`` frame carrying that batch, and on a ``signals`` reply frame;
* ``decode_record`` on the IN record holding that batch;
* the attestation document reader (pure Python, accepts non-canonical but valid forms) on the
  real document tests/vectors/nitro/doc_1.cbor.

Figures are the best of 150 interleaved rounds of about 2 ms of calls each, in microseconds per
call, and the ratio to ``cbor2.loads``. ``--quick`` runs a smoke version (figures are then not
meaningful).

Usage: .venv/bin/python bench/bench_cbor.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import cbor2
import polars as pl

from zcbench.auditlog.records import decode_record, encode_record
from zcbench.channel._frames import Message, decode_body, encode_frame
from zcbench.strategy import (
    Batch,
    Signal,
    decode_batch,
    decode_signals,
    encode_batch,
    encode_signals,
)

DOC = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "nitro" / "doc_1.cbor"


def _batch(n: int) -> bytes:
    base = 1_700_000_000_000_000_000
    frame = pl.DataFrame({
        "ts": [base + i * 1000 for i in range(n)],
        "symbol": [("AAPL", "MSFT", "TSLA", "NVDA")[i % 4] for i in range(n)],
        "price": [1_000_000 + (i * 13) % 5000 for i in range(n)],
        "size": [1 + i % 300 for i in range(n)],
    })
    return encode_batch(Batch(seq=12_345, events=frame))


def _signals(n: int) -> bytes:
    return encode_signals([
        Signal(("AAPL", "MSFT")[i % 2], ("buy", "sell")[i % 2], 10 + i, 1_000_000 + i,
               (("urgency", i % 3), ("venue", "lit")))
        for i in range(n)
    ])


def _cases() -> list[tuple[str, bytes, Callable[[bytes], object], Callable[[bytes], object]]]:
    batch, signals = _batch(1000), _signals(10)
    ingest = encode_frame(Message("ingest", {"seq": 12_345, "batch": batch}))[4:]
    reply = encode_frame(Message("signals", {
        "seq": 12_345, "signals": signals, "time_ns": 1_700_000_000_000_000_000,
        "leaves": [bytes(32), bytes(range(32))],
        "checkpoint": b"zcbench/0123456789abcdef/run\n2\n" + bytes(64),
    }))[4:]
    record = encode_record(index=1, kind="in", body=batch, time_ns=1_700_000_000_000_000_001,
                           seq=12_345, event_time_ns=1_700_000_000_000_000_000)
    cases: list[tuple[str, bytes, Callable[[bytes], object], Callable[[bytes], object]]] = [
        ("decode_batch, 1,000 events (with the DataFrame)", batch,
         lambda data: decode_batch(data, seq=12_345), cbor2.loads),
        ("decode_signals, 10 signals", signals, decode_signals, cbor2.loads),
        ("decode_body, ingest frame of that batch", ingest, decode_body, cbor2.loads),
        ("decode_body, signals reply frame", reply, decode_body, cbor2.loads),
        ("decode_record, IN record of that batch", record, decode_record, cbor2.loads),
    ]
    try:  # the foundation reader exists from the strict-decoding change on
        from zcbench import _cbor

        def layer(data: bytes) -> object:
            return _cbor.decode(data, canonical=True, max_depth=4)

        cases.insert(1, ("strict CBOR layer alone, that batch", batch, layer, cbor2.loads))
    except ImportError:
        pass
    from zcbench.nitro import _cbor as nitro_cbor

    cases.append(("document reader (pure Python), real Nitro document", DOC.read_bytes(),
                  nitro_cbor.decode, cbor2.loads))
    return cases


def _per_call(fn: Callable[[bytes], object], data: bytes, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(data)
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args()
    # Many short rounds, each decoder's best kept: on a shared machine the minimum over short
    # slices is the figure least disturbed by other jobs.
    rounds, chunk = (1, 0.001) if args.quick else (150, 0.002)
    load = os.getloadavg()[0]
    print(f"machine load average (1 min) at start: {load:.2f} on {os.cpu_count()} cores")
    print(f"{'decoder':<54} {'bytes':>7} {'cbor2.loads':>12} {'zcbench':>10} {'ratio':>7}")
    for name, data, ours, base in _cases():
        ours(data), base(data)  # warm up, and fail loudly on a decoder that refuses its input
        calls = max(1, int(chunk / max(_per_call(ours, data, 3), 1e-7)))
        ours_t, base_t = [], []
        for _ in range(rounds):  # interleaved: the machine is shared and noisy
            base_t.append(_per_call(base, data, calls))
            ours_t.append(_per_call(ours, data, calls))
        b, o = min(base_t) * 1e6, min(ours_t) * 1e6
        print(f"{name:<54} {len(data):>7} {b:>10.1f}us {o:>8.1f}us {o / b:>6.2f}x")
    print(f"machine load average (1 min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
