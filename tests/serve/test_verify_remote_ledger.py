"""``verify remote`` with the ledger: a live enclave's run is held to the ledger the same server
serves, and fails while the ledger holds no run-start of it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.serve.gated_run import GatedRun, grow_to
from tests.serve.support import RunningServer
from zcbench.auditlog.checkpoint import log_verifier
from zcbench.ledger import RunStartEntry
from zcbench.ledger.store import Ledger
from zcbench.nitro import export_dev_root, parse_document
from zcbench.nitro.commitment import Commitment
from zcbench.serve.app import ServeConfig
from zcbench.serve.remote import check_remote

pytestmark = pytest.mark.slow


def test_a_live_run_is_held_to_the_served_ledger(tmp_path: Path, zcbench_home: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    run = GatedRun(runs, "run", "run-ledger")
    try:
        export_dev_root(tmp_path / "dev-root.pem")
        pcrs = run.image.expected_pcrs()
        ledger = Ledger.init_insecure_host_key(
                tmp_path / "ledger", origin="acme.example/zcbench/order-flow",
                genesis_pcr0=pcrs[0], commitment_sha256=b"\x01" * 32)
        commitment = Commitment(pcrs=pcrs)
        with RunningServer(ServeConfig(runs=runs, ledger=ledger.folder)) as server:
            grow_to(run, server, 3)
            trust = tmp_path / "dev-root.pem"
            missing = check_remote(server.url, commitment, trust=trust, ledger_vkey=ledger.vkey)
            assert not missing.verified
            assert missing.failed_check == "ledger_run"
            assert missing.ledger is not None
            assert "ledger_pcr0" in missing.ledger["checks"]
            assert run.handle is not None
            origin = str(run.handle.origin)
            boot = (runs / "run" / "boot.cbor").read_bytes()
            public_key = parse_document(boot).public_key
            assert public_key is not None
            ledger.append(RunStartEntry(pcrs[0], origin, log_verifier(public_key, origin).vkey,
                                        hashlib.sha256(boot).digest(), None), pcr0=pcrs[0])
            server.catalog.sync_once()
            report = check_remote(server.url, commitment, trust=trust, ledger_vkey=ledger.vkey,
                                  state=tmp_path / "lp")
            assert report.verified, report.message
            assert report.ledger is not None
            assert report.ledger["checks"][-2:] == ["ledger_run", "ledger_state"]
            assert report.to_dict()["ledger"]["run_start_index"] == 1
        ledger.close()
    finally:
        run.stop()
