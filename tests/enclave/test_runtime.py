"""The enclave runtime in-process: boot document binding, per-batch records and checkpoints,
attest with the caller's nonce, sequence checks, strategy failures, the serve loop's faults."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path

import cbor2
import polars as pl
import pytest

from zcbench.auditlog.checkpoint import verify_checkpoint
from zcbench.auditlog.merkle import MerkleTree, leaf_hash
from zcbench.auditlog.records import decode_record, encode_record
from zcbench.channel import HEADER, Message, memory_pair
from zcbench.enclave import EnclaveRuntime, load_module_image, module_image_pcrs, serve
from zcbench.enclave.boot import BootError
from zcbench.nitro import DevCA, NsmEmulator, parse_document, verify_attestation
from zcbench.strategy import Batch, Signal, Strategy, decode_signals, encode_batch

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class P:
    fail_on: int = -1


class Echo(Strategy):
    """Buys one unit of the first symbol of every batch; raises on batch ``fail_on``."""

    name = "echo"
    params_type = P
    input_fields = ("price",)

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        if batch.seq == self.params.fail_on:
            raise RuntimeError("SECRET-INTERNAL-STATE")
        return [Signal(batch.events["symbol"][0], "buy", 1)]


PCRS = {0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}


def _runtime(fail_on: int = -1) -> EnclaveRuntime:
    ca = DevCA.load_or_create(now=NOW)
    nsm = NsmEmulator(pcrs=PCRS, ca=ca, clock=lambda: NOW)
    return EnclaveRuntime(Echo(P(fail_on)), nsm, pcr0=PCRS[0], clock=lambda: 1_000)


def _batch(seq: int) -> bytes:
    events = pl.DataFrame(
        {"ts": [seq * 10, seq * 10 + 1], "symbol": ["AAA", "BBB"], "price": [100, 101]}
    )
    return encode_batch(Batch(seq, events))


def test_boot_binds_log_key_and_run_id_into_first_record() -> None:
    rt = _runtime()
    booted = rt.boot("run-1")
    doc = verify_attestation(
        booted["document"], trust="dev", at=NOW, expected_pcrs=PCRS, nonce=b"run-1"
    )
    assert doc.simulated
    assert doc.document.public_key == booted["public_key"]
    assert len(booted["public_key"]) == 44
    record = decode_record(booted["record"])
    assert (record.index, record.kind, record.body) == (0, "boot", booted["document"])
    assert booted["origin"] == f"zcbench/{'01' * 8}/run-1"
    cp = verify_checkpoint(booted["checkpoint"], booted["public_key"], booted["origin"])
    assert (cp.size, cp.root) == (1, leaf_hash(booted["record"]))
    assert booted["fields"] == ["ts", "symbol", "price"]
    with pytest.raises(Exception, match="booted already"):
        rt.boot("run-2")


def test_ingest_appends_in_and_out_and_signs_the_new_root() -> None:
    rt = _runtime()
    booted = rt.boot("run-1")
    leaves = [leaf_hash(booted["record"])]
    for seq in range(5):
        reply = rt.ingest(seq, _batch(seq))
        assert "event_time_ns" not in reply.fields  # the host computes it from its own batch
        stamps = {"seq": seq, "time_ns": reply["time_ns"], "event_time_ns": seq * 10 + 1}
        # the leaves are those of the IN record holding the batch exactly as sent and the OUT
        # record holding the signals: what the host rebuilds
        rec_in = encode_record(index=2 * seq + 1, kind="in", body=_batch(seq), **stamps)
        rec_out = encode_record(index=2 * seq + 2, kind="out", body=reply["signals"], **stamps)
        assert reply["leaves"] == [leaf_hash(rec_in), leaf_hash(rec_out)]
        assert decode_signals(reply["signals"]) == [Signal("AAA", "buy", 1)]
        leaves += reply["leaves"]
        cp = verify_checkpoint(reply["checkpoint"], booted["public_key"], booted["origin"])
        assert cp.size == len(leaves)
        assert cp.root == MerkleTree(leaves).root()


def test_a_batchs_seq_is_the_frames_and_its_bytes_carry_none() -> None:
    """One place for the seq: the same events are the same bytes as any batch, logged as sent
    under the frame's seq; a version-1 body (logged before) names its own seq, which must be
    the frame's: a mismatch is refused and changes nothing."""
    from zcbench.errors import DataError

    rt = _runtime(fail_on=1)
    rt.boot("run-1")
    body = _batch(0)
    assert cbor2.loads(body).keys() == {"v", "n", "cols"}
    assert _batch(1) != body  # other events (_batch's ts follow the seq it is given)
    reply = rt.ingest(0, body)
    record = encode_record(index=1, kind="in", seq=0, body=body, time_ns=reply["time_ns"],
                           event_time_ns=1)
    assert reply["leaves"][0] == leaf_hash(record)
    # the same bytes as batch 1: the strategy sees seq 1 (Echo fails on it, by its seq)
    with pytest.raises(Exception, match="batch 1"):
        rt.ingest(1, body)
    rt = _runtime()
    rt.boot("run-1")
    legacy = {**cbor2.loads(_batch(0)), "v": 1}
    assert rt.ingest(0, cbor2.dumps({**legacy, "seq": 0}, canonical=True))["seq"] == 0
    size = rt.size
    with pytest.raises(DataError, match="its bytes say seq 7, it was given as 1"):
        rt.ingest(1, cbor2.dumps({**legacy, "seq": 7}, canonical=True))
    assert rt.size == size
    assert rt.ingest(1, cbor2.dumps({**legacy, "seq": 1}, canonical=True))["seq"] == 1


def test_a_contexts_seq_is_the_frames_and_its_bytes_carry_none() -> None:
    """The feedback frame's seq is the context's: its bytes are the same for any batch and
    logged as sent; a version 2 body (logged before) names its own seq, which must be the
    frame's: a mismatch is refused and changes nothing."""
    from zcbench.strategy import Context, encode_context

    rt = _runtime()
    rt.boot("run-1")
    rt.ingest(0, _batch(0))
    body = encode_context(Context(1, limits=(("max_position", 3),)))
    assert body == encode_context(Context(5, limits=(("max_position", 3),)))
    reply = rt.feedback(1, body)
    assert reply["seq"] == 1
    record = encode_record(index=3, kind="in", seq=1, body=body, time_ns=reply["time_ns"],
                           event_time_ns=None)
    assert reply["leaf"] == leaf_hash(record)
    rt.ingest(1, _batch(1))
    legacy = {**cbor2.loads(body), "v": 2}
    size = rt.size
    with pytest.raises(Exception, match="its bytes say seq 7, it was given as 2"):
        rt.feedback(2, cbor2.dumps({**legacy, "seq": 7}, canonical=True))
    assert rt.size == size
    assert rt.feedback(2, cbor2.dumps({**legacy, "seq": 2}, canonical=True))["seq"] == 2


def test_sequence_gap_and_replay_refused_without_changing_state() -> None:
    rt = _runtime()
    rt.boot("run-1")
    rt.ingest(0, _batch(0))
    a, b = memory_pair()
    t = threading.Thread(target=serve, args=(b, rt), daemon=True)
    t.start()
    for seq, code in ((0, "seq_replay"), (2, "seq_gap")):
        a.send(Message("ingest", {"seq": seq, "batch": _batch(seq)}))
        err = a.recv(timeout=10)
        assert (err.type, err["code"], err["seq"]) == ("error", code, seq)
    a.send(Message("ingest", {"seq": 1, "batch": _batch(1)}))
    assert a.recv(timeout=10)["seq"] == 1
    assert rt.size == 5
    a.send(Message("shutdown", {"reason": "test"}))
    assert a.recv(timeout=10)["size"] == 5
    t.join(10)


def test_strategy_exception_is_a_short_error_and_later_batches_refused() -> None:
    rt = _runtime(fail_on=1)
    rt.boot("run-1")
    a, b = memory_pair()
    threading.Thread(target=serve, args=(b, rt), daemon=True).start()
    a.send(Message("ingest", {"seq": 0, "batch": _batch(0)}))
    assert a.recv(timeout=10).type == "signals"
    a.send(Message("ingest", {"seq": 1, "batch": _batch(1)}))
    err = a.recv(timeout=10)
    assert (err["code"], err["seq"]) == ("strategy", 1)
    assert "RuntimeError" in err["reason"]
    assert "SECRET" not in err["reason"]
    assert "Traceback" not in err["reason"]
    a.send(Message("ingest", {"seq": 2, "batch": _batch(2)}))
    assert a.recv(timeout=10)["code"] == "strategy_failed"
    a.send(Message("checkpoint"))
    assert a.recv(timeout=10)["size"] == 3  # boot + batch 0; nothing of the failed batch


def test_attest_puts_latest_checkpoint_in_user_data() -> None:
    rt = _runtime()
    booted = rt.boot("run-1")
    reply = rt.ingest(0, _batch(0))
    doc = rt.attest(b"lp-nonce-42")["document"]
    parsed = parse_document(doc)
    assert parsed.nonce == b"lp-nonce-42"
    assert parsed.public_key == booted["public_key"]
    assert cbor2.loads(parsed.user_data) == {"checkpoint": reply["checkpoint"]}
    assert rt.checkpoint()["checkpoint"] == reply["checkpoint"]


def test_serve_survives_garbage_and_unknown_requests() -> None:
    rt = _runtime()
    a, b = memory_pair()
    threading.Thread(target=serve, args=(b, rt), daemon=True).start()
    a.send_frame(HEADER.pack(3) + b"\xff\x00\x01")
    assert a.recv(timeout=10)["code"] == "garbage"
    a.send(Message("ingest", {"seq": 0, "batch": _batch(0)}))
    assert a.recv(timeout=10)["code"] == "not_booted"
    a.send(
        Message(
            "booted",
            {
                "run_id": "x",
                "origin": "o",
                "public_key": b"",
                "document": b"",
                "record": b"",
                "checkpoint": b"",
                "fields": [],
            },
        )
    )
    assert a.recv(timeout=10)["code"] == "unexpected"
    a.send(Message("boot", {"run_id": "bad id/with slash", "config": {}}))
    assert a.recv(timeout=10)["code"] == "bad_run_id"
    a.send(Message("boot", {"run_id": "run-1", "config": {}}))
    assert a.recv(timeout=10).type == "booted"
    a.send(Message("ingest", {"seq": 0, "batch": b"not a batch"}))
    err = a.recv(timeout=10)
    assert (err["code"], err["seq"]) == ("bad_request", 0)
    a.send(Message("ingest", {"seq": 0, "batch": _batch(0)}))
    assert a.recv(timeout=10).type == "signals"


def test_module_image_pcrs_come_from_the_loaded_bytes(tmp_path: Path) -> None:
    module = tmp_path / "s.py"
    module.write_text(
        "import dataclasses\nfrom zcbench.strategy import Strategy\n"
        "@dataclasses.dataclass(frozen=True)\nclass P:\n    k: int = 1\n"
        "class S(Strategy):\n    name = 's'\n    params_type = P\n    input_fields = ()\n"
        "    def on_batch(self, batch):\n        return []\n"
    )
    loaded = load_module_image(module, {"k": 2})
    assert loaded.pcrs == module_image_pcrs(module, {"k": 2})
    assert loaded.pcrs[0] != module_image_pcrs(module, {"k": 3})[0]
    module.write_text(module.read_text() + "\n")
    assert module_image_pcrs(module, {"k": 2})[0] != loaded.pcrs[0]
    broken = tmp_path / "b.py"
    broken.write_text("raise ValueError('SECRET')\n")
    with pytest.raises(BootError) as exc:
        load_module_image(broken, {})
    assert "ValueError" in str(exc.value)
    assert "SECRET" not in str(exc.value)


def test_runtime_in_the_image_must_be_the_code_running(tmp_path: Path) -> None:
    import io
    import tarfile

    from zcbench.enclave.boot import check_runtime_matches

    def tar_of(files: dict[str, bytes]) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return out.getvalue()

    pkg = tmp_path / "zcbench"
    (pkg / "enclave").mkdir(parents=True)
    (pkg / "enclave" / "a.py").write_bytes(b"A = 1\n")
    image = tar_of({"runtime/zcbench/enclave/a.py": b"A = 1\n", "requirements.lock": b""})
    check_runtime_matches(image, pkg)
    (pkg / "enclave" / "a.py").write_bytes(b"A = 2\n")
    with pytest.raises(BootError, match="differs"):
        check_runtime_matches(image, pkg)
    (pkg / "enclave" / "a.py").write_bytes(b"A = 1\n")
    (pkg / "enclave" / "b.py").write_bytes(b"")
    with pytest.raises(BootError, match="not in the image"):
        check_runtime_matches(image, pkg)
    with pytest.raises(BootError, match="not a tar"):
        check_runtime_matches(b"garbage" * 100, pkg)


def test_serve_answers_every_random_frame_and_stays_up() -> None:
    import random

    rng = random.Random(1234)
    rt = _runtime()
    a, b = memory_pair(max_frame=4096)
    t = threading.Thread(target=serve, args=(b, rt), daemon=True)
    t.start()
    a.send(Message("boot", {"run_id": "run-1", "config": {}}))
    # the boot reply (document, record, checkpoint) is over this tiny limit: refused, not fatal
    err = a.recv(timeout=10)
    assert (err.type, err["code"]) == ("error", "oversize")
    values: list[object] = [None, True, -1, 0, 7, 2**70, "x", b"\x00", [], {}, [1, "a"], 1.5]
    kinds = ["ingest", "attest", "boot", "checkpoint", "signals", "error", "nope", 3, None]
    for i in range(300):
        if i % 3 == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        else:
            doc: dict[object, object] = {
                "v": rng.choice([1, 1, 1, 2, "1"]),
                "type": rng.choice(kinds),
            }
            for key in rng.sample(["seq", "batch", "nonce", "run_id", "config", "zz"], 2):
                doc[key] = rng.choice(values)
            body = cbor2.dumps(doc)
        a.send_frame(HEADER.pack(len(body)) + body)
        reply = a.recv(timeout=10)
        assert reply.type in ("error", "document", "note", "booted"), reply
        if reply.type == "error":
            assert "Traceback" not in reply["reason"]
    a.send(Message("checkpoint"))
    assert a.recv(timeout=10)["size"] == 1  # nothing random got into the log
    assert t.is_alive()


@pytest.mark.slow
def test_enclave_imports_only_the_runtime_parts() -> None:
    import subprocess
    import sys

    # the enclave image carries auditlog, channel, enclave, keys, nitro and strategy only
    code = (
        "import sys, zcbench.enclave.__main__, zcbench.enclave.boot, zcbench.enclave.runtime\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('zcbench.host', "
        "'zcbench.packager', 'zcbench.cli', 'zcbench.widgets', 'zcbench.backtest', "
        "'zcbench.marketdata', 'zcbench.report', 'zcbench.examples')))\n"
        "print(bad)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
