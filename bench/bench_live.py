"""Live-run benchmark: the tick example strategy end to end, against baselines from the same run.

Figures (1,000-event batches, seeded synthetic ticks):

1. end-to-end events/s (proxy -> enclave process -> signed checkpoint -> durable log ->
   execution), as a ratio to (a) the same strategy called in-process on the same batches, no
   boundary and no log (target >= 0.5); the same on the paper venue without and with feedback
   (the outcomes logged as an IN record before each batch, as ``zcbench run`` does by default),
   each as a ratio to (a), and feedback against no feedback;
2. the live per-batch time as a ratio to (b) the per-batch floor of the boundary: the batch's
   encoding both ways, one Unix-socket round trip of that frame size, one Ed25519 sign and
   verify, one append + fsync, plus the strategy's own in-process time (target <= 1.5x);
3. batch round-trip p50/p99 in the live run against a bare Unix-socket ping-pong of the same
   frame size;
4. freshness p50/p99 with a live synthetic source offered 50,000 events/s.

The infrastructure alone, with a strategy that does nothing (``_noop_strategy.py``):

5. capacity in batches/s at 100- and 1,000-event batches against the pipelined floor: the slower
   of the host's per-batch work and the enclave's, each measured alone in the same run (the host
   in-process over pre-made replies, committed in groups of the run's window; the enclave's
   runtime in-process over pre-encoded frames) (target >= 0.8);
   Each live capacity with the log written in a process of its own (``log_writer="process"``)
   and on the receiving thread (``"inline"``, the default); and the live
   per-batch cost of the one mark rule (``zcbench.marketdata.last_marks``, ``marks``: what the
   execution layer runs over a batch's market rows) on the same batches, against the host's
   per-batch work alone;
6. the tail at half of capacity (target: nothing dropped, freshness p99 at most the batching delay
   plus twice the unpipelined round trip) and at twice capacity (drops bounded, counted in the
   signed log, freshness degrading smoothly), each with the log's writes, fsyncs and checks on
   the receiving thread (``log_writer="inline"``, the default), on a thread of their own
   (``"thread"``) and in a process of their own (``"process"``), with the run's default drop rule
   (``queue_hold=1``: every batch finding the queue full dropped), and the process writer also
   with holding through stalls (``queue_hold=8``: dropped only for a sustained backlog);
7. latency with 1- and 10-event batches at a modest rate: tick-to-signal (the newest event
   reaching the proxy -> its signals acted on) p50/p99 against the floor (a Unix-socket round
   trip of those frames + an Ed25519 sign and verify + the two fsyncs of a commit, records then
   checkpoint), beside the commonly quoted 80-120 us for one request-response over vsock;
8. memory: host and enclave peak RSS of a long run against a run a sixth as long at the same
   rate (scaled down from 10 min vs 1 min to 2 min vs 20 s), each in a fresh process.

Run: ``python bench/bench_live.py`` (``--quick`` for a smoke run, ``--infrastructure`` for
sections 5-8 only, ``--capacity`` for section 5 only, ``--tail`` for section 6 (after the
100-event capacity it is relative to), ``--feedback`` for section 1's feedback figures only).
"""

from __future__ import annotations

import argparse
import itertools
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
    Batch,
    apply_strategy,
    decode_batch,
    decode_signals,
    encode_batch,
    encode_signals,
    make_strategy,
)
from zcbench.venue import PaperVenue

BATCH = 1_000
WINDOW = 64  # run_live's default
NOOP = Path(__file__).resolve().parent / "_noop_strategy.py"


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
        "encode+decode batch": _per_call(
            lambda: decode_batch(encode_batch(batch), seq=batch.seq), n
        ),
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


def _noop_runtime() -> tuple[object, Message]:
    import datetime as dt

    from zcbench.enclave import EnclaveRuntime
    from zcbench.nitro import DevCA, NsmEmulator

    sys.path.insert(0, str(NOOP.parent))
    import _noop_strategy

    pcrs = {0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}
    nsm = NsmEmulator(pcrs=pcrs, ca=DevCA.load_or_create(now=dt.datetime.now(dt.UTC)))
    runtime = EnclaveRuntime(make_strategy(_noop_strategy.Noop), nsm, pcr0=pcrs[0])
    return runtime, runtime.boot("bench")


def mark_cost(events: object, count: int, limit: int) -> tuple[float, float]:
    """Median seconds per batch of ``count`` events of the mark rule over its market rows: each
    symbol's last mark (``last_marks``) and every row's mark (``marks``)."""
    from zcbench.marketdata import last_marks, marks

    fields = ["price", "bid", "ask", "size"]
    source = ReplaySource(events, BatchSpec(count=count))  # type: ignore[arg-type]
    frames = [m for _, m, _ in itertools.islice(source.prepared(fields), limit)]
    cycle = itertools.cycle(frames)
    return (_per_call(lambda: last_marks(next(cycle)), len(frames)),
            _per_call(lambda: marks(next(cycle)), len(frames)))


def alone(events: object, count: int, limit: int) -> tuple[float, float]:
    """(host, enclave) seconds per batch of ``count`` events, each side's whole job alone."""
    from zcbench.auditlog.storage import LogStore
    from zcbench.channel import decode_body
    from zcbench.host.execution import ExecutionLayer
    from zcbench.host.logwriter import HostLog

    sys.path.insert(0, str(NOOP.parent))
    import _noop_strategy

    fields = list(_noop_strategy.Noop.fields())
    source = ReplaySource(events, BatchSpec(count=count))  # type: ignore[arg-type]
    cut = list(itertools.islice(source.prepared(fields), limit))
    runtime, booted = _noop_runtime()
    ingest = [
        encode_frame(Message("ingest", {"seq": i, "batch": encode_batch(Batch(i, e))}))
        for i, (e, _, _) in enumerate(cut)
    ]
    t = time.perf_counter()
    replies = []
    for frame in ingest:  # the enclave: frame in, decode, strategy, records, signature, frame out
        msg = decode_body(frame[4:])
        replies.append(encode_frame(runtime.ingest(msg["seq"], msg["batch"])))  # type: ignore[attr-defined]
    enclave_s = (time.perf_counter() - t) / len(cut)
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        store = LogStore.create(Path(tmp) / "log")
        log = HostLog(store, booted["public_key"], booted["origin"])
        log.open(booted["record"], booted["checkpoint"], booted["document"])
        execution = ExecutionLayer()
        t = time.perf_counter()
        pending = []
        for i, ((e, market, wire), frame) in enumerate(zip(cut, replies, strict=True)):
            data = wire()  # the host: encode (as the proxy prepares it), frame, decode, stage
            encode_frame(Message("ingest", {"seq": i, "batch": data}))
            reply = decode_body(frame[4:])
            log.stage_reply(i, data, reply, event_time_ns=int(e["ts"].max()))  # type: ignore[arg-type]
            pending.append(market)
            if len(pending) == WINDOW or i == len(cut) - 1:  # commit, then act
                for verified, m in zip(log.flush(), pending, strict=True):
                    execution.on_market(m)
                    execution.act(verified, now_ns=time.time_ns())
                pending = []
        host_s = (time.perf_counter() - t) / len(cut)
        store.close()
    return host_s, enclave_s


def commit_floor(n: int) -> dict[str, float]:
    """Medians of the latency floor's parts: Ed25519 sign+verify, two appends with fsync."""
    signer = LogSigner(Ed25519PrivateKey.generate(), "zcbench/b/run")
    parts = {
        "ed25519 sign+verify": _per_call(
            lambda: verify_checkpoint(
                signer.sign(3, b"\x00" * 32), signer.public_key_spki_der, signer.origin
            ),
            n,
        )
    }
    with tempfile.NamedTemporaryFile(dir=".") as f:

        def append_fsync() -> None:
            f.write(b"\x00" * 300)
            f.flush()
            os.fsync(f.fileno())

        parts["2 x (append+fsync)"] = 2 * _per_call(append_fsync, n)
    return parts


def _schedstat(path: str) -> tuple[int, int]:
    """(ns on a CPU, ns waiting in the run queue) of one thread or process, from /proc."""
    try:
        with open(path) as f:
            run, wait, _ = f.read().split()
    except (OSError, ValueError):
        return 0, 0
    return int(run), int(wait)


class CpuShare:
    """CPU time of the host's threads and of the enclave process over one live run, sampled
    from /proc while it goes (a thread's figures are its last sample): where a batch's time
    goes, measured rather than guessed. Pass :meth:`booted` as ``run_live(on_booted=)``."""

    def __init__(self, every_s: float = 0.02) -> None:
        self.every_s = every_s
        self.threads: dict[str, tuple[int, int]] = {}
        self.enclave = (0, 0)
        self._pids: list[int] = []
        self._base: dict[str, tuple[int, int]] = {}
        self._enclave_base = (0, 0)
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def booted(self, handle: object) -> None:
        """Counted from here: the enclave has booted, the run's threads are about to start."""
        pid = handle.enclave.pid  # type: ignore[attr-defined]
        self._pids = [pid, *self._children(pid)]  # the enclave under its namespace launcher
        self._base = {"MainThread": _schedstat(f"/proc/{os.getpid()}/task/"
                                               f"{threading.main_thread().native_id}/schedstat")}
        self._enclave_base = max((_schedstat(f"/proc/{p}/schedstat") for p in self._pids),
                                 default=(0, 0))
        self._sampler = threading.Thread(target=self._sample, name="cpu-sampler", daemon=True)
        self._sampler.start()

    def _children(self, pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            return []
        return kids + [g for k in kids for g in self._children(k)]

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            for t in threading.enumerate():
                if t is not threading.current_thread() and t.native_id is not None:
                    got = _schedstat(f"/proc/{me}/task/{t.native_id}/schedstat")
                    if got[0]:
                        self.threads[t.name] = got
            enclave = max((_schedstat(f"/proc/{p}/schedstat") for p in self._pids), default=(0, 0))
            if enclave[0]:
                self.enclave = enclave
            time.sleep(self.every_s)

    def stop(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()

    def per_batch(self, batches: int) -> str:
        """CPU (and run-queue wait) in us per batch, by thread and for the enclave."""
        names = {"MainThread": "receiving", "zcbench-proxy": "proxy", "zcbench-sender": "sender"}
        parts = []
        for name, (run, wait) in self.threads.items():
            if name in names:  # the main thread's figure includes the run's closing
                run0, wait0 = self._base.get(name, (0, 0))
                parts.append(f"{names[name]} {(run - run0) / batches / 1e3:.0f} "
                             f"(wait {(wait - wait0) / batches / 1e3:.0f})")
        run, wait = (a - b for a, b in zip(self.enclave, self._enclave_base, strict=True))
        return (", ".join(parts) + f"; enclave process {run / batches / 1e3:.0f} "
                f"(wait {wait / batches / 1e3:.0f}) us of CPU per batch")


def _live(tmp: Path, name: str, count: int, rate: float, seconds: float, **kw: object) -> object:
    from zcbench.host.proxy import synthetic_feed

    feed = synthetic_feed(SyntheticConfig(rate=rate, duration_s=seconds), seed=5)
    source = LiveSource(feed, BatchSpec(count=count), rate=1.0)
    summary = run_live(ModuleImage(NOOP), tmp / name, source, **kw)  # type: ignore[arg-type]
    assert summary.status == "completed", summary.reason
    return summary


def _dropped_in_log(run: Path) -> int:
    import cbor2

    from zcbench.auditlog.frame import iter_records

    notes = (cbor2.loads(r.body) for r, _ in iter_records(run) if r.kind == "note")
    return sum(n["batches"] for n in notes if n["note"] == "dropped")


_RSS_RUN = """
import sys, tempfile, threading
from pathlib import Path
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.proxy import LiveSource, synthetic_feed
from zcbench.marketdata import BatchSpec, SyntheticConfig
seconds, rate, module = float(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
feed = synthetic_feed(SyntheticConfig(rate=rate, duration_s=seconds), seed=6)

def hwm(pid):  # VmHWM, kB: a process's own peak (ru_maxrss can carry a parent's over exec)
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return 0

def tree(pid):  # the process and its descendants (the launcher, then the enclave under it)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return out

enclave_peak, done = [0], threading.Event()

def booted(handle):
    root = handle.enclave.pid
    def sample():  # the enclave's peak, read while it runs (it is gone once the run ends)
        while not done.wait(0.2):
            enclave_peak[0] = max([enclave_peak[0], *(hwm(p) for p in tree(root))])
    threading.Thread(target=sample, daemon=True).start()

with tempfile.TemporaryDirectory(dir=".") as tmp:
    s = run_live(ModuleImage(module), Path(tmp) / "run", LiveSource(feed, BatchSpec(count=100)),
                 on_booted=booted)
done.set()
assert s.status == "completed", s.reason
print(hwm("self"), enclave_peak[0], s.batches, s.dropped_batches)
"""


def peak_rss(seconds: float, rate: float) -> tuple[float, float, int, int]:
    """(host MB, enclave MB, batches, dropped) of a run of ``seconds`` in a fresh process."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _RSS_RUN, str(seconds), str(rate), str(NOOP)],
        capture_output=True, text=True, check=True,
    )
    host, enclave, n, dropped = done.stdout.split()
    return int(host) / 1024, int(enclave) / 1024, int(n), int(dropped)


def infrastructure(
    quick: bool, *, capacity_only: bool = False, tail_only: bool = False
) -> list[str]:
    """Sections 5-8 (module docstring; only 5 with ``capacity_only``; with ``tail_only`` 5 at
    100 events and 6); the summary rows."""
    rows: list[str] = []
    seconds = 3.0 if quick else 20.0
    events = generate_ticks(SyntheticConfig(rate=20_000, duration_s=seconds), seed=8)
    capacity: dict[int, float] = {}
    print(f"\n5. capacity with a no-op strategy (window {WINDOW})")
    with tempfile.TemporaryDirectory(prefix="zcbench-bench-", dir=".") as tmp:
        for count in (100,) if tail_only else (100, 1_000):
            host_s, enclave_s = alone(events, count, 2_000 if count == 100 else 400)
            floor = 1 / max(host_s, enclave_s)
            for writer in ("process", "inline"):
                cpu = CpuShare()
                live = run_live(
                    ModuleImage(NOOP), Path(tmp) / f"cap{count}-{writer}",
                    ReplaySource(events, BatchSpec(count=count)), log_writer=writer,
                    on_booted=cpu.booted,
                )
                cpu.stop()
                assert live.status == "completed", live.reason
                got = live.events_per_s / count
                capacity[count] = got  # the default (inline) writer's, measured last
                print(
                    f"   {count:5d}-event batches, log writer {writer}: live {got:7,.0f} "
                    f"batches/s; host alone {host_s * 1e6:6.0f} us, enclave alone "
                    f"{enclave_s * 1e6:6.0f} us per batch: floor {floor:7,.0f} batches/s; "
                    f"ratio {got / floor:.2f} (target >= 0.8)\n"
                    f"         in the run: {cpu.per_batch(live.batches)}"  # type: ignore[attr-defined]
                )
                rows.append(
                    f"capacity {count}-event batches, log writer {writer}: {got:,.0f} batches/s "
                    f"vs pipelined floor {floor:,.0f} (host {host_s * 1e6:.0f} us, enclave "
                    f"{enclave_s * 1e6:.0f} us per batch alone): {got / floor:.2f}"
                )
            last_s, each_s = mark_cost(events, count, 400)
            print(
                f"   {count:5d}-event batches: the mark rule per batch, last_marks "
                f"{last_s * 1e6:.0f} us, marks {each_s * 1e6:.0f} us = "
                f"{last_s / host_s:.3f} and {each_s / host_s:.3f} of the host's work alone"
            )
            rows.append(
                f"mark rule per {count}-event batch: last_marks {last_s * 1e6:.0f} us, marks "
                f"{each_s * 1e6:.0f} us ({last_s / host_s:.3f} / {each_s / host_s:.3f} of the "
                f"host's {host_s * 1e6:.0f} us alone)"
            )

        if capacity_only:
            return rows
        serial = run_live(
            ModuleImage(NOOP), Path(tmp) / "serial",
            ReplaySource(events.head(20_000), BatchSpec(count=100)), window=1,
        )
        rtt1 = serial.batch_rtt_p50_ms  # type: ignore[attr-defined]
        span = 3.0 if quick else 10.0
        print(f"\n6. tail, 100-event batches (unpipelined round trip p50 {rtt1:.2f} ms)")
        # each load four times, interleaved: the log's commits on the receiving thread (the
        # default), on a thread of their own, in a process of their own, each with the default
        # drop rule (queue_hold=1: every batch finding the queue full is dropped); and the
        # process writer holding through stalls
        # (queue_hold=8: held through a stall, dropped for a sustained backlog)
        tail_runs = (("inline", 1), ("thread", 1), ("process", 1), ("process", 8))
        for label, share in (("half capacity", 0.5), ("twice capacity", 2.0)):
            rate = share * capacity[100] * 100
            for writer, hold in tail_runs:
                rule = f"log writer {writer}, " + (
                    "held through stalls" if hold > 1 else "dropped when full")
                name = f"tail{share}-{writer}-{hold}"
                cpu = CpuShare()
                run = _live(Path(tmp), name, 100, rate, span, queue_hold=hold, log_writer=writer,
                            on_booted=cpu.booted)
                cpu.stop()
                batching_ms = min(50.0, 100 / rate * 1e3)
                target = batching_ms + 2 * rtt1
                dropped = run.dropped_batches  # type: ignore[attr-defined]
                logged = _dropped_in_log(Path(tmp) / name)
                p50, p99 = run.freshness_p50_ms, run.freshness_p99_ms  # type: ignore[attr-defined]
                print(
                    f"   {label} ({rate:,.0f} events/s offered), {rule}: freshness p50 "
                    f"{p50:.2f} ms p99 {p99:.2f} ms (batching delay {batching_ms:.1f} ms + 2 x "
                    f"round trip = {target:.1f} ms); dropped {dropped} batches, {logged} of them "
                    f"in the signed log\n         batch round trip (ingest sent -> its reply "
                    f"received) p50 {run.batch_rtt_p50_ms:.2f} ms p99 "  # type: ignore[attr-defined]
                    f"{run.batch_rtt_p99_ms:.2f} ms; "  # type: ignore[attr-defined]
                    f"{cpu.per_batch(run.batches)}"  # type: ignore[attr-defined]
                )
                rows.append(
                    f"tail at {label} ({rate:,.0f} ev/s), {rule}: p50 {p50:.1f} ms, p99 "
                    f"{p99:.1f} ms (bound {target:.1f} ms), dropped {dropped} ({logged} in the "
                    "signed log)"
                )
        if tail_only:
            return rows

        parts = commit_floor(50 if quick else 200)
        print("\n7. latency, tick to signal, with a no-op strategy at 200 batches/s offered")
        for count, writer in ((1, "inline"), (1, "process"), (10, "inline"), (10, "process")):
            _, _, frame, reply = _frames_of(events, count)
            socket_s = statistics.median(ping_pong(frame, reply, 200))
            floor_ms = (socket_s + sum(parts.values())) * 1e3
            run = _live(Path(tmp), f"lat{count}-{writer}", count, 200.0 * count, span,
                        log_writer=writer)
            p50, p99 = run.freshness_p50_ms, run.freshness_p99_ms  # type: ignore[attr-defined]
            print(
                f"   {count:2d}-event batches, log writer {writer}: p50 {p50:.3f} ms p99 "
                f"{p99:.3f} ms; floor "
                f"{floor_ms:.3f} ms = socket round trip {socket_s * 1e6:.0f} us + "
                + " + ".join(f"{k} {v * 1e6:.0f} us" for k, v in parts.items())
                + f"; ratio p50 {p50 / floor_ms:.1f}x (vsock request-response is quoted at "
                "80-120 us)"
            )
            rows.append(
                f"latency {count}-event batches, log writer {writer}: p50 {p50:.2f} ms, p99 "
                f"{p99:.2f} ms vs floor {floor_ms:.2f} ms (round trip {socket_s * 1e6:.0f} us, "
                f"sign+verify "
                f"{parts['ed25519 sign+verify'] * 1e6:.0f} us, 2 fsyncs "
                f"{parts['2 x (append+fsync)'] * 1e6:.0f} us)"
            )

    short_s, long_s = (4.0, 12.0) if quick else (20.0, 120.0)
    rate = 10_000.0
    print(f"\n8. memory, 100-event batches at {rate:,.0f} ev/s: {short_s:.0f} vs {long_s:.0f} s")
    h1, e1, n1, d1 = peak_rss(short_s, rate)
    h2, e2, n2, d2 = peak_rss(long_s, rate)
    print(
        f"   peak RSS host {h1:.0f} MB -> {h2:.0f} MB ({h2 / h1:.3f}x), enclave {e1:.0f} MB -> "
        f"{e2:.0f} MB ({e2 / e1:.3f}x) over {n1} -> {n2} batches (dropped {d1}, {d2}) "
        "(target within 1.10x)"
    )
    rows.append(
        f"memory {short_s:.0f} s vs {long_s:.0f} s at {rate:,.0f} ev/s: host {h1:.0f} -> {h2:.0f} "
        f"MB ({h2 / h1:.2f}x), enclave {e1:.0f} -> {e2:.0f} MB ({e2 / e1:.2f}x)"
    )
    return rows


def _frames_of(events: object, count: int) -> tuple[None, None, bytes, bytes]:
    """An ingest frame of ``count`` no-op events and the enclave's reply to it."""
    sys.path.insert(0, str(NOOP.parent))
    import _noop_strategy

    fields = list(_noop_strategy.Noop.fields())
    batch, _ = next(iter(ReplaySource(events, BatchSpec(count=count)).stripped(fields)))  # type: ignore[arg-type]
    runtime, _ = _noop_runtime()
    wire = encode_batch(Batch(0, batch))
    reply = runtime.ingest(0, wire)  # type: ignore[attr-defined]
    ingest = encode_frame(Message("ingest", {"seq": 0, "batch": wire}))
    return None, None, ingest, encode_frame(reply)


def feedback_rows(events: object, base_eps: float) -> list[str]:
    """The live run on the paper venue without and with feedback, against (a) of the same run."""
    image = ModuleImage(Path(order_flow.__file__))
    got = {}
    with tempfile.TemporaryDirectory(prefix="zcbench-bench-") as tmp:
        for name, feedback in (("no feedback", False), ("feedback", True)):
            summary = run_live(
                image, Path(tmp) / name.replace(" ", "-"),
                ReplaySource(events, BatchSpec(count=BATCH)),  # type: ignore[arg-type]
                window=WINDOW, venue=PaperVenue(), feedback=feedback,
            )
            assert summary.status == "completed", summary.reason
            got[name] = summary
    rows = [f"baseline (a) in-process strategy, no boundary, no log: {base_eps:12,.0f} ev/s"]
    for name, summary in got.items():
        rows.append(
            f"live, paper venue, {name:11s}: {summary.events_per_s:12,.0f} ev/s, ratio to (a) "
            f"{summary.events_per_s / base_eps:.2f}; batch round trip p50 "
            f"{summary.batch_rtt_p50_ms:.2f} ms, p99 {summary.batch_rtt_p99_ms:.2f} ms"
        )
    off, on = got["no feedback"].events_per_s, got["feedback"].events_per_s
    rows.append(f"feedback / no feedback = {on / off:.2f} ({got['feedback'].orders} orders)")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument(
        "--infrastructure", action="store_true", help="only sections 5-8 (no-op strategy)"
    )
    ap.add_argument("--capacity", action="store_true", help="only section 5 (capacity)")
    ap.add_argument(
        "--tail", action="store_true", help="only section 6 (and the capacity it is relative to)"
    )
    ap.add_argument("--feedback", action="store_true", help="only the feedback figures")
    args = ap.parse_args()
    if args.feedback:
        os.environ.setdefault("ZCBENCH_HOME", tempfile.mkdtemp(prefix="zcbench-bench-home-"))
        seconds = 2.0 if args.quick else 10.0
        events = generate_ticks(SyntheticConfig(rate=20_000, duration_s=seconds), seed=3)
        base_eps, _ = in_process(events)
        print("1. end-to-end throughput, paper venue, feedback")
        for row in feedback_rows(events, base_eps):
            print("   " + row)
        return 0
    if args.infrastructure or args.capacity or args.tail:
        os.environ.setdefault("ZCBENCH_HOME", tempfile.mkdtemp(prefix="zcbench-bench-home-"))
        rows = infrastructure(args.quick, capacity_only=args.capacity, tail_only=args.tail)
        for row in rows:
            print("  " + row)
        return 0
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
            image, Path(tmp) / "run", ReplaySource(events, BatchSpec(count=BATCH)), window=WINDOW
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
    # a smoke run keeps to 10 batches here: --feedback measures it in full
    cut = events.head(10 * BATCH) if args.quick else events  # type: ignore[attr-defined]
    for row in feedback_rows(cut, base_eps):
        print("   " + row)
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

    print(f"\n3. batch round trip (send ingest -> signed reply received), window {WINDOW}")
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
    rows = infrastructure(args.quick)
    print("\nsummary (infrastructure rows, no-op strategy)")
    for row in rows:
        print("  " + row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
