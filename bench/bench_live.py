"""Live-run benchmark: the tick example strategy end to end, against baselines from the same run.

Figures (1,000-event batches, seeded synthetic ticks):

1. end-to-end events/s (proxy -> enclave process -> signed checkpoint -> durable log ->
   execution), as a ratio to (a) the same strategy called in-process on the same batches, no
   boundary and no log (target >= 0.5);
2. the live per-batch time as a ratio to (b) the per-batch floor of the boundary: the batch's
   encoding both ways, one Unix-socket round trip of that frame size, one Ed25519 sign and
   verify, one append + fsync, plus the strategy's own in-process time (target <= 1.5x);
3. batch round-trip p50/p99 in the live run against a bare Unix-socket ping-pong of the same
   frame size;
4. freshness p50/p99 with a live synthetic source offered 50,000 events/s.

Run: ``python bench/bench_live.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import zcbench.examples.order_flow as order_flow
from zcbench.auditlog.checkpoint import LogSigner, verify_checkpoint
from zcbench.channel import Message, encode_frame
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.proxy import LiveSource, ReplaySource
from zcbench.marketdata import BatchSpec, SyntheticConfig, batches, generate_ticks
from zcbench.strategy import (
    apply_strategy,
    decode_batch,
    decode_signals,
    encode_batch,
    encode_signals,
    make_strategy,
)

BATCH = 1_000


def _per_call(fn: Callable[[], object], n: int) -> float:
    """Median seconds per call over ``n`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def in_process(events: object) -> tuple[float, float]:
    """(events/s, seconds per batch) of the strategy called directly on pre-cut batches."""
    strategy = make_strategy(order_flow.OrderFlowImbalance)
    cut = list(batches(events, strategy.fields(), count=BATCH))  # type: ignore[arg-type]
    t = time.perf_counter()
    for b in cut:
        apply_strategy(strategy, b)
    elapsed = time.perf_counter() - t
    n = sum(len(b) for b in cut)
    return n / elapsed, elapsed / len(cut)


def ping_pong(frame: bytes, reply: bytes, n: int) -> list[float]:
    """Round trips of ``frame`` out and ``reply`` back over a Unix socket pair (seconds)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def recv_exact(sock: socket.socket, k: int) -> None:
        got = 0
        buf = bytearray(k)
        view = memoryview(buf)
        while got < k:
            got += sock.recv_into(view[got:], k - got)

    def echo() -> None:
        for _ in range(n + 1):
            recv_exact(b, len(frame))
            b.sendall(reply)

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    out = []
    for i in range(n + 1):
        t0 = time.perf_counter()
        a.sendall(frame)
        recv_exact(a, len(reply))
        if i:
            out.append(time.perf_counter() - t0)
    t.join()
    a.close()
    b.close()
    return out


def enclave_work(events: object) -> float:
    """Seconds per batch of the enclave's whole job, in-process: decode, strategy, IN and OUT
    records, Merkle append, checkpoint signature. With perfect pipelining this bounds the run."""
    import datetime as dt

    from zcbench.enclave import EnclaveRuntime
    from zcbench.nitro import DevCA, NsmEmulator

    pcrs = {0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}
    nsm = NsmEmulator(pcrs=pcrs, ca=DevCA.load_or_create(now=dt.datetime.now(dt.UTC)))
    runtime = EnclaveRuntime(make_strategy(order_flow.OrderFlowImbalance), nsm, pcr0=pcrs[0])
    runtime.boot("bench")
    fields = order_flow.OrderFlowImbalance.fields()
    wires = [encode_batch(b) for b in batches(events, fields, count=BATCH)]  # type: ignore[arg-type]
    t = time.perf_counter()
    for seq, wire in enumerate(wires):
        runtime.ingest(seq, wire)
    return (time.perf_counter() - t) / len(wires)


def floor_per_batch(events: object, n: int) -> tuple[float, dict[str, float], bytes, bytes]:
    """The boundary's per-batch floor and its parts; also the frames used for ping-pong."""
    strategy = make_strategy(order_flow.OrderFlowImbalance)
    batch = next(iter(batches(events, strategy.fields(), count=BATCH)))  # type: ignore[arg-type]
    wire = encode_batch(batch)
    signal_list = apply_strategy(make_strategy(order_flow.OrderFlowImbalance), batch)
    signals = encode_signals(signal_list)
    frame = encode_frame(Message("ingest", {"seq": 0, "batch": wire}))
    signer = LogSigner(Ed25519PrivateKey.generate(), "zcbench/b/run")
    note = signer.sign(3, b"\x00" * 32)
    reply = encode_frame(
        Message(
            "signals",
            {
                "seq": 0,
                "signals": signals,
                "time_ns": time.time_ns(),
                "leaves": [b"\x00" * 32, b"\x00" * 32],
                "checkpoint": note,
            },
        )
    )
    parts = {
        "encode+decode batch": _per_call(lambda: decode_batch(encode_batch(batch)), n),
        "encode+decode signals": _per_call(
            lambda: decode_signals(encode_signals(signal_list)), n
        ),
        "socket round trip": statistics.median(ping_pong(frame, reply, n)),
        "ed25519 sign+verify": _per_call(
            lambda: verify_checkpoint(
                signer.sign(3, b"\x00" * 32), signer.public_key_spki_der, signer.origin
            ),
            n,
        ),
    }
    with tempfile.NamedTemporaryFile(dir=".") as f:
        record = wire + signals

        def append_fsync() -> None:
            f.write(record)
            f.flush()
            os.fsync(f.fileno())

        parts["append+fsync"] = _per_call(append_fsync, n)
    return sum(parts.values()), parts, frame, reply


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    args = ap.parse_args()
    seconds = 2.0 if args.quick else 20.0
    reps = 20 if args.quick else 200
    live_seconds = 1.0 if args.quick else 5.0
    os.environ.setdefault("ZCBENCH_HOME", tempfile.mkdtemp(prefix="zcbench-bench-home-"))

    events = generate_ticks(SyntheticConfig(rate=20_000, duration_s=seconds), seed=3)
    print(
        f"data: {events.height:,} synthetic ticks, {BATCH}-event batches; "
        f"strategy {order_flow.OrderFlowImbalance.name}; {os.cpu_count()} CPUs"
    )

    base_eps, strat_s = in_process(events)
    enclave_s = enclave_work(events)
    floor_s, parts, frame, reply = floor_per_batch(events, reps)

    image = ModuleImage(Path(order_flow.__file__))
    with tempfile.TemporaryDirectory(prefix="zcbench-bench-") as tmp:
        summary = run_live(
            image, Path(tmp) / "run", ReplaySource(events, BatchSpec(count=BATCH)), window=8
        )
        assert summary.status == "completed", summary.reason
        live_eps = summary.events_per_s
        serial = run_live(
            image,
            Path(tmp) / "serial",
            ReplaySource(events.head(min(events.height, 100 * BATCH)), BatchSpec(count=BATCH)),
            window=1,
        )
        assert serial.status == "completed", serial.reason
        live_batch_s = BATCH / live_eps

        chunks_rate = 50_000.0
        live_events = generate_ticks(
            SyntheticConfig(rate=chunks_rate, duration_s=live_seconds), seed=4
        )
        step = 50  # arrivals of about a millisecond each at 50,000 events/s
        chunks = (live_events.slice(i, step) for i in range(0, live_events.height, step))
        fresh = run_live(
            image,
            Path(tmp) / "fresh",
            LiveSource(chunks, BatchSpec(count=BATCH), rate=1.0),
            max_delay_s=0.05,
        )
        assert fresh.status == "completed", fresh.reason

    pp = ping_pong(frame, reply, reps)
    pp50, pp99 = (float(x) * 1e3 for x in np.percentile(pp, [50, 99]))

    print("\n1. end-to-end throughput")
    print(f"   live (enclave process, signed + fsynced log, execution): {live_eps:12,.0f} ev/s")
    print(f"   baseline (a) in-process strategy, no boundary, no log:   {base_eps:12,.0f} ev/s")
    print(f"   ratio live / (a) = {live_eps / base_eps:.2f}   (target >= 0.5)")
    print(f"   network isolation of the enclave: {summary.isolated_network}")
    print(
        f"   for reference: the enclave's whole job per batch in-process (decode, strategy, "
        f"records, signature) = {enclave_s * 1e6:.0f} us, i.e. {BATCH / enclave_s:,.0f} ev/s "
        f"= {BATCH / enclave_s / base_eps:.2f} of (a): the ceiling of perfect pipelining"
    )

    print("\n2. per-batch time against the boundary's floor")
    for name, value in parts.items():
        print(f"   floor part {name:24s} {value * 1e6:9.1f} us")
    print(
        f"   floor (b) = parts + strategy {strat_s * 1e6:.1f} us = "
        f"{(floor_s + strat_s) * 1e6:9.1f} us per batch"
    )
    print(f"   live per batch                          {live_batch_s * 1e6:9.1f} us")
    print(f"   ratio live / (b) = {live_batch_s / (floor_s + strat_s):.2f}   (target <= 1.5)")
    # Pipelining overlaps batches, so also the one-batch-at-a-time cost against the same floor.
    serial_batch_s = BATCH / serial.events_per_s if serial.events_per_s else float("inf")
    print(f"   unpipelined per batch (window 1)        {serial_batch_s * 1e6:9.1f} us")
    print(f"   ratio unpipelined / (b) = {serial_batch_s / (floor_s + strat_s):.2f}")

    print("\n3. batch round trip (send ingest -> signed reply received), pipelined window 8")
    print(
        f"   live p50 {summary.batch_rtt_p50_ms:8.3f} ms   p99 {summary.batch_rtt_p99_ms:8.3f} ms"
    )
    print(
        f"   bare Unix-socket ping-pong, same frame sizes ({len(frame):,} B out, "
        f"{len(reply):,} B back): p50 {pp50:.3f} ms  p99 {pp99:.3f} ms"
    )
    print(
        f"   ratio pipelined / ping-pong:   p50 {summary.batch_rtt_p50_ms / pp50:.1f}x  p99 "
        f"{summary.batch_rtt_p99_ms / pp99:.1f}x"
    )
    print(
        "   unpipelined (window 1; includes the enclave's decode, strategy and signing): "
        f"p50 {serial.batch_rtt_p50_ms:.3f} ms  p99 {serial.batch_rtt_p99_ms:.3f} ms"
    )
    print(
        f"   ratio unpipelined / ping-pong: p50 {serial.batch_rtt_p50_ms / pp50:.1f}x  p99 "
        f"{serial.batch_rtt_p99_ms / pp99:.1f}x"
    )

    print(
        f"\n4. freshness with a live source offered {chunks_rate:,.0f} events/s "
        f"({fresh.events:,} events, {fresh.batches} batches, max delay 50 ms)"
    )
    print(
        f"   p50 {fresh.freshness_p50_ms:.3f} ms   p99 {fresh.freshness_p99_ms:.3f} ms   "
        f"(batch round trip p50 {fresh.batch_rtt_p50_ms:.3f} ms); dropped batches "
        f"{fresh.dropped_batches}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
