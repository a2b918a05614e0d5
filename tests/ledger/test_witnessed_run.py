"""A live run witnessed as it goes: a real ``zcbench witness serve`` on localhost cosigns the
ledger's checkpoints while the run appends run-checkpoint entries (at the enclave's bounded
rate), and the enclave, measured with that witness as its quorum, serves only once the witness
cosigned its run-start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import zcbench.examples.order_flow as order_flow
from zcbench.auditlog.witness import Witness, load_cosigner
from zcbench.enclave.ledger import LedgerRequirement
from zcbench.host import ReplaySource
from zcbench.host.live import ModuleImage, run_live
from zcbench.ledger import Ledger, ServeRefused, TlogPolicy, check_quorum, parse_policy
from zcbench.ledger.runs import LedgerRunHook
from zcbench.ledger.verify import check_ledger
from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks

pytestmark = pytest.mark.slow

ORIGIN = "acme.example/zcbench/order-flow"
NAME = "w1.example"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class World:
    image: ModuleImage
    ledger: Path
    policy: TlogPolicy
    state: Path
    tmp: Path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The witness key, the image measured with it as quorum, the ledger, the witness server."""
    key = tmp_path / "witness.pem"
    cosigner = load_cosigner(key, NAME, create=True)
    requirement = tmp_path / "requirement.json"
    requirement.write_bytes(LedgerRequirement(
        ORIGIN, f"witness w1 {cosigner.vkey}\nquorum w1\n", checkpoint_interval_s=0.2
    ).to_bytes())
    image = ModuleImage(Path(order_flow.__file__), ledger=requirement)
    ledger_dir = tmp_path / "ledger"
    with Ledger.init_insecure_host_key(
            ledger_dir, origin=ORIGIN, genesis_pcr0=image.expected_pcrs()[0],
            commitment_sha256=b"\x01" * 32) as ledger:
        vkey = ledger.vkey
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "zcbench", "witness", "serve", "--port", str(port), "--state",
         str(tmp_path / "witness-state"), "--key", str(key), "--name", NAME, "--log", vkey],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ}, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "serving" in line, line
    url = f"http://127.0.0.1:{port}"
    policy = parse_policy(f"log {vkey}\nwitness w1 {cosigner.vkey} {url}\nquorum w1\n")
    try:
        yield World(image, ledger_dir, policy, tmp_path / "witness-state", tmp_path)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def _source() -> ReplaySource:
    # 2 s of ticks replayed at their own pace: run-checkpoints come every 0.2 s
    return ReplaySource(generate_ticks(SyntheticConfig(rate=500, duration_s=2.0), seed=5),
                        BatchSpec(count=20), rate=1.0)


def test_run_checkpoints_are_witnessed_while_the_run_goes(world: World) -> None:
    hook = LedgerRunHook(world.ledger, world.tmp / "run", policy=world.policy,
                         checkpoint_interval_s=0.1)
    seen: list[int] = []  # the witness's size for the ledger, sampled while the run goes
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            held = Witness(world.state).state(ORIGIN)
            if held is not None:
                seen.append(held.size)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        summary = run_live(world.image, world.tmp / "run", _source(), ledger=hook)
    finally:
        done.set()
        sampler.join()
    assert summary.status == "completed", summary.reason
    kinds = hook.appended
    assert kinds[0] == "run-start"
    assert kinds[-1] == "run-end"
    assert kinds.count("run-checkpoint") >= 3
    # the enclave's rate bound: no more run-checkpoints than 0.2 s intervals in the run
    assert kinds.count("run-checkpoint") <= summary.elapsed_s / 0.2 + 2
    # the witness followed the ledger during the run, not only at its end
    assert len(set(seen)) >= 3, seen
    with Ledger.open(world.ledger) as ledger:
        final = ledger.size
        witnessed = ledger.witnessed_checkpoint()
    held = Witness(world.state).state(ORIGIN)
    assert held is not None
    assert held.size == final
    assert witnessed is not None
    assert check_quorum(witnessed, world.policy).met
    report = check_ledger(world.ledger, policy=world.policy)
    assert report.ok, report.message


def test_without_the_witness_the_measured_enclave_never_serves(world: World) -> None:
    # a host that withholds the cosignatures (it configures no witness)
    with pytest.raises(ServeRefused) as info:
        run_live(world.image, world.tmp / "run", _source(),
                 ledger=LedgerRunHook(world.ledger, world.tmp / "run"))
    assert info.value.check == "serve_quorum"
    assert not (world.tmp / "run").exists()
    assert Witness(world.state).state(ORIGIN) is None  # the witness saw nothing of it
