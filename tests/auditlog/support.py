"""Shared builders for the audit-log tests (no tests here): a fake boot document and verifier,
and a run folder written through the real enclave-state and host-writer code."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import cbor2
import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.auditlog.verify import BootIdentity
from zcbench.auditlog.writer import EnclaveLogState, HostLogWriter
from zcbench.errors import VerificationError
from zcbench.strategy import Batch, Signal, encode_batch, encode_signals

PCR0 = bytes(range(48))
SYMBOLS = ("AAPL", "MSFT", "TSLA")


def fake_boot_document(public_key: bytes, run_id: str, *, trusted: bool = True,
                       pcr0: bytes = PCR0) -> bytes:
    """A stand-in for an attestation document, understood only by :func:`fake_boot_verifier`."""
    return cbor2.dumps({"pk": public_key, "pcr0": pcr0, "run": run_id, "trusted": trusted},
                       canonical=True)


def fake_boot_verifier(document: bytes, trust: str | Path) -> BootIdentity:
    """Trusts documents marked trusted, under trust "fake" only."""
    doc = cbor2.loads(document)
    if trust != "fake" or not doc.get("trusted"):
        raise VerificationError("fake boot document not trusted", check="fake_trust")
    return BootIdentity(public_key=doc["pk"], pcr0=doc["pcr0"], run_id=doc["run"])


def key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def batch_bodies(seq: int, events: int = 2) -> tuple[bytes, bytes, int]:
    """Column-wise IN body, OUT body, and newest event time for batch ``seq``."""
    base = 1_700_000_000_000_000_000 + seq * 1_000_000_000
    symbols = [SYMBOLS[(seq + i) % len(SYMBOLS)] for i in range(events)]
    frame = pl.DataFrame({
        "ts": [base + i for i in range(events)],
        "symbol": symbols,
        "price": [1_000_000 + seq * 10 + i for i in range(events)],
    })
    in_body = encode_batch(Batch(seq=seq, events=frame))
    out_body = encode_signals([Signal(symbol=symbols[0], side="buy", quantity=1 + seq)])
    return in_body, out_body, base + events - 1


@dataclass
class BuiltLog:
    run: Path
    log: Path
    signer: LogSigner
    enclave: EnclaveLogState
    writer: HostLogWriter
    boot_document: bytes

    @property
    def origin(self) -> str:
        return self.signer.origin

    def add_batches(self, count: int) -> None:
        for _ in range(count):
            seq = self.enclave._next_seq
            in_body, out_body, event_time = batch_bodies(seq)
            step = self.enclave.batch(seq, in_body, out_body, time_ns=event_time + 5,
                                      event_time_ns=event_time)
            self.writer.commit(step)


def build_log(run: Path, batches: int = 6, *, run_id: str = "run-1", seed: int = 7,
              segment_bytes: int = 1 << 20, write_boot_file: bool = True) -> BuiltLog:
    """A run folder: boot record, ``batches`` IN/OUT pairs, a checkpoint after each step."""
    signer = LogSigner(key(seed), log_origin(PCR0, run_id))
    document = fake_boot_document(signer.public_key_spki_der, run_id)
    run.mkdir(parents=True, exist_ok=True)
    if write_boot_file:
        (run / "boot.cbor").write_bytes(document)
    enclave = EnclaveLogState(signer)
    writer = HostLogWriter.create(run / "log", signer.public_key_spki_der, signer.origin,
                                  segment_bytes=segment_bytes)
    writer.commit(enclave.boot(document, time_ns=1_700_000_000_000_000_000))
    built = BuiltLog(run, run / "log", signer, enclave, writer, document)
    built.add_batches(batches)
    writer.close()
    return built


def real_run(tmp_path: Path, batches: int = 3) -> Path:
    """A run whose boot record is an emulated Nitro attestation (development CA)."""
    from zcbench.nitro import DevCA, NsmEmulator

    now = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
    pcr0 = bytes.fromhex("ab" * 48)
    ca = DevCA.load_or_create(now=now)
    emulator = NsmEmulator({0: pcr0, 1: b"\x01" * 48, 2: b"\x02" * 48}, ca, clock=lambda: now)
    signer = LogSigner(key(21), log_origin(pcr0, "run-real"))
    document = emulator.attestation(nonce=b"run-real", user_data=None,
                                    public_key=signer.public_key_spki_der)
    run = tmp_path / "real"
    run.mkdir()
    (run / "boot.cbor").write_bytes(document)
    enclave = EnclaveLogState(signer)
    writer = HostLogWriter.create(run / "log", signer.public_key_spki_der, signer.origin)
    writer.commit(enclave.boot(document, time_ns=1))
    for seq in range(batches):
        in_body, out_body, t = batch_bodies(seq)
        writer.commit(enclave.batch(seq, in_body, out_body, time_ns=t + 1, event_time_ns=t))
    writer.close()
    return run
