"""Proof service benchmark: attestations and tiles over HTTP, each against a same-run baseline.

1. Attestations. One real local run (the tick example strategy, live synthetic ticks) opens its
   control socket. Baseline: the enclave's own attestation rate, N threads of the fund's process
   calling ``RunHandle.attest`` back to back (an NSM document, a signature, the enclave channel,
   in order with the batches in flight). Then N concurrent LPs (threads, one keep-alive HTTP
   client each) ask ``zcbench serve`` for ``/.well-known/zcbench/attestation`` (rate limits
   raised out of the way): attestations/s as a ratio to the baseline of the same N, p50/p99.
2. Tiles. A log of 65,536 records is tiled; the same hash-tile files are fetched at random by N
   concurrent clients from ``zcbench serve`` and from a plain static file server over the same
   folder (Starlette's ``StaticFiles`` on the same uvicorn settings): tiles/s as a ratio, p50/p99.
3. Slices. Over the same log, random 16-record slices: N concurrent readers asking
   ``/runs/<id>/slice?start=&end=`` over HTTP, against N threads of the fund's process calling
   ``auditlog.export.build_slice`` (the code the server runs, the same checkpoint) directly:
   slices/s as a ratio, p50/p99.

Run: ``python bench/bench_serve.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import zcbench.examples.order_flow as order_flow
from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.auditlog.records import encode_record
from zcbench.auditlog.storage import LogStore
from zcbench.host.live import ModuleImage, RunHandle, run_live
from zcbench.host.sources import market_source
from zcbench.marketdata import BatchSpec
from zcbench.serve.app import ServeConfig, build_app, make_server
from zcbench.serve.control import ControlSocket


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class _Server:
    def __init__(self, app: Any, catalog: Any = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = make_server(app, port=self.sock.getsockname()[1])
        self.catalog = catalog
        if catalog is not None:
            catalog.start()
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        if self.catalog is not None:
            self.catalog.stop()
        self.sock.close()


def _load(clients: int, seconds: float, one: Callable[[httpx.Client, random.Random], None]
          ) -> tuple[float, list[float]]:
    """``clients`` threads calling ``one`` for ``seconds``: calls per second, latencies (s).

    The HTTP clients are made before the clock starts (making one loads the CA bundle, which
    takes long on a loaded machine and is no part of a request)."""
    latencies: list[float] = []
    lock = threading.Lock()
    pool = [httpx.Client(timeout=30) for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[float] = []
        client = pool[seed]
        while time.perf_counter() < stop:
            t = time.perf_counter()
            one(client, rng)
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for client in pool:
        client.close()
    return len(latencies) / elapsed, latencies


def _attestations(tmp: Path, seconds: float, lps: list[int]) -> None:
    runs = tmp / "runs"
    runs.mkdir()
    booted = threading.Event()
    handles: list[RunHandle] = []
    control = ControlSocket(runs / "live")

    def on_booted(handle: RunHandle) -> None:
        handles.append(handle)
        control.attach(handle)
        booted.set()

    market = market_source(BatchSpec(count=200), rate=2_000.0, duration_s=3600, seed=7, live=True)
    thread = threading.Thread(target=run_live, args=(ModuleImage(Path(order_flow.__file__)),
                                                     runs / "live", market.source),
                              kwargs={"on_booted": on_booted}, daemon=True)
    thread.start()
    if not booted.wait(120):
        raise SystemExit("the enclave did not boot")
    handle = handles[0]
    try:
        counter = iter(range(1 << 62))

        def direct(n: int) -> tuple[float, list[float]]:
            latencies: list[float] = []
            lock = threading.Lock()
            stop = time.perf_counter() + seconds

            def caller() -> None:
                while time.perf_counter() < stop:
                    t = time.perf_counter()
                    handle.attest(next(counter).to_bytes(16, "big"))
                    with lock:
                        latencies.append(time.perf_counter() - t)

            started = time.perf_counter()
            callers = [threading.Thread(target=caller) for _ in range(n)]
            for c in callers:
                c.start()
            for c in callers:
                c.join()
            return len(latencies) / (time.perf_counter() - started), latencies

        config = ServeConfig(runs=runs, attest_per_s=1e9, attest_burst=10**9,
                             requests_per_s=1e9, request_burst=10**9)
        app, catalog = build_app(config)
        server = _Server(app, catalog)
        try:
            url = server.url + "/.well-known/zcbench/attestation?nonce="

            def attest(client: httpx.Client, rng: random.Random) -> None:
                response = client.get(url + rng.randbytes(16).hex())
                if response.status_code != 200:
                    raise SystemExit(f"attestation answered {response.status_code}")

            for n in lps:
                own, own_latencies = direct(n)
                rate, latencies = _load(n, seconds, attest)
                print(f"{n:>3} callers: enclave's own {own:,.0f}/s (p50 "
                      f"{_pct(own_latencies, .5) * 1e3:.1f} ms, p99 "
                      f"{_pct(own_latencies, .99) * 1e3:.1f} ms); over HTTP {rate:,.0f}/s "
                      f"(p50 {_pct(latencies, .5) * 1e3:.1f} ms, p99 "
                      f"{_pct(latencies, .99) * 1e3:.1f} ms): {rate / own:.2f}x")
        finally:
            server.close()
            app.close()
    finally:
        handle.stop()
        thread.join(timeout=60)
        control.close()


def _boot_key(document: bytes) -> tuple[bytes, str]:
    doc = cbor2.loads(document)
    return doc["pk"], log_origin(doc["pcr0"], doc["run"])


def _bench_log(tmp: Path, records: int) -> Path:
    """A log of ``records`` small records (a fake boot record, then notes), checkpointed every
    4,096; returns the folder holding its run folder."""
    runs = tmp / "tile-runs"
    if (runs / "bench").is_dir():
        return runs
    signer = LogSigner(Ed25519PrivateKey.generate(), log_origin(bytes(48), "bench"))
    boot = cbor2.dumps({"pk": signer.public_key_spki_der, "pcr0": bytes(48), "run": "bench"})
    store = LogStore.create(runs / "bench" / "log")
    batch = [encode_record(index=0, kind="boot", body=boot, time_ns=1)]
    for index in range(1, records):
        batch.append(encode_record(index=index, kind="note", body=index.to_bytes(8, "big") * 8,
                                   time_ns=index))
        if len(batch) == 4096 or index == records - 1:
            store.append(batch)
            store.sync()
            store.add_checkpoint(signer.sign(store.size, store.root()))
            batch = []
    store.close()
    return runs


def _tiles(tmp: Path, seconds: float, clients: int, records: int) -> None:
    runs = _bench_log(tmp, records)
    config = ServeConfig(runs=runs, boot_key=_boot_key, requests_per_s=1e9, request_burst=10**9)
    app, catalog = build_app(config)
    catalog.sync_once()
    tile_root = config.tiles_root / "bench"
    paths = sorted(str(p.relative_to(tile_root)) for p in (tile_root / "tile" / "0").rglob("*")
                   if p.is_file())
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    static = Starlette(routes=[Mount("/runs/bench", app=StaticFiles(directory=tile_root))])
    results: dict[str, tuple[float, list[float]]] = {}
    for name, served in (("StaticFiles", static), ("zcbench serve", app)):
        server = _Server(served, catalog if name == "zcbench serve" else None)
        base = server.url + "/runs/bench/"

        def fetch(client: httpx.Client, rng: random.Random, base: str = base) -> None:
            response = client.get(base + rng.choice(paths))
            if response.status_code != 200 or len(response.content) != 8192:
                raise SystemExit(f"tile answered {response.status_code}")

        try:
            _load(clients, min(0.5, seconds), fetch)  # warm up
            results[name] = _load(clients, seconds, fetch)
        finally:
            server.close()
    app.close()
    base_rate = results["StaticFiles"][0]
    for name, (rate, latencies) in results.items():
        print(f"{name:>14}: {rate:,.0f} tiles/s ({rate / base_rate:.2f}x StaticFiles), "
              f"p50 {_pct(latencies, .5) * 1e3:.2f} ms, p99 {_pct(latencies, .99) * 1e3:.2f} ms, "
              f"{len(paths)} distinct full tiles, {clients} clients")


def _slices(tmp: Path, seconds: float, clients: int, records: int, width: int = 16) -> None:
    from zcbench.auditlog.export import build_slice
    from zcbench.auditlog.select import RecordFilter
    from zcbench.serve.readers import Readers, add_reader

    runs = _bench_log(tmp, records)
    token = add_reader(tmp / "bench-readers.json", "bench", bodies=True)
    config = ServeConfig(runs=runs, boot_key=_boot_key, requests_per_s=1e9, request_burst=10**9,
                         readers=Readers.load(tmp / "bench-readers.json"), proof_per_s=1e9,
                         proof_burst=10**9, tiles=tmp / "slice-tiles")
    app, catalog = build_app(config)
    catalog.sync_once()
    note = (config.tiles_root / "bench" / "checkpoint").read_bytes()

    def direct(n: int) -> tuple[float, list[float]]:
        latencies: list[float] = []
        lock = threading.Lock()
        stop = time.perf_counter() + seconds

        def caller(seed: int) -> None:
            rng = random.Random(seed)
            mine = []
            while time.perf_counter() < stop:
                start = rng.randrange(1, records - width)
                t = time.perf_counter()
                build_slice(runs / "bench", RecordFilter(index_range=(start, start + width)),
                            checkpoint_note=note).to_bytes()
                mine.append(time.perf_counter() - t)
            with lock:
                latencies.extend(mine)

        started = time.perf_counter()
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(latencies) / (time.perf_counter() - started), latencies

    server = _Server(app, catalog)
    headers = {"Authorization": f"Bearer {token}"}

    def fetch(client: httpx.Client, rng: random.Random) -> None:
        start = rng.randrange(1, records - width)
        response = client.get(f"{server.url}/runs/bench/slice?start={start}"
                              f"&end={start + width}", headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"slice answered {response.status_code}: {response.text}")

    try:
        base_rate, base_lat = direct(clients)
        rate, latencies = _load(clients, seconds, fetch)
    finally:
        server.close()
        app.close()
    print(f"  {width}-record slices of {records:,} records, {clients} callers: build_slice in "
          f"process {base_rate:,.1f}/s (p50 {_pct(base_lat, .5) * 1e3:.1f} ms, p99 "
          f"{_pct(base_lat, .99) * 1e3:.1f} ms); over HTTP {rate:,.1f}/s (p50 "
          f"{_pct(latencies, .5) * 1e3:.1f} ms, p99 {_pct(latencies, .99) * 1e3:.1f} ms): "
          f"{rate / base_rate:.2f}x")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args(argv)
    seconds = 1.0 if args.quick else 5.0
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ZCBENCH_HOME"] = str(Path(tmp) / "home")  # its own dev CA and key broker
        _attestations(Path(tmp), seconds, [1, 4] if args.quick else [1, 4, 16])
        _tiles(Path(tmp), seconds, 4, 4096 if args.quick else 65_536)
        _slices(Path(tmp), seconds, 4, 4096 if args.quick else 65_536)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
