"""Live runs held to the ledger: a run appends run-start and run-end and its log verifies
against the ledger; a build announced with a notice, or revoked, never serves; a run the
ledger does not hold fails the LP's check; a limit change during a run is a control entry."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import zcbench.examples.order_flow as order_flow
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.verify import check_log, nitro_boot_verifier
from zcbench.cli import main
from zcbench.enclave.ledger import LedgerRequirement
from zcbench.errors import UsageError
from zcbench.host import ReplaySource
from zcbench.host.controls import control_history
from zcbench.host.live import ModuleImage, RunHandle, run_live
from zcbench.host.proxy import LiveSource
from zcbench.keys import LocalKeyBroker
from zcbench.ledger import Ledger, ServeRefused
from zcbench.ledger.entries import ControlEntry
from zcbench.ledger.runs import LedgerRunHook, check_run_at
from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks
from zcbench.serve.control import ControlSocket

pytestmark = pytest.mark.slow

ORIGIN = "acme.example/zcbench/order-flow"
IMAGE = ModuleImage(Path(order_flow.__file__))


def _source() -> ReplaySource:
    return ReplaySource(generate_ticks(SyntheticConfig(rate=2_000, duration_s=1.0), seed=3),
                        BatchSpec(count=50))  # 40 batches: on_progress every 20


def _measured(tmp_path: Path) -> ModuleImage:
    """The image measured with its ledger requirement (run-checkpoints as often as asked)."""
    path = tmp_path / "ledger-requirement.json"
    path.write_bytes(LedgerRequirement(ORIGIN, None, checkpoint_interval_s=0.0).to_bytes())
    return ModuleImage(Path(order_flow.__file__), ledger=path)


def _run(image: ModuleImage, ledger_dir: Path, run_dir: Path) -> LedgerRunHook:
    hook = LedgerRunHook(ledger_dir, run_dir, checkpoint_interval_s=0.0)
    summary = run_live(image, run_dir, _source(), ledger=hook)
    assert summary.status == "completed", summary.reason
    return hook


def test_runs_in_the_ledger_and_the_lp_holds_a_run_to_it(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    image = _measured(tmp_path)
    pcr0 = image.expected_pcrs()[0]
    assert pcr0 != IMAGE.expected_pcrs()[0]  # the requirement is measured
    ledger_dir = tmp_path / "ledger"
    Ledger.init_insecure_host_key(ledger_dir, origin=ORIGIN, genesis_pcr0=pcr0,
                commitment_sha256=b"\x01" * 32).close()
    shutil.copytree(ledger_dir, tmp_path / "empty-ledger")
    # a host that withholds the ledger: the enclave refuses every batch
    withheld = run_live(image, tmp_path / "run0", _source())
    assert withheld.status == "enclave_error"
    assert "gate" in withheld.reason
    first = _run(image, ledger_dir, tmp_path / "run1")
    assert first.appended[0] == "run-start"
    assert first.appended[-1] == "run-end"
    assert "run-checkpoint" in first.appended
    assert (ledger_dir / "enclave-state").is_file()  # the enclave's sealed state at run-end
    second = _run(image, ledger_dir, tmp_path / "run2")  # its boot takes only entries after it
    with Ledger.open(ledger_dir) as ledger:
        runs = list(ledger.state.runs.values())
        assert [r.origin for r in runs] == [first.origin, second.origin]
        assert all(r.ended for r in runs)
        # run 2's run-start names run 1's final checkpoint: no run can be left out
        start2 = ledger.entries[runs[1].start_index].body
        assert start2.previous_checkpoint == runs[0].last_checkpoint  # type: ignore[union-attr]
        summary = (tmp_path / "run2" / "summary.json").read_bytes()
        assert runs[1].summary_sha256 == hashlib.sha256(summary).digest()
    pcrs = image.expected_pcrs()
    for run in ("run1", "run2"):
        report = check_log(tmp_path / run, trust="dev", boot_verifier=nitro_boot_verifier(pcrs))
        assert report.verified
        held = check_run_at(ledger_dir, tmp_path / run, report)
        assert held.ok, held.message
        missing = check_run_at(tmp_path / "empty-ledger", tmp_path / run, report)
        assert not missing.ok
        assert missing.failed == "run_start"
    # the CLI: log verify RUN --ledger DIR
    assert main(["log", "verify", str(tmp_path / "run1"), "--trust", "dev", "--ledger",
                 str(ledger_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ledger"]["ok"]
    assert main(["log", "verify", str(tmp_path / "run1"), "--trust", "dev", "--ledger",
                 str(tmp_path / "empty-ledger")]) == 1
    assert "no run-start" in capsys.readouterr().out


def test_a_build_not_yet_valid_or_revoked_never_serves(tmp_path: Path) -> None:
    pcr0 = IMAGE.expected_pcrs()[0]
    other = hashlib.sha384(b"the live build").digest()
    ledger_dir = tmp_path / "ledger"
    with Ledger.init_insecure_host_key(ledger_dir, origin=ORIGIN, genesis_pcr0=other,
                     commitment_sha256=b"\x01" * 32) as ledger:
        ledger.announce(pcr0, b"\x02" * 32, notice_ns=7 * 86_400 * 10**9)
    hook = LedgerRunHook(ledger_dir, tmp_path / "run")
    # the key broker (its policy follows the ledger) does not release the key in the notice
    with pytest.raises(ServeRefused) as info:
        run_live(IMAGE, tmp_path / "run", _source(), ledger=hook)
    assert info.value.check == "ledger_key_release"
    assert not (tmp_path / "run").exists()  # it served nothing: the run folder is gone
    assert any("only from" in r.reason for r in LocalKeyBroker().refusals())
    with Ledger.open(ledger_dir) as ledger:
        ledger.revoke(pcr0, reason="withdrawn before valid_from")
        assert len(ledger.state.runs) == 0
    with pytest.raises(ServeRefused) as info:
        run_live(IMAGE, tmp_path / "run", _source(),
                 ledger=LedgerRunHook(ledger_dir, tmp_path / "run"))
    assert info.value.check == "ledger_key_release"
    assert any("revoked" in r.reason for r in LocalKeyBroker().refusals())
    with Ledger.open(ledger_dir) as ledger:
        assert len(ledger.state.runs) == 0
        assert ledger.size == 3


def test_every_acknowledged_entry_survives_a_kill(tmp_path: Path) -> None:
    """A writer killed (SIGKILL) while appending: every entry it acknowledged is there after
    reopening, the ledger verifies, and appending goes on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from zcbench.ledger.verify import check_ledger

    ledger_dir = tmp_path / "ledger"
    Ledger.init_insecure_host_key(
            ledger_dir, origin=ORIGIN, genesis_pcr0=hashlib.sha384(b"0").digest(),
            commitment_sha256=b"\x01" * 32).close()
    script = (
        "import hashlib, sys\n"
        "from pathlib import Path\n"
        "from zcbench.ledger import Ledger\n"
        "ledger = Ledger.open(Path(sys.argv[1]))\n"
        "for i in range(1, 100000):\n"
        "    a = ledger.announce(hashlib.sha384(str(i).encode()).digest(), b'\\x02' * 32,"
        " notice_ns=0)\n"
        "    print(a.entry.index, flush=True)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(ledger_dir)],
                               stdout=subprocess.PIPE, env={**os.environ})
    assert process.stdout is not None
    acknowledged = 0
    deadline = time.monotonic() + 60
    while acknowledged < 15 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        acknowledged = int(line)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    assert acknowledged >= 15
    report = check_ledger(ledger_dir)
    assert report.ok, report.message
    assert report.size >= acknowledged + 1
    with Ledger.open(ledger_dir) as ledger:
        assert ledger.size >= acknowledged + 1
        ledger.announce(hashlib.sha384(b"after").digest(), b"\x02" * 32, notice_ns=0)
    assert check_ledger(ledger_dir).ok


_KILLED_HOST = """
import sys
from pathlib import Path

import zcbench.examples.order_flow as order_flow
from zcbench.auditlog.storage import LogStore
from zcbench.host import ReplaySource
from zcbench.host.live import ModuleImage, run_live
from zcbench.ledger.runs import LedgerRunHook
from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks

ledger_dir, run_dir, requirement = map(Path, sys.argv[1:4])
real = LogStore.add_checkpoint


def add_checkpoint(self, note):  # the kill point: the ledger's entry fsynced, its checkpoint not
    if (self.folder.parent / "ledger.json").is_file():
        print("K", flush=True)
        sys.stdin.read()
    return real(self, note)


LogStore.add_checkpoint = add_checkpoint
source = ReplaySource(generate_ticks(SyntheticConfig(rate=2_000, duration_s=1.0), seed=3),
                      BatchSpec(count=50))
run_live(ModuleImage(Path(order_flow.__file__), ledger=requirement), run_dir, source,
         ledger=LedgerRunHook(ledger_dir, run_dir, checkpoint_interval_s=0.0))
"""


def test_a_host_killed_between_the_run_start_and_its_checkpoint_leaves_the_next_run_free(
        tmp_path: Path) -> None:
    """The host (and its enclave) SIGKILLed after the run-start is fsynced in the ledger and
    before the enclave's checkpoint over it is: the next run's gate settles the tail (the
    pending checkpoint completes it, recorded), passes, and the ledger verifies."""
    import os
    import signal
    import subprocess
    import sys

    from zcbench.ledger.verify import check_ledger

    image = _measured(tmp_path)
    ledger_dir = tmp_path / "ledger"
    Ledger.init_insecure_host_key(ledger_dir, origin=ORIGIN, genesis_pcr0=image.expected_pcrs()[0],
                commitment_sha256=b"\x01" * 32).close()
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_HOST, str(ledger_dir), str(tmp_path / "run1"),
         str(tmp_path / "ledger-requirement.json")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ},
        start_new_session=True)  # its own process group: the host and its enclave
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        assert process.stdout.readline() == b"K\n"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
        process.stdin.close()
    killed = check_ledger(ledger_dir)
    assert (killed.size, killed.checkpoint_size) == (2, 1)  # the run-start, unsigned
    second = _run(image, ledger_dir, tmp_path / "run2")
    assert second.appended[0] == "run-start"
    from zcbench.ledger.store import read_recoveries

    [record] = read_recoveries(ledger_dir)
    assert record["action"] == "completed"
    assert [e["type"] for e in record["entries"]] == ["run-start"]
    report = check_ledger(ledger_dir)
    assert report.ok, report.message
    assert report.checkpoint_size == report.size
    runs = list(report.state.runs.values())
    assert len(runs) == 2
    assert not runs[0].ended
    assert runs[1].ended
    assert runs[1].origin == second.origin


def test_control_entries_follow_their_rules(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from zcbench.auditlog.checkpoint import log_verifier
    from zcbench.ledger import LedgerRuleError
    from zcbench.ledger.entries import ControlEntry, RunStartEntry, decode_entry

    pcr0 = bytes(range(1, 49))
    ledger_dir = tmp_path / "ledger"
    Ledger.init_insecure_host_key(ledger_dir, origin=ORIGIN, genesis_pcr0=pcr0,
                commitment_sha256=b"\x01" * 32).close()
    origin = f"zcbench/{pcr0.hex()[:16]}/run-1"
    der = Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    with Ledger.open(ledger_dir) as ledger:
        ledger.append(RunStartEntry(pcr0, origin, log_verifier(der, origin).vkey,
                                    b"\x03" * 32, None), pcr0=pcr0)
        with pytest.raises(LedgerRuleError, match="before the run's start record"):
            ledger.append(ControlEntry(origin, 5, b"\x02" * 32, "kill", "bob"), pcr0=pcr0)
        ledger.append(ControlEntry(origin, 1, b"\x02" * 32, "start", "dora"), pcr0=pcr0)
        with pytest.raises(LedgerRuleError, match="after its start record"):
            ledger.append(ControlEntry(origin, 7, b"\x02" * 32, "start", "dora"), pcr0=pcr0)
        with pytest.raises(LedgerRuleError, match="go forward"):
            ledger.append(ControlEntry(origin, 1, b"\x02" * 32, "kill", "bob"), pcr0=pcr0)
        ledger.append(ControlEntry(origin, 9, b"\x02" * 32, "kill", "bob"), pcr0=pcr0)
        with pytest.raises(UsageError, match="control action"):
            ledger.append(ControlEntry(origin, 10, b"\x02" * 32, "pause", "bob"), pcr0=pcr0)
        [(_, start), (_, kill)] = ledger.state.runs[origin].controls
        assert (start.action, kill.action, kill.log_index) == ("start", "kill", 9)
        assert decode_entry(ledger.entry_bytes[-1]).body == kill
    assert main(["ledger", "verify", str(ledger_dir)]) == 0


@pytest.mark.parametrize("sender_late_s", [0.0, 0.5])
def test_a_limit_change_during_a_run_is_a_control_entry_of_its_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    sender_late_s: float,
) -> None:
    """Also when the change is asked for before the run's start record has been sent (the
    sender late by ``sender_late_s``): it waits for the start, which the enclave takes first
    (before, it was sent first and refused, and the run ended ``enclave_error``)."""
    if sender_late_s:
        from zcbench.host import live

        send_all = live._Pipeline._send_all

        def late(self: object) -> None:
            time.sleep(sender_late_s)
            send_all(self)  # type: ignore[arg-type]

        monkeypatch.setattr(live._Pipeline, "_send_all", late)
    image = _measured(tmp_path)
    ledger_dir = tmp_path / "ledger"
    Ledger.init_insecure_host_key(ledger_dir, origin=ORIGIN, genesis_pcr0=image.expected_pcrs()[0],
                commitment_sha256=b"\x01" * 32).close()
    events = generate_ticks(SyntheticConfig(rate=2_000, duration_s=1.0), seed=3)
    changed = threading.Event()
    codes: list[int] = []

    def chunks() -> Iterator[pl.DataFrame]:
        yield events.slice(0, events.height // 2)
        assert changed.wait(60)
        yield events.slice(events.height // 2)

    run = tmp_path / "run"
    control = ControlSocket(run)

    def change() -> None:
        try:  # the operator's command, while the run goes
            codes.append(main(["limits", "set", str(run), "max_position=7", "--operator",
                               "alice", "--reason", "tighten"]))
        finally:
            changed.set()

    def booted(handle: RunHandle) -> None:
        control.attach(handle)
        threading.Thread(target=change, daemon=True).start()

    hook = LedgerRunHook(ledger_dir, run, checkpoint_interval_s=0.0)
    try:
        summary = run_live(image, run, LiveSource(chunks(), BatchSpec(count=50), rate=1e6,
                                                  lossless=True),
                           ledger=hook, on_booted=booted, operator="dora")
    finally:
        control.close()
    assert summary.status == "completed", summary.reason
    assert codes == [0]
    assert "limits changed by alice" in capsys.readouterr().out
    history = control_history(run)
    assert [(e.record.action, e.record.operator) for e in history.events] == [
        ("start", "dora"), ("set", "alice")]
    leaves = {r.index: leaf for r, leaf in iter_records(run) if r.kind == "note"}
    with Ledger.open(ledger_dir) as ledger:
        run_state = ledger.state.runs[hook.origin]
        entries = [body for _, body in run_state.controls]
    assert all(isinstance(e, ControlEntry) for e in entries)
    # the ledger's control entries are the run's control records: index, leaf, action, who
    assert [(e.run_origin, e.log_index, e.action, e.operator) for e in entries] == [
        (hook.origin, ev.log_index, ev.record.action, ev.record.operator)
        for ev in history.events]
    assert [e.leaf_sha256 for e in entries] == [leaves[ev.log_index] for ev in history.events]
    assert hook.appended.count("control") == 2
    # ledger verify lists them, and the run still verifies against the ledger
    assert main(["ledger", "verify", str(ledger_dir), "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    [listed] = [r for r in verified["runs"] if r["origin"] == hook.origin]
    assert [(c["log_index"], c["action"], c["operator"]) for c in listed["controls"]] == [
        (ev.log_index, ev.record.action, ev.record.operator) for ev in history.events]
    assert main(["log", "verify", str(run), "--trust", "dev", "--ledger", str(ledger_dir)]) == 0
    capsys.readouterr()
    assert main(["ledger", "show", str(ledger_dir)]) == 0
    shown = capsys.readouterr().out
    set_index = next(i for i, e in run_state.controls if e.action == "set")
    assert (f"control entry {set_index}: set by alice (the run's record "
            f"{history.events[1].log_index})") in shown
    # the evidence pack lists them beside the run's control history
    pack = tmp_path / "pack"
    assert main(["evidence", str(run), "--out", str(pack), "--trust", "dev", "--ledger",
                 str(ledger_dir)]) == 0
    table = pl.read_parquet(pack / "ledger_controls.parquet")
    assert list(zip(table["log_index"], table["action"], table["operator"],
                    table["leaf_sha256"], strict=True)) == [
        (ev.log_index, ev.record.action, ev.record.operator, leaves[ev.log_index].hex())
        for ev in history.events]
    assert set(table["run_origin"]) == {hook.origin}
    assert "Control entries in the ledger" in (pack / "index.html").read_text()
