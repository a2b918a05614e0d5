"""Benchmark of the enclave's ledger gate: the replay of a delivered ledger, against the LP's.

A ledger of one genesis commitment, one run-start and N run-checkpoint entries (each a signed
checkpoint of the run's log) is built in memory. Measured, alternating, best of three, in CPU
seconds of this process (other work on a shared machine inflates wall time at random):

* the gate: :class:`zcbench.enclave.ledger.EnclaveLedger` takes the encoded entries (strict
  decoding, the rules replayed in place over a history a ledger checkpoint covers, the compact
  range) and checks the checkpoint's signature and root;
* baseline, same run: the LP's replay of the same entries, :meth:`LedgerState.apply` (a
  state kept on every failure, every run checkpoint's signature verified) and a Merkle root.

Printed: entries/s of both and their ratio, and the gate's time per 1,000 entries.

Then the **boot from a sealed state**: the enclave that passed the gate appends its run-start
and seals its verified state (:meth:`EnclaveLedger.sealed_state`); the next boot resumes from
it (:meth:`EnclaveLedger.resume`: MAC, decoding, the compact range), takes the entries after it
(none here) and passes the gate again under the checkpoint over the run-start. Measured at the
ledger of 20,000 run-checkpoints and, in the same run, at one of 200 (the baseline): printed
the time of each and their ratio (1 means the boot does not grow with the ledger). ``--quick``
runs a small smoke version (figures are then not meaningful).
"""

from __future__ import annotations

import argparse
import hashlib
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.auditlog.merkle import CompactRange, leaf_hash
from zcbench.enclave.ledger import EnclaveLedger, LedgerRequirement
from zcbench.ledger.entries import (
    CommitmentEntry,
    RunCheckpointEntry,
    RunStartEntry,
    decode_entry,
    encode_entry,
)
from zcbench.ledger.rules import LedgerState

ORIGIN = "bench.example/zcbench/gate"
PCR0 = hashlib.sha384(b"bench build").digest()
T0 = 1_700_000_000 * 10**9
NEXT_VKEY = LogSigner(Ed25519PrivateKey.generate(), log_origin(PCR0, "next")).vkey
AFTER_VKEY = LogSigner(Ed25519PrivateKey.generate(), log_origin(PCR0, "after")).vkey


def _ledger(n: int) -> tuple[bytes, list[bytes], bytes]:
    """(ledger key seed, entries, the ledger checkpoint over them)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    origin = log_origin(PCR0, "bench")
    run = LogSigner(Ed25519PrivateKey.generate(), origin)
    bodies = [CommitmentEntry(PCR0, b"\x01" * 32, T0),
              RunStartEntry(PCR0, origin, run.vkey, b"\x05" * 32, None)]
    bodies += [RunCheckpointEntry(origin, run.sign(i + 1, hashlib.sha256(b"%d" % i).digest()))
               for i in range(n)]
    entries = [encode_entry(index=i, time_ns=T0 + i, body=b) for i, b in enumerate(bodies)]
    tree = CompactRange()
    for data in entries:
        tree.append(leaf_hash(data))
    note = LogSigner(key, ORIGIN).sign(len(entries), tree.root())
    return seed, entries, note


def _gate(seed: bytes, entries: list[bytes], note: bytes) -> None:
    ledger = EnclaveLedger(seed, LedgerRequirement(ORIGIN), pcr0=PCR0,
                           clock=lambda: T0 + 10**12, monotonic=time.monotonic)
    for at in range(0, len(entries), 1024):
        ledger.take(entries[at:at + 1024])
    ledger.start(note, run_origin=log_origin(PCR0, "next"),
                 run_vkey=LogSigner(Ed25519PrivateKey.generate(),
                                    log_origin(PCR0, "next")).vkey,
                 boot_document=b"doc")


def _sealed(seed: bytes, entries: list[bytes], note: bytes) -> tuple[bytes, bytes]:
    """The state the gate's enclave sealed after its run-start, and the checkpoint over it."""
    ledger = EnclaveLedger(seed, LedgerRequirement(ORIGIN), pcr0=PCR0,
                           clock=lambda: T0 + 10**12, monotonic=time.monotonic)
    for at in range(0, len(entries), 1024):
        ledger.take(entries[at:at + 1024])
    appended = ledger.start(note, run_origin=log_origin(PCR0, "next"), run_vkey=NEXT_VKEY,
                            boot_document=b"doc")
    return ledger.sealed_state(), appended.checkpoint


BOOTS = 20
"""Boots per measurement (one takes under a millisecond)."""


def _boot(seed: bytes, sealed: bytes, note: bytes) -> None:
    for _ in range(BOOTS):
        ledger = EnclaveLedger(seed, LedgerRequirement(ORIGIN), pcr0=PCR0,
                               clock=lambda: T0 + 10**12, monotonic=time.monotonic)
        ledger.resume(sealed)
        ledger.take([])
        ledger.start(note, run_origin=log_origin(PCR0, "after"), run_vkey=AFTER_VKEY,
                     boot_document=b"doc")


def _lp(entries: list[bytes]) -> None:
    state = LedgerState()
    tree = CompactRange()
    for data in entries:
        state.apply(decode_entry(data))
        tree.append(leaf_hash(data))
    tree.root()


def _cpu(fn: object, *args: object) -> float:
    start = time.process_time()
    fn(*args)  # type: ignore[operator]
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--entries", type=int, default=20_000)
    args = parser.parse_args()
    n = 500 if args.quick else args.entries
    seed, entries, note = _ledger(n)
    gate, lp = [], []
    for _ in range(3):
        gate.append(_cpu(_gate, seed, entries, note))
        lp.append(_cpu(_lp, entries))
    g, b = min(gate), min(lp)
    print(f"ledger of {len(entries)} entries ({n} run-checkpoints)")
    print(f"  gate (enclave replay + checkpoint): {len(entries) / g:10.0f} entries/s, "
          f"{g / len(entries) * 1000 * 1000:.1f} ms per 1,000 entries")
    print(f"  baseline (LP replay, signatures):   {len(entries) / b:10.0f} entries/s")
    print(f"  ratio gate/baseline time: {g / b:.2f}x")
    small_n = 50 if args.quick else 200
    boots = {}
    for size, ledger in ((n, (seed, entries, note)), (small_n, _ledger(small_n))):
        sealed, after = _sealed(*ledger)
        boots[size] = min(_cpu(_boot, ledger[0], sealed, after) for _ in range(5)) / BOOTS
        print(f"boot from the sealed state, ledger of {size + 3} entries: "
              f"{boots[size] * 1000:.2f} ms ({len(sealed)} bytes sealed)")
    print(f"  ratio boot at {n + 3} / at {small_n + 3} entries: "
          f"{boots[n] / boots[small_n]:.2f}x (full gate at {n + 3}: {g * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
