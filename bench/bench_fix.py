"""FIX order round trip benchmark: NewOrderSingle to its ExecutionReport (the acknowledgement).

One run, three measurements on localhost TCP:

1. the FIX round trip: the initiator's session makes the order (stored and fsynced), sends it;
   the simulator accepts it (fsynced), the paper venue acknowledges it (a limit order away
   from the market, so the ack is the only report), the report is stored, drop-copied (two
   fsyncs) and sent; the initiator accepts it (fsynced). Five fsyncs in all;
2. the baseline: a bare TCP ping-pong with the same byte sizes (the order's bytes out, the
   report's bytes back), TCP_NODELAY, no parsing, no disk;
3. the disk's part: five append+fsync calls of the same sizes, timed alone.

Run: ``python bench/bench_fix.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl

from zcbench.venue.fix import VenueSimulator
from zcbench.venue.fix.codec import Framer
from zcbench.venue.fix.messages import order_fields
from zcbench.venue.fix.session import Session, SessionStore
from zcbench.venue.orders import Order

T0 = 1_704_186_000 * 1_000_000_000


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fix_round_trips(tmp: Path, n: int) -> tuple[list[float], int, int]:
    events = pl.DataFrame({"ts": [T0], "symbol": ["AAA"], "kind": ["quote"], "bid": [990_000],
                           "ask": [1_010_000], "bid_size": [10**9], "ask_size": [10**9]})
    sim = VenueSimulator(events, tmp / "drop.fix", tmp / "sim")
    port = sim.start()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    session = Session(SessionStore(tmp / "client"), "ZCB-BENCH", "ZCBSIM", initiator=True)
    framer = Framer()

    def read_until(done: object) -> bytes:
        while True:
            for item in framer.feed(sock.recv(65536)):
                apps, replies = session.receive(item)
                for raw in replies:
                    sock.sendall(raw)
                for msg in apps:
                    if done(msg):  # type: ignore[operator]
                        return msg.raw
            if done is None:
                return b""

    sock.sendall(session.logon())
    while not session.logged_on:
        for item in framer.feed(sock.recv(65536)):
            session.receive(item)
    times: list[float] = []
    out_size = in_size = 0
    for i in range(n):
        order = Order(f"B-{i}-0", "AAA", "buy", 100, "limit", "GTC", limit_price=900_000,
                      log_index=i, signal_hash="ab" * 32)
        start = time.perf_counter()
        raw = session.message("D", order_fields(order, market_ns=T0))
        sock.sendall(raw)
        ack = read_until(lambda m, cid=order.cl_ord_id: m.msg_type == "8" and m.get(11) == cid)
        times.append(time.perf_counter() - start)
        out_size, in_size = len(raw), len(ack)
    sock.sendall(session.logout())
    sock.close()
    session.store.close()
    sim.stop()
    return times, out_size, in_size


def tcp_ping_pong(n: int, out_size: int, in_size: int) -> list[float]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reply = b"r" * in_size
        for _ in range(n):
            got = 0
            while got < out_size:
                got += len(conn.recv(out_size - got))
            conn.sendall(reply)
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"o" * out_size
    times = []
    for _ in range(n):
        start = time.perf_counter()
        client.sendall(msg)
        got = 0
        while got < in_size:
            got += len(client.recv(in_size - got))
        times.append(time.perf_counter() - start)
    client.close()
    t.join()
    server.close()
    return times


def fsyncs(tmp: Path, n: int, out_size: int, in_size: int) -> list[float]:
    fd = os.open(tmp / "fsync.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sizes = (out_size, out_size, in_size, in_size, in_size)
    times = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            for size in sizes:
                os.write(fd, b"x" * size)
                os.fsync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
    return times


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (few round trips)")
    args = parser.parse_args(argv)
    n = 50 if args.quick else 2000
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        fix, out_size, in_size = fix_round_trips(tmp, n)
        tcp = tcp_ping_pong(n, out_size, in_size)
        disk = fsyncs(tmp, n, out_size, in_size)
    ms = 1000.0
    f50, f99 = _pct(fix, 0.5) * ms, _pct(fix, 0.99) * ms
    t50, t99 = _pct(tcp, 0.5) * ms, _pct(tcp, 0.99) * ms
    d50, d99 = _pct(disk, 0.5) * ms, _pct(disk, 0.99) * ms
    print(f"FIX order to ack, {n} round trips ({out_size} bytes out, {in_size} back)")
    print(f"  FIX round trip        p50 {f50:.3f} ms  p99 {f99:.3f} ms")
    print(f"  bare TCP ping-pong    p50 {t50:.3f} ms  p99 {t99:.3f} ms  (baseline, same sizes)")
    print(f"  five append+fsync     p50 {d50:.3f} ms  p99 {d99:.3f} ms  (the disk's share)")
    print(f"  ratio to TCP          p50 {f50 / t50:.1f}x  p99 {f99 / t99:.1f}x")
    print(f"  ratio to TCP + fsyncs p50 {f50 / (t50 + d50):.2f}x  p99 {f99 / (t99 + d99):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
