"""The live run end to end, with the enclave as a real separate process: parity with the
backtest, a killed enclave, a restart, a strategy exception, malformed frames both ways, a
missing build folder."""

from __future__ import annotations

import errno
import json
import os
import textwrap
import threading
import time
from pathlib import Path

import cbor2
import nbformat
import polars as pl
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import zcbench.examples.order_flow as order_flow
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.merkle import CompactRange, leaf_hash
from zcbench.auditlog.records import encode_record
from zcbench.auditlog.storage import LogStore
from zcbench.auditlog.verify import check_log, nitro_boot_verifier
from zcbench.backtest import prepare, replay
from zcbench.channel import HEADER, Message, memory_pair
from zcbench.cli import main
from zcbench.enclave import EnclaveRuntime
from zcbench.errors import EnvError
from zcbench.host import ExecutionLayer, HostLog, MarketDataProxy, ReplaySource, RunProgress
from zcbench.host.execution import read_journal
from zcbench.host.launcher import launch_local
from zcbench.host.live import (
    BuildImage,
    ModuleImage,
    RunHandle,
    RunSummary,
    _Pipeline,
    run_live,
)
from zcbench.host.proxy import DROPPED_NOTE, LiveSource
from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks
from zcbench.nitro import parse_document
from zcbench.packager import package_notebook
from zcbench.strategy import decode_batch, encode_signals, make_strategy

pytestmark = pytest.mark.slow

EXAMPLE = Path(order_flow.__file__)


def _ticks(seconds: float = 2.0, rate: float = 10_000) -> pl.DataFrame:
    return generate_ticks(SyntheticConfig(rate=rate, duration_s=seconds), seed=11)


def _package_example(tmp_path: Path, batch_count: int) -> Path:
    nb = nbformat.v4.new_notebook()
    source = EXAMPLE.read_text().replace("from __future__ import annotations\n", "")
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"batch_count = {batch_count}", metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell(source, metadata={"tags": ["strategy"]}),
    ]
    nbformat.write(nb, tmp_path / "research.ipynb")
    package_notebook(tmp_path / "research.ipynb", tmp_path / "build")
    return tmp_path / "build"


def _notes(run_dir: Path) -> int:
    """Note records of a run: its start control record, its clock records (and any drops)."""
    return sum(r.kind == "note" for r, _ in iter_records(run_dir))


def _verify(run_dir: Path, pcrs: dict[int, bytes]) -> object:
    return check_log(run_dir, trust="dev", boot_verifier=nitro_boot_verifier(pcrs))


def test_parity_sealed_build_signals_equal_backtest_byte_for_byte(tmp_path: Path) -> None:
    build = _package_example(tmp_path, batch_count=500)
    image = BuildImage(build)
    spec = image.batching()
    assert spec == BatchSpec(count=500)
    events = _ticks()
    # the backtest below runs multi-threaded with this process's hash seed
    env = {**os.environ, "POLARS_MAX_THREADS": "1", "PYTHONHASHSEED": "12345"}
    summary = run_live(image, tmp_path / "run", ReplaySource(events, spec), enclave_env=env)
    assert summary.status == "completed", summary.reason
    assert isinstance(summary.isolated_network, bool)  # reported either way

    fields = image.declared_fields()
    assert fields is not None
    data = prepare(events, fields, spec)
    per_batch, _ = replay(make_strategy(order_flow.OrderFlowImbalance), data)
    want_out = [encode_signals(s) for s in per_batch]
    records = [r for r, _ in iter_records(tmp_path / "run")]
    got_in = [r.body for r in records if r.kind == "in"]
    got_out = [r.body for r in records if r.kind == "out"]
    assert got_in == list(data.wires)
    assert got_out == want_out
    assert summary.signals == sum(len(s) for s in per_batch) > 0

    report = _verify(tmp_path / "run", image.expected_pcrs())
    assert report.verified, report.message  # type: ignore[attr-defined]
    assert report.classification == "intact"  # type: ignore[attr-defined]
    # the boot record, a batch's IN and OUT, and notes: the limits at the start, clock readings
    assert _notes(tmp_path / "run") >= 3
    assert report.entries == (  # type: ignore[attr-defined]
        1 + 2 * len(want_out) + _notes(tmp_path / "run"))
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["run_id"] == summary.run_id
    assert sum(saved["freshness_histogram"].values()) == summary.batches
    assert saved["origin"] == summary.origin
    assert saved["image"] == str(build.resolve())
    journal = read_journal(tmp_path / "run").rows
    out_index = {r.index for r in records if r.kind == "out"}
    assert set(journal["log_index"].to_list()) <= out_index
    assert parse_document((tmp_path / "run" / "boot.cbor").read_bytes()).nonce == (
        summary.run_id.encode()
    )


def test_killed_enclave_is_noticed_and_the_run_closes_with_a_verifiable_log(
    tmp_path: Path,
) -> None:
    image = ModuleImage(EXAMPLE)
    events = _ticks(seconds=60, rate=5_000)
    chunks = (events.slice(i, 50) for i in range(0, events.height, 50))
    source = LiveSource(chunks, BatchSpec(count=250), rate=1.0)
    holder: dict[str, RunHandle] = {}
    killed_at: list[float] = []

    def kill_after_some(progress: object) -> None:
        if not killed_at and getattr(progress, "batches", 0) >= 20:
            killed_at.append(time.monotonic())
            holder["run"].enclave.kill()

    summary = run_live(
        image,
        tmp_path / "run",
        source,
        on_booted=lambda h: holder.update(run=h),
        on_progress=kill_after_some,
        reply_timeout=30,
    )
    assert killed_at
    assert time.monotonic() - killed_at[0] < 10  # generous: normally well under a second
    assert summary.status == "enclave_died", summary
    assert summary.batches >= 20
    assert summary.log_size == 1 + 2 * summary.batches + _notes(tmp_path / "run")
    report = _verify(tmp_path / "run", image.expected_pcrs())
    assert report.verified, report.message  # type: ignore[attr-defined]
    assert report.entries == summary.log_size  # type: ignore[attr-defined]
    # no order without a signed signal: every order and fill names a durable, signed OUT record
    journal = read_journal(tmp_path / "run").rows
    out_index = {r.index for r, _ in iter_records(tmp_path / "run") if r.kind == "out"}
    assert set(journal["log_index"].drop_nulls().to_list()) <= out_index
    assert journal.height > 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "enclave_died"


def test_restart_is_a_new_run_with_new_id_key_and_boot_document(tmp_path: Path) -> None:
    image = ModuleImage(EXAMPLE)
    events = _ticks(seconds=0.5)
    runs: list[RunSummary] = []
    for name in ("a", "b"):
        runs.append(run_live(image, tmp_path / name, ReplaySource(events, BatchSpec(count=500))))
    docs = [parse_document((tmp_path / n / "boot.cbor").read_bytes()) for n in ("a", "b")]
    assert runs[0].run_id != runs[1].run_id
    assert runs[0].origin != runs[1].origin
    assert docs[0].public_key != docs[1].public_key
    assert docs[0].pcrs[0] == docs[1].pcrs[0]  # same image, same measurement
    with pytest.raises(Exception, match="not empty"):
        run_live(image, tmp_path / "a", ReplaySource(events, BatchSpec(count=500)))


FAILING = textwrap.dedent(
    """
    import dataclasses
    from zcbench.strategy import Signal, Strategy

    @dataclasses.dataclass(frozen=True)
    class P:
        fail_on: int = 3

    class Failing(Strategy):
        name = "failing"
        params_type = P
        input_fields = ("price",)

        def on_batch(self, batch):
            if batch.seq == self.params.fail_on:
                raise KeyError("SECRET-POSITION-TABLE")
            return [Signal(batch.events["symbol"][0], "buy", 1)]
    """
)


def test_strategy_exception_stops_cleanly_with_a_short_reason(tmp_path: Path) -> None:
    module = tmp_path / "failing.py"
    module.write_text(FAILING)
    image = ModuleImage(module)
    summary = run_live(image, tmp_path / "run", ReplaySource(_ticks(1.0), BatchSpec(count=200)))
    assert summary.status == "strategy_failed"
    assert "KeyError" in summary.reason
    assert "batch 3" in summary.reason
    assert "SECRET" not in summary.reason
    assert "SECRET" not in (tmp_path / "run" / "enclave.stderr").read_text()
    assert summary.batches == 3
    assert summary.log_size == 7 + _notes(tmp_path / "run")
    journal = read_journal(tmp_path / "run").rows
    assert set(journal["seq"].to_list()) <= {0, 1, 2}
    assert _verify(tmp_path / "run", image.expected_pcrs()).verified  # type: ignore[attr-defined]


def test_malformed_frames_to_the_enclave_process_get_error_frames(tmp_path: Path) -> None:
    enclave = launch_local(ModuleImage(EXAMPLE).launch_args(), isolate_network=False)
    try:
        conn = enclave.connect(timeout=60)
        conn.send_frame(HEADER.pack(4) + b"\xff\xff\xff\xff")
        assert conn.recv(timeout=30)["code"] == "garbage"
        conn.send_frame(HEADER.pack(9) + b"\xa1\x61v\x01" + b"\x00" * 5)
        assert conn.recv(timeout=30).type == "error"
        conn.send(Message("attest", {"nonce": b"n"}))
        assert conn.recv(timeout=30)["code"] == "not_booted"
        conn.send(Message("boot", {"run_id": "run-x", "config": {}}))
        assert conn.recv(timeout=60).type == "booted"
        conn.send(Message("ingest", {"seq": 4, "batch": b""}))
        assert conn.recv(timeout=30)["code"] == "seq_gap"
        conn.send(Message("shutdown", {"reason": "test"}))
        assert conn.recv(timeout=30).type == "bye"
        conn.close()
        assert enclave.stop(timeout=30) == 0
    finally:
        if enclave.alive():
            enclave.kill()


class _FakeEnclave:
    """Stands in for the process handle in host-side tests (the peer is in-process)."""

    def alive(self) -> bool:
        return True

    def wait(self, timeout: float) -> int | None:
        return None


def _pipeline_against(peer: object, tmp_path: Path) -> tuple[str, str, ExecutionLayer]:
    host, enclave_end = memory_pair()
    key = Ed25519PrivateKey.generate()
    from zcbench.auditlog.checkpoint import LogSigner

    signer = LogSigner(key, "zcbench/0101010101010101/run-1")
    store = LogStore.create(tmp_path / "log")
    log = HostLog(store, signer.public_key_spki_der, signer.origin)
    threading.Thread(target=peer, args=(enclave_end,), daemon=True).start()  # type: ignore[arg-type]
    execution = ExecutionLayer()
    fields = order_flow.OrderFlowImbalance.fields()
    proxy = MarketDataProxy(ReplaySource(_ticks(0.5), BatchSpec(count=100)), fields)
    pipe = _Pipeline(
        host,
        proxy,
        log,
        execution,
        _FakeEnclave(),
        4,
        10.0,
        time.time_ns,  # type: ignore[arg-type]
        None,
        threading.Event(),
    )
    status, reason = pipe.run()
    store.close()
    return status, reason, execution


def test_host_survives_a_garbage_reply(tmp_path: Path) -> None:
    def peer(conn: object) -> None:
        conn.recv(timeout=10)  # type: ignore[attr-defined]
        conn.send_frame(HEADER.pack(3) + b"\xff\xfe\xfd")  # type: ignore[attr-defined]

    status, reason, execution = _pipeline_against(peer, tmp_path)
    assert status == "enclave_error"
    assert "bad frame" in reason
    assert execution.counts()["order"] == 0


def test_host_stops_on_undecodable_signals(tmp_path: Path) -> None:
    def peer(conn: object) -> None:
        msg = conn.recv(timeout=10)  # type: ignore[attr-defined]
        newest = int(decode_batch(msg["batch"], seq=msg["seq"]).events["ts"].max())
        stamps = {"seq": msg["seq"], "time_ns": 1, "event_time_ns": newest}
        signals = b"\xff"  # not encoded signals; leaves that match it, so the decode decides
        leaves = [
            leaf_hash(encode_record(index=0, kind="in", body=msg["batch"], **stamps)),
            leaf_hash(encode_record(index=1, kind="out", body=signals, **stamps)),
        ]
        reply = Message(
            "signals",
            {"seq": msg["seq"], "time_ns": 1, "signals": signals, "leaves": leaves,
             "checkpoint": b""},
        )
        conn.send(reply)  # type: ignore[attr-defined]

    status, reason, execution = _pipeline_against(peer, tmp_path)
    assert status == "enclave_error"
    assert "malformed reply for batch 0" in reason
    assert execution.counts()["order"] == 0


def _unattested_runtime() -> EnclaveRuntime:
    """A booted enclave runtime with its own key, its log empty so its indices match the
    host's (whose log starts after the boot record it was never shown)."""
    import datetime as dt

    from zcbench.nitro import DevCA, NsmEmulator

    nsm = NsmEmulator(pcrs={0: b"\x01" * 48}, ca=DevCA.load_or_create(now=dt.datetime.now(dt.UTC)))
    rt = EnclaveRuntime(make_strategy(order_flow.OrderFlowImbalance), nsm, pcr0=b"\x01" * 48)
    rt.boot("run-1")
    rt._state.log.compact = CompactRange()  # type: ignore[union-attr]
    return rt


def test_host_refuses_an_in_leaf_other_than_the_batch_it_sent(tmp_path: Path) -> None:


    def peer(conn: object) -> None:
        rt = _unattested_runtime()
        msg = conn.recv(timeout=10)  # type: ignore[attr-defined]
        # a lying enclave: it computes over (and signs) another batch than the host sent
        other = msg["batch"] + b"\x00"
        reply = rt.ingest(msg["seq"], msg["batch"])
        fake = encode_record(
            index=0, kind="in", seq=msg["seq"], body=other, time_ns=reply["time_ns"],
            event_time_ns=int(decode_batch(msg["batch"], seq=msg["seq"]).events["ts"].max()),
        )
        fields = {**reply.fields, "leaves": [leaf_hash(fake), reply["leaves"][1]]}
        conn.send(Message("signals", fields))  # type: ignore[attr-defined]

    status, reason, execution = _pipeline_against(peer, tmp_path)
    assert status == "verification_failed"
    assert "IN leaf" in reason
    assert execution.counts()["order"] == 0


def test_host_places_no_order_on_a_checkpoint_from_another_key(tmp_path: Path) -> None:


    def peer(conn: object) -> None:
        # an enclave with its own (unattested) key: valid records, a signature the host refuses
        rt = _unattested_runtime()
        msg = conn.recv(timeout=10)  # type: ignore[attr-defined]
        conn.send(rt.ingest(msg["seq"], msg["batch"]))  # type: ignore[attr-defined]

    status, reason, execution = _pipeline_against(peer, tmp_path)
    assert status == "verification_failed", reason
    assert execution.counts()["order"] == 0


def test_missing_build_folder_is_a_clear_environment_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(EnvError, match="does not exist"):
        run_live(
            BuildImage(tmp_path / "nope"),
            tmp_path / "run",
            ReplaySource(_ticks(0.1), BatchSpec(count=10)),
        )
    assert not (tmp_path / "run").exists()
    assert main(["run", str(tmp_path / "nope")]) == 2  # a missing input path
    assert "zcbench package" in capsys.readouterr().err


def test_bench_live_quick_completes(tmp_path: Path) -> None:
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_live.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for figure in ("ratio live / (a)", "ratio live / (b)", "ping-pong", "freshness"):
        assert figure in done.stdout


def test_attest_during_a_run_and_after_the_last_batch(tmp_path: Path) -> None:
    import cbor2

    from zcbench.auditlog.checkpoint import verify_checkpoint
    from zcbench.nitro import verify_attestation

    image = ModuleImage(EXAMPLE)
    events = _ticks(seconds=30, rate=5_000)
    chunks = (events.slice(i, 50) for i in range(0, events.height, 50))
    source = LiveSource(chunks, BatchSpec(count=250), rate=1.0)
    got: dict[str, bytes] = {}
    batches_logged = threading.Event()

    def lp(handle: RunHandle) -> None:
        # mid-run: once batches are logged, while the source still has most of its 30 s
        if batches_logged.wait(120):
            got["doc"] = handle.attest(b"lp-nonce-1")
        handle.stop()

    def on_booted(handle: RunHandle) -> None:
        threading.Thread(target=lp, args=(handle,), daemon=True).start()

    def on_progress(progress: RunProgress) -> None:
        if progress.batches > 0:  # reported every 20 batches
            batches_logged.set()

    summary = run_live(
        image, tmp_path / "run", source, on_booted=on_booted, on_progress=on_progress,
        final_attest_nonce=b"final-nonce"
    )
    assert "doc" in got, "no batch was logged within 120 s"
    assert summary.status == "stopped", summary.reason
    assert summary.attestation == "attestation.cbor"
    boot = parse_document((tmp_path / "run" / "boot.cbor").read_bytes())
    assert boot.public_key is not None
    for doc, nonce in (
        (got["doc"], b"lp-nonce-1"),
        ((tmp_path / "run" / "attestation.cbor").read_bytes(), b"final-nonce"),
    ):
        verified = verify_attestation(
            doc,
            trust="dev",
            at=parse_document(doc).time,
            expected_pcrs=image.expected_pcrs(),
            nonce=nonce,
        )
        assert verified.document.public_key == boot.public_key
        note = cbor2.loads(verified.document.user_data)["checkpoint"]
        cp = verify_checkpoint(note, boot.public_key, summary.origin)
        assert 1 <= cp.size <= summary.log_size
    assert cp.size == summary.log_size  # the final document carries the last checkpoint


def test_market_data_failure_stops_the_run_with_the_reason(tmp_path: Path) -> None:
    events = _ticks(1.0).drop("bid")  # the strategy declared bid: the proxy cannot serve it
    summary = run_live(
        ModuleImage(EXAMPLE), tmp_path / "run", ReplaySource(events, BatchSpec(count=500))
    )
    assert summary.status == "host_error"
    assert "market data" in summary.reason
    assert "bid" in summary.reason
    assert summary.orders == 0


def test_full_queue_drops_are_counted_never_silent(tmp_path: Path) -> None:
    events = _ticks(2.0, rate=20_000)
    chunks = (events.slice(i, 20) for i in range(0, events.height, 20))
    # far faster than real time into a one-batch queue: a live source cannot be held back
    source = LiveSource(chunks, BatchSpec(count=100), rate=1e6)
    summary = run_live(ModuleImage(EXAMPLE), tmp_path / "run", source, queue_size=1)
    assert summary.status == "completed", summary.reason
    assert summary.events + summary.dropped_events == events.height
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["dropped_events"] == summary.dropped_events
    assert summary.dropped_batches > 0
    # and in the signed log, in order with the batches: count, place in the sequence, times
    report = check_log(tmp_path / "run", trust="dev")
    assert report.verified, report.message  # type: ignore[attr-defined]
    records = [r for r, _ in iter_records(tmp_path / "run")]
    every = [(i, cbor2.loads(r.body)) for i, r in enumerate(records) if r.kind == "note"]
    notes = [(i, n) for i, n in every if n["note"] == DROPPED_NOTE]
    assert notes
    # the other notes: the limits at the start and the clock readings
    assert {n["note"] for _, n in every} - {DROPPED_NOTE} <= {
        "zcbench.control/1", "zcbench.clock/1"}
    assert sum(n["batches"] for _, n in notes) == summary.dropped_batches
    assert sum(n["events"] for _, n in notes) == summary.dropped_events
    for i, n in notes:
        before = [r.seq for r in records[:i] if r.kind == "out"]
        assert n["after_seq"] == (before[-1] if before else None)
        assert n["first_event_ns"] <= n["last_event_ns"]
        assert n["first_received_ns"] <= n["last_received_ns"]


def test_sigterm_during_a_run_writes_an_interrupted_summary_and_report_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    events = _ticks(60.0, rate=2_000)
    chunks = (events.slice(i, 20) for i in range(0, events.height, 20))
    source = LiveSource(chunks, BatchSpec(count=100), rate=1.0)
    fired: list[int] = []  # the build below batches by 100 events too

    def terminate_after_some(progress: object) -> None:
        if not fired and getattr(progress, "batches", 0) >= 20:
            fired.append(1)
            os.kill(os.getpid(), signal.SIGTERM)

    image = BuildImage(_package_example(tmp_path, batch_count=100))
    summary = run_live(image, tmp_path / "run", source, on_progress=terminate_after_some)
    assert summary.status == "interrupted"
    assert "SIGTERM" in summary.reason
    assert "kept:" in summary.reason
    assert summary.batches >= 20
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["status"] == "interrupted"
    report = check_log(tmp_path / "run", trust="dev")
    assert report.verified, report.message  # type: ignore[attr-defined]
    assert (tmp_path / "run" / "journal.jsonl").is_file()
    capsys.readouterr()
    out = str(tmp_path / "r.html")
    code = main(["report", str(tmp_path / "run"), "--out", out, "--trust", "dev"])
    assert code == 0, capsys.readouterr()


class _FullDisk:
    """The real file system, except that writes into the log fail with ENOSPC once ``room``
    bytes have been written."""

    def __init__(self, room: int) -> None:
        from zcbench.auditlog._fs import OsFileSystem

        self.real = OsFileSystem()
        self.room = room

    def open_append(self, path: Path, *, create: bool) -> object:
        real = self.real.open_append(path, create=create)
        disk = self

        class File:
            def write(self, data: bytes) -> None:
                if len(data) > disk.room:
                    real.write(data[: disk.room])  # a short write, then the disk is full
                    disk.room = 0
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                disk.room -= len(data)
                real.write(data)

            def fsync(self) -> None:
                real.fsync()

            def close(self) -> None:
                real.close()

        return File()

    def __getattr__(self, name: str) -> object:
        if name == "real":  # not set yet: being unpickled in the log writer process
            raise AttributeError(name)
        return getattr(self.real, name)


def test_disk_full_stops_the_run_with_one_line_and_the_log_verifies(tmp_path: Path) -> None:
    events = _ticks(4.0, rate=5_000)
    summary = run_live(
        ModuleImage(EXAMPLE),
        tmp_path / "run",
        ReplaySource(events, BatchSpec(count=100)),
        # room for more than one whole group commit (a window of 64 batches of about 5.6 KB
        # each), less than the run's 1.1 MB: some batches are durable and acted on before
        # the disk fills, however the batches are grouped on a loaded machine
        log_fs=_FullDisk(room=450_000),  # type: ignore[arg-type]
    )
    assert summary.status == "host_error"
    assert "\n" not in summary.reason
    assert "Errno" not in summary.reason
    assert "No space left on device" in summary.reason
    assert "seg-00000000.zlog" in summary.reason or "checkpoints.zlog" in summary.reason
    assert 0 < summary.batches < 200
    assert summary.log_size > 1
    # the log verifies to its last durable record (a torn tail is cut, nothing acted is lost)
    report = check_log(tmp_path / "run", trust="dev")
    assert report.verified, report.message  # type: ignore[attr-defined]
    assert report.entries >= summary.log_size  # type: ignore[attr-defined]
    journal = read_journal(tmp_path / "run").rows
    out_index = {r.index for r, _ in iter_records(tmp_path / "run") if r.kind == "out"}
    assert set(journal["log_index"].to_list()) <= {i for i in out_index if i < summary.log_size}


def test_cli_run_on_a_full_disk_exits_3_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from zcbench.auditlog import storage

    build = _package_example(tmp_path, batch_count=100)
    real_create = storage.LogStore.create.__func__  # type: ignore[attr-defined]

    def create(cls: type, folder: Path, **kw: object) -> object:
        return real_create(cls, folder, fs=_FullDisk(room=40_000))

    monkeypatch.setattr(storage.LogStore, "create", classmethod(create))
    code = main([
        "run", str(build), "--synthetic", "--duration", "5", "--rate", "5000",
        "--run-dir", str(tmp_path / "run"),
    ])
    out, err = capsys.readouterr()
    assert code == 3
    assert "Traceback" not in err + out
    assert "Errno" not in err + out
    line = out.splitlines()[0]
    assert "host_error" in line
    assert "No space left on device" in line
    assert ".zlog" in line


def test_cli_run_replays_a_data_file_and_prints_one_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zcbench.marketdata import write_events

    build = _package_example(tmp_path, batch_count=500)
    data = write_events(_ticks(1.0), tmp_path / "ticks.parquet")
    code = main(
        ["run", str(build), "--data", str(data), "--run-dir", str(tmp_path / "run"), "--json"]
    )
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out)
    assert doc["status"] == "completed"
    assert doc["events"] == 10_000
    assert doc["image"] == str(build.resolve())
    for name in ("log", "boot.cbor", "journal.jsonl", "summary.json"):
        assert (tmp_path / "run" / name).exists()
    code = main(
        [
            "run",
            str(build),
            "--synthetic",
            "--rate",
            "5000",
            "--duration",
            "1",
            "--run-dir",
            str(tmp_path / "live"),
            "--max-position",
            "0",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "SIMULATED" in text
    assert "network isolation" in text
    journal = read_journal(tmp_path / "live").rows
    assert "reject" in journal["event"].to_list()
    assert "fill" not in journal["event"].to_list()  # every order over a zero position limit


class _ThreadEnclave:
    """An in-process enclave behind a real Unix socket: another launcher for the same runner."""

    isolated_network = False

    def __init__(self, image: ModuleImage) -> None:
        import datetime as dt

        from zcbench.channel import listen, private_socket_dir
        from zcbench.enclave import load_module_image, serve
        from zcbench.nitro import DevCA, NsmEmulator

        loaded = load_module_image(image.module, image.params)
        ca = DevCA.load_or_create(now=dt.datetime.now(dt.UTC))
        nsm = NsmEmulator(pcrs={i: loaded.pcrs[i] for i in (0, 1, 2)}, ca=ca)
        runtime = EnclaveRuntime(loaded.strategy, nsm, pcr0=loaded.pcrs[0])
        self.folder = private_socket_dir()
        self.address = f"unix:{self.folder}/e.sock"
        self.listener = listen(self.address)
        self.conn: object = None

        def main() -> None:
            self.conn = self.listener.accept(timeout=30)
            serve(self.conn, runtime)  # type: ignore[arg-type]

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()

    def connect(self, *, timeout: float = 30.0) -> object:
        from zcbench.channel import connect

        return connect(self.address, timeout=timeout)

    def alive(self) -> bool:
        return self.thread.is_alive()

    def wait(self, timeout: float) -> int | None:
        self.thread.join(timeout)
        return None if self.thread.is_alive() else 0

    def kill(self) -> None:
        if self.conn is not None:
            self.conn.close("killed")  # type: ignore[attr-defined]

    def stop(self, timeout: float = 10.0) -> int | None:
        code = self.wait(timeout)
        self.listener.close()
        os.rmdir(self.folder)
        return code

    def diagnostics(self) -> str:
        return ""


def test_the_runner_takes_another_launcher(tmp_path: Path) -> None:
    image = ModuleImage(EXAMPLE)
    summary = run_live(
        image,
        tmp_path / "run",
        ReplaySource(_ticks(1.0), BatchSpec(count=500)),
        launcher=lambda _: _ThreadEnclave(image),  # type: ignore[arg-type,return-value]
    )
    assert summary.status == "completed", summary.reason
    assert summary.batches == 20
    assert summary.isolated_network is False
    assert _verify(tmp_path / "run", image.expected_pcrs()).verified  # type: ignore[attr-defined]


_MEMORY_RUN = """
import resource, sys, tempfile
from pathlib import Path
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.proxy import LiveSource, synthetic_feed
from zcbench.marketdata import BatchSpec, SyntheticConfig
batches, module = int(sys.argv[1]), Path(sys.argv[2])
feed = synthetic_feed(SyntheticConfig(rate=20_000, duration_s=batches * 10 / 20_000), seed=1)
source = LiveSource(feed, BatchSpec(count=10), rate=1e6, lossless=True)  # as fast as it goes
with tempfile.TemporaryDirectory() as tmp:
    s = run_live(ModuleImage(module), Path(tmp) / "run", source)
assert s.status == "completed" and s.batches == batches, (s.status, s.reason, s.batches)
# VmHWM: this process's own peak (ru_maxrss can carry the parent's over fork + exec)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""

_NOOP = '''
import dataclasses
from zcbench.strategy import Strategy

@dataclasses.dataclass(frozen=True)
class P:
    pass

class Noop(Strategy):
    name = "noop"
    params_type = P
    input_fields = ("price",)

    def on_batch(self, batch):
        return []
'''


def _peak_rss_kb(batches: int, module: Path) -> tuple[int, int]:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_RUN, str(batches), str(module)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    host, enclave = done.stdout.split()
    return int(host), int(enclave)


def test_host_memory_stays_under_a_bound_independent_of_run_length(tmp_path: Path) -> None:
    """A run 8 times longer (16,000 batches against 2,000, a streamed synthetic feed, a
    strategy that never trades so no price is ever asked for) peaks within 10 % of the short
    run's memory, host and enclave, and the host under a fixed 400 MB: nothing holds the
    run's events, records, signals or latencies. Not timed; run lengths are batch counts."""
    module = tmp_path / "noop.py"
    module.write_text(_NOOP)
    short_host, short_enclave = _peak_rss_kb(2_000, module)
    long_host, long_enclave = _peak_rss_kb(16_000, module)
    assert long_host <= short_host * 1.10, (short_host, long_host)
    assert long_enclave <= short_enclave * 1.10, (short_enclave, long_enclave)
    assert long_host < 400 * 1024
