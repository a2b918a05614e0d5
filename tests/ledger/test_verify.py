"""The LP's ledger verification and the ledger commands: every bad input refused with its
reason and nothing changed; init, show, announce, revoke, witness, proof, verify end to end."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zcbench.auditlog._frames import frame
from zcbench.auditlog.checkpoint import LogSigner
from zcbench.auditlog.note import Cosigner
from zcbench.auditlog.storage import LogStore
from zcbench.auditlog.witness import Witness, load_cosigner
from zcbench.cli import main
from zcbench.cli.ledger import parse_duration
from zcbench.errors import UsageError
from zcbench.ledger import Ledger, parse_policy
from zcbench.ledger.entries import LEDGER_ENTRIES, CommitmentEntry, encode_entry
from zcbench.ledger.policy import policy_text
from zcbench.ledger.verify import check_ledger
from zcbench.ledger.witness_client import witness_ledger
from zcbench.ledger.witness_server import build_app, running

T0 = 1_700_000_000 * 10**9
ORIGIN = "acme.example/zcbench/ma"


def pcr(n: int) -> bytes:
    return hashlib.sha384(f"build {n}".encode()).digest()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ledger"
    with Ledger.init_insecure_host_key(
            folder, origin=ORIGIN, genesis_pcr0=pcr(0), commitment_sha256=b"\x01" * 32,
            at_ns=T0) as ledger:
        for i in (1, 2, 3):
            ledger.announce(pcr(i), b"\x02" * 32, notice_ns=0, at_ns=T0 + i)
    return folder


def refused(folder: Path, check: str, **kwargs: object) -> str:
    before = snapshot(folder)
    report = check_ledger(folder, **kwargs)  # type: ignore[arg-type]
    assert not report.ok
    assert report.failed == check, report.message
    assert snapshot(folder) == before
    return report.message


def test_an_intact_ledger_passes_and_says_its_key_is_trusted_on_first_use(
        ledger_dir: Path) -> None:
    report = check_ledger(ledger_dir)
    assert report.ok
    assert report.size == 4
    assert report.vkey_source == "ledger.json"
    assert any("first use" in w for w in report.warnings)


def test_a_forged_entry_is_refused(ledger_dir: Path) -> None:
    segment = ledger_dir / "log" / "seg-00000000.zlog"
    data = bytearray(segment.read_bytes())
    # rewrite entry 2's commitment hash and recompute its frame checksum: a forger's edit
    payloads, offset = [], 32
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        payloads.append(bytes(data[offset + 4:offset + 4 + length]))
        offset += 4 + length + 32
    forged = payloads[2].replace(b"\x02" * 32, b"\x09" * 32)
    rebuilt = bytes(data[:32]) + b"".join(frame(p) for p in [*payloads[:2], forged,
                                                              *payloads[3:]])
    segment.write_bytes(rebuilt)
    assert "rewritten" in refused(ledger_dir, "rewritten")


def test_a_checkpoint_not_signed_by_the_ledger_key_is_refused(ledger_dir: Path) -> None:
    with Ledger.open(ledger_dir) as ledger:
        root = ledger._store.root()
    other = LogSigner(Ed25519PrivateKey.generate(), ORIGIN).sign(4, root)
    with (ledger_dir / "log" / "checkpoints.zlog").open("ab") as out:
        out.write(frame(other))
    assert "not signed by the ledger key" in refused(ledger_dir, "checkpoint_signature")


def test_rollback_and_fork_against_what_this_lp_saw(tmp_path: Path, ledger_dir: Path) -> None:
    with Ledger.open(ledger_dir) as ledger:
        seen = ledger.latest_checkpoint()
    shutil.copytree(ledger_dir, tmp_path / "before")
    with Ledger.open(ledger_dir) as ledger:
        ledger.announce(pcr(4), b"\x02" * 32, notice_ns=0, at_ns=T0 + 4)
        later = ledger.latest_checkpoint()
    # shown the older copy after having seen size 5: rolled back
    assert "rolled back" in refused(tmp_path / "before", "rollback", known_checkpoint=later)
    # a fork: the same key and origin, another entry 4
    with Ledger.open(tmp_path / "before") as fork:
        fork.announce(pcr(40), b"\x02" * 32, notice_ns=0, at_ns=T0 + 4)
    assert "forked" in refused(tmp_path / "before", "forked", known_checkpoint=later)
    assert check_ledger(ledger_dir, known_checkpoint=seen).ok
    # records cut below a checkpoint: the storage says rollback
    segment = ledger_dir / "log" / "seg-00000000.zlog"
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) - 40])
    refused(ledger_dir, "rollback")


def test_an_announcement_valid_before_its_append_is_refused(ledger_dir: Path) -> None:
    with Ledger.open(ledger_dir) as ledger:
        signer = ledger.key.release(pcr(3), ledger.state, T0 + 10)
    store = LogStore.open(ledger_dir / "log", codec=LEDGER_ENTRIES)
    store.append([encode_entry(index=4, time_ns=T0 + 10,
                               body=CommitmentEntry(pcr(5), b"\x03" * 32, T0 + 9))])
    store.sync()
    store.add_checkpoint(signer.sign(store.size, store.root()))  # even signed by the ledger key
    store.close()
    assert "valid_from" in refused(ledger_dir, "rule")


def test_policy_key_and_quorum(tmp_path: Path, ledger_dir: Path) -> None:
    with Ledger.open(ledger_dir) as ledger:
        vkey = ledger.vkey
        w1 = load_cosigner(tmp_path / "w1.pem", "w1.example", create=True)
        w2 = load_cosigner(tmp_path / "w2.pem", "w2.example", create=True)
        with running(build_app(Witness(tmp_path / "s1"), w1, [ledger.verifier])) as url1, \
                running(build_app(Witness(tmp_path / "s2"), w2, [ledger.verifier])) as url2:
            text = policy_text(vkey, [("w1", w1, url1), ("w2", w2, url2)], "all")
            policy = parse_policy(text)
            assert "never cosigned" in refused(ledger_dir, "quorum", policy=policy)
            one = parse_policy(policy_text(vkey, [("w1", w1, url1)], "all"))
            assert witness_ledger(ledger, one).quorum_met
            assert "lacks the policy's quorum" in refused(ledger_dir, "quorum", policy=policy)
            assert witness_ledger(ledger, policy).quorum_met
    report = check_ledger(ledger_dir, policy=policy)
    assert report.ok
    assert report.vkey_source == "policy"
    assert report.quorum is not None
    assert report.quorum.cosigned == ("w1", "w2")
    stranger = LogSigner(Ed25519PrivateKey.generate(), ORIGIN)
    other_policy = parse_policy(text.replace(vkey, stranger.vkey))
    assert "not the policy's" in refused(ledger_dir, "vkey", policy=other_policy)


def test_durations() -> None:
    assert parse_duration("30s") == 30 * 10**9
    assert parse_duration("7d") == 7 * 86_400 * 10**9
    for bad in ("", "7", "-1s", "1.5h", "07s", "1w"):
        with pytest.raises(UsageError):
            parse_duration(bad)


def build(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / f"build{n}"
    folder.mkdir()
    doc = {"schema": "zcbench.commitment/1",
           "pcrs": {"0": pcr(n).hex(), "1": "11" * 48, "2": "22" * 48}}
    (folder / "commitment.json").write_text(json.dumps(doc))
    return folder


def test_ledger_commands_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "L"
    b0, b1 = build(tmp_path, 0), build(tmp_path, 1)
    # genesis is made by the genesis build's enclave: a folder that is no build is refused
    assert main(["ledger", "init", str(folder), "--origin", ORIGIN, "--genesis", str(b0),
                 "--json"]) == 2
    assert "not a build folder" in capsys.readouterr().err
    assert not folder.exists()
    with Ledger.init_insecure_host_key(folder, origin=ORIGIN, genesis_pcr0=pcr(0),
                                       commitment_sha256=b"\x01" * 32) as made:
        vkey = made.vkey
    # only the live version's enclave signs: without --by, a usage error naming it
    for command in (["announce", str(b1), "--ledger", str(folder), "--notice", "7d"],
                    ["revoke", pcr(1).hex(), "--ledger", str(folder)]):
        assert main(["ledger", *command]) == 2
        err = capsys.readouterr().err
        assert "needs --by LIVE_BUILD_DIR" in err
        assert pcr(0).hex()[:16] in err
    assert main(["ledger", "announce", str(b1), "--ledger", str(folder), "--notice", "1w"]) == 2
    assert "--notice" in capsys.readouterr().err
    with Ledger.open(folder) as ledger:
        assert ledger.size == 1  # nothing was signed in this process
        ledger.announce(pcr(1), b"\x02" * 32, notice_ns=7 * 86_400 * 10**9)
        ledger.revoke(pcr(1))
    assert main(["ledger", "show", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "live" in out
    assert "revoked" in out
    assert main(["ledger", "show", str(folder), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["allowed_now"] == [pcr(0).hex()]
    assert [v["revoked_ns"] is not None for v in shown["versions"]] == [False, True]
    saved = tmp_path / "seen.note"
    assert main(["ledger", "verify", str(folder), "--save-checkpoint", str(saved),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 3
    assert main(["ledger", "verify", str(folder), "--known-checkpoint", str(saved)]) == 0
    assert "intact, 3 entries" in capsys.readouterr().out
    assert main(["ledger", "proof", str(folder), "--index", "1", "--out",
                 str(tmp_path / "e1.tlog-proof")]) == 0
    from zcbench.ledger import verify_tlog_proof

    entry, _ = verify_tlog_proof((tmp_path / "e1.tlog-proof").read_bytes(), vkey)
    assert entry.index == 1
    # an index the ledger does not hold is a bad option value (2), named with the range
    capsys.readouterr()
    assert main(["ledger", "proof", str(folder), "--index", "3", "--out",
                 str(tmp_path / "e3.tlog-proof")]) == 2
    assert "entries 0 to 2" in capsys.readouterr().err
    assert not (tmp_path / "e3.tlog-proof").exists()
    assert main(["ledger", "verify", str(tmp_path / "nothing")]) == 2
    assert main(["ledger", "show", str(b0)]) == 2  # a build folder is no ledger
    capsys.readouterr()
    policy = tmp_path / "policy.txt"
    policy.write_text(f"log {vkey}\nquorum none\n")
    assert main(["ledger", "verify", str(folder), "--policy", str(policy)]) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served_witness(tmp_path: Path, ledger_dir: Path) -> Iterator[tuple[str, Cosigner]]:
    with Ledger.open(ledger_dir) as ledger:
        vkey = ledger.vkey
    port = _free_port()
    key = tmp_path / "witness.pem"
    log = (tmp_path / "witness.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "zcbench", "witness", "serve", "--port", str(port), "--state",
         str(tmp_path / "wstate"), "--key", str(key), "--name", "lp.example/w", "--log", vkey],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "witness.log").read_text()) from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", load_cosigner(key, "lp.example/w")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.slow
def test_witness_serve_command_cosigns_and_ledger_witness_publishes(
        tmp_path: Path, ledger_dir: Path, served_witness: tuple[str, Cosigner],
        capsys: pytest.CaptureFixture[str]) -> None:
    url, cosigner = served_witness
    with Ledger.open(ledger_dir) as ledger:
        vkey = ledger.vkey
    policy = tmp_path / "policy.txt"
    policy.write_text(policy_text(vkey, [("lp", cosigner, url)], "all"))
    assert main(["ledger", "verify", str(ledger_dir), "--policy", str(policy)]) == 1
    assert "quorum" in capsys.readouterr().err
    assert main(["ledger", "witness", str(ledger_dir), "--policy", str(policy)]) == 0
    assert "quorum met" in capsys.readouterr().out
    assert main(["ledger", "verify", str(ledger_dir), "--policy", str(policy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quorum"]["cosigned"] == ["lp"]
    assert main(["witness", "vkey", "--key", str(tmp_path / "witness.pem"), "--name",
                 "lp.example/w"]) == 0
    assert capsys.readouterr().out.strip() == cosigner.vkey
