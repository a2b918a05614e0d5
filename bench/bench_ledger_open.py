"""Benchmark of opening a ledger with the host's verified record: it costs the tail, not the
ledger's length.

A ledger folder of one genesis commitment, one run-start and N run-checkpoint entries (each a
signed checkpoint of the run's log) is written to disk under a temporary zcbench home, opened
once (a whole read, which keeps ``verified-state``), then grown by three run-checkpoints whose
record is put back to the one before them, as after a host killed before keeping a newer one.
Measured, best of five, in CPU seconds of this process (other work on a shared machine
inflates wall time at random):

* the open with the record (:meth:`zcbench.ledger.Ledger.open`: the record parsed, the log's
  end checked, the three entries read, replayed and checked against the newer checkpoint), at
  N = 20,000 and, in the same run, at N = 200 (the baseline): printed the time of each and
  their ratio (1 means opening does not grow with the ledger);
* for scale, the whole read at 20,000 (the record removed first), as the open did before the
  record;
* the witness client's consistency proof from the size before the three entries (what a
  witness holds after the last witnessing) to the newest checkpoint: an open with the record at
  the newest size, then :meth:`~zcbench.ledger.Ledger.tree_from` from the witness's mark and
  :func:`~zcbench.auditlog.merkle.consistency_proof_from`, at N = 20,000 and at N = 200 (the
  baseline), with their ratio; and, for scale, the proof as the client built it before (every
  entry read, a tree over them all).

``--quick`` runs a small smoke version (figures are then not meaningful).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.auditlog.storage import LogStore

ORIGIN = "bench.example/zcbench/open"
PCR0 = hashlib.sha384(b"bench build").digest()
T0 = 1_700_000_000 * 10**9
TAIL = 3


def _ledger(folder: Path, n: int) -> tuple[bytes, Any]:
    """A ledger of ``n`` run-checkpoints in ``folder``, opened once so its record is kept;
    returns the record from before the last ``TAIL`` entries and the tree's mark there."""
    from zcbench.ledger import Ledger
    from zcbench.ledger.entries import (
        LEDGER_ENTRIES,
        RunCheckpointEntry,
        RunStartEntry,
        encode_entry,
    )
    from zcbench.ledger.store import VERIFIED_FILE

    with Ledger.init_insecure_host_key(folder, origin=ORIGIN, genesis_pcr0=PCR0,
                                       commitment_sha256=b"\x01" * 32, at_ns=T0) as ledger:
        signer = ledger.key.release(PCR0, ledger.state, T0 + 1)
    origin = log_origin(PCR0, "bench")
    run = LogSigner(Ed25519PrivateKey.generate(), origin)
    bodies = [RunStartEntry(PCR0, origin, run.vkey, b"\x05" * 32, None)]
    bodies += [RunCheckpointEntry(origin, run.sign(i + 1, hashlib.sha256(b"%d" % i).digest()))
               for i in range(n)]
    store = LogStore.open(folder / "log", codec=LEDGER_ENTRIES)
    for at in range(0, len(bodies), 1000):
        store.append([encode_entry(index=1 + at + i, time_ns=T0 + 1 + at + i, body=b)
                      for i, b in enumerate(bodies[at:at + 1000])])
    store.sync()
    store.add_checkpoint(signer.sign(store.size, store.root()))
    store.close()
    (folder / VERIFIED_FILE).unlink(missing_ok=True)
    with Ledger.open(folder) as whole:  # the whole read, which keeps the record
        mark = whole.tree_mark()
    kept = (folder / VERIFIED_FILE).read_bytes()
    with Ledger.open(folder) as ledger:
        for i in range(TAIL):
            note = run.sign(n + 1 + i, hashlib.sha256(b"tail %d" % i).digest())
            ledger.append(RunCheckpointEntry(origin, note), pcr0=PCR0,
                          at_ns=T0 + 10 + n + i)
    return kept, mark


def _open(folder: Path, record: bytes | None) -> float:
    from zcbench.ledger import Ledger
    from zcbench.ledger.store import VERIFIED_FILE

    path = folder / VERIFIED_FILE
    if record is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(record)
    start = time.process_time()
    with Ledger.open(folder) as ledger:
        took = time.process_time() - start
        assert ledger.read_from == (0 if record is None else ledger.size - TAIL)
    return took


def _prove(folder: Path, mark: Any, *, whole: bool = False) -> float:
    """CPU seconds to open the ledger and build the proof from ``mark``'s size to its newest
    checkpoint (``whole``: as the client did before, from every entry)."""
    from zcbench.auditlog.merkle import MerkleTree, consistency_proof_from, leaf_hash
    from zcbench.ledger import Ledger

    start = time.process_time()
    with Ledger.open(folder) as ledger:
        if whole:
            tree = MerkleTree([leaf_hash(e) for e in ledger.entry_bytes])
            proof = tree.consistency_proof(mark.size)
        else:
            compact, later = ledger.tree_from(mark.size, mark)
            proof = consistency_proof_from(compact, later)
        took = time.process_time() - start
        assert ledger.size == mark.size + TAIL
        assert proof
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--entries", type=int, default=20_000)
    args = parser.parse_args()
    large, small = (500, 50) if args.quick else (args.entries, 200)
    home = Path(tempfile.mkdtemp(prefix="zcbench-bench-open-"))
    os.environ["ZCBENCH_HOME"] = str(home / "home")
    try:
        ledgers = {n: (home / f"ledger-{n}", _ledger(home / f"ledger-{n}", n))
                   for n in (large, small)}
        opened = {}
        for n, (folder, (record, _)) in ledgers.items():
            opened[n] = min(_open(folder, record) for _ in range(5))
            print(f"open with the record, ledger of {n + 2 + TAIL} entries ({TAIL} after the "
                  f"record): {opened[n] * 1000:.2f} ms")
        folder = ledgers[large][0]
        whole = min(_open(folder, None) for _ in range(3))
        print(f"  ratio open at {large + 2 + TAIL} / at {small + 2 + TAIL} entries: "
              f"{opened[large] / opened[small]:.2f}x")
        print(f"  whole read at {large + 2 + TAIL} entries (no record): {whole * 1000:.0f} ms, "
              f"{whole / opened[large]:.0f}x the open with the record")
        proved = {}
        for n, (folder, (_, mark)) in ledgers.items():
            proved[n] = min(_prove(folder, mark) for _ in range(5))
            print(f"witness proof from {mark.size} to {mark.size + TAIL}, ledger of "
                  f"{n + 2 + TAIL} entries: {proved[n] * 1000:.2f} ms")
        folder, (_, mark) = ledgers[large]
        before = min(_prove(folder, mark, whole=True) for _ in range(3))
        print(f"  ratio proof at {large + 2 + TAIL} / at {small + 2 + TAIL} entries: "
              f"{proved[large] / proved[small]:.2f}x")
        print(f"  proof from every entry at {large + 2 + TAIL} entries (the client before): "
              f"{before * 1000:.0f} ms, {before / proved[large]:.0f}x")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
