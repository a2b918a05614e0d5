"""The HTTP witness (C2SP tlog-witness add-checkpoint on a real uvicorn), its client, the quorum
of a tlog-policy, the split view, and .tlog-proof files of ledger entries."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.ledger.support import count_reads
from zcbench.auditlog.checkpoint import LogSigner, parse_checkpoint_note
from zcbench.auditlog.merkle import MerkleTree, leaf_hash
from zcbench.auditlog.note import Cosigner, parse_note
from zcbench.auditlog.witness import Witness, load_cosigner
from zcbench.ledger._errors import LedgerFormatError, LedgerVerificationError
from zcbench.ledger.policy import check_quorum, parse_policy, policy_text
from zcbench.ledger.proof import (
    format_tlog_proof,
    parse_tlog_proof,
    tlog_proof_for,
    verify_tlog_proof,
)
from zcbench.ledger.store import VERIFIED_FILE, Ledger
from zcbench.ledger.witness_client import (
    WitnessClient,
    WitnessHTTPError,
    add_checkpoint_body,
    witness_ledger,
)
from zcbench.ledger.witness_server import build_app, running

T0 = 1_700_000_000 * 10**9
P0 = hashlib.sha384(b"build 0").digest()
ORIGIN = "acme.example/zcbench/ma"


@dataclass
class Served:
    name: str
    url: str
    cosigner: Cosigner
    witness: Witness


def pcr(n: int) -> bytes:
    return hashlib.sha384(f"build {n}".encode()).digest()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    made = Ledger.init_insecure_host_key(tmp_path / "ledger", origin=ORIGIN, genesis_pcr0=P0,
                       commitment_sha256=b"\x01" * 32, at_ns=T0)
    yield made
    made.close()


def grow(ledger: Ledger, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        ledger.announce(pcr(i), b"\x02" * 32, notice_ns=0, at_ns=T0 + i)


@pytest.fixture
def witnesses(tmp_path: Path, ledger: Ledger) -> Iterator[list[Served]]:
    with ExitStack() as stack:
        served = []
        for name in ("w1.example", "w2.example"):
            cosigner = load_cosigner(tmp_path / f"{name}.pem", name, create=True)
            witness = Witness(tmp_path / f"state-{name}")
            app = build_app(witness, cosigner, [ledger.verifier], clock=lambda: 1_700_000_000)
            served.append(Served(name, stack.enter_context(running(app)), cosigner, witness))
        yield served


def post(url: str, body: bytes) -> tuple[int, str, str]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("POST", "/add-checkpoint", body=body)
        response = conn.getresponse()
        return (response.status, response.getheader("Content-Type", ""),
                response.read().decode())
    finally:
        conn.close()


def state_bytes(served: Served) -> dict[str, bytes]:
    folder = served.witness.folder
    return {p.name: p.read_bytes() for p in folder.glob("*.json")} if folder.is_dir() else {}


def test_add_checkpoint_answers_every_status_and_refusals_change_nothing(
        ledger: Ledger, witnesses: list[Served]) -> None:
    w = witnesses[0]
    note1 = ledger.latest_checkpoint()
    status, ctype, body = post(w.url, add_checkpoint_body(note1, 0, []))
    assert status == 200
    assert ctype.startswith("text/plain")
    sig = parse_note(b"x\n\n" + body.encode()).signatures[0]
    assert Cosigner.verify(sig, parse_note(note1).text, w.cosigner.private_key.public_key()) == (
        1_700_000_000)
    grow(ledger, 4)
    note5 = ledger.latest_checkpoint()
    tree = MerkleTree([leaf_hash(e) for e in ledger.entry_bytes])
    good_proof = tree.consistency_proof(1, 5)
    before = state_bytes(w)
    other = LogSigner(Ed25519PrivateKey.generate(), ORIGIN)
    stranger = LogSigner(Ed25519PrivateKey.generate(), "other.example/zcbench/x")
    bad_proof = [bytes([good_proof[0][0] ^ 1]) + good_proof[0][1:], *good_proof[1:]]
    refusals = [
        (b"garbage", 400),
        (b"old 01\n\n" + note5, 400),
        (add_checkpoint_body(note5, 6, []), 400),  # old above the checkpoint's size
        (add_checkpoint_body(note5[:-5], 1, good_proof), 400),  # a torn note
        (add_checkpoint_body(other.sign(5, tree.root()), 1, good_proof), 403),
        (add_checkpoint_body(stranger.sign(5, tree.root()), 1, good_proof), 404),
        (add_checkpoint_body(note5, 1, bad_proof), 422),
        (add_checkpoint_body(note5, 1, good_proof[:-1]), 422),
        (add_checkpoint_body(note5, 0, []), 409),  # stale: the witness holds 1
    ]
    for request, want in refusals:
        status, ctype, body = post(w.url, request)
        assert status == want, (request[:40], body)
        assert state_bytes(w) == before
    status, ctype, body = post(w.url, add_checkpoint_body(note5, 0, []))
    assert (status, ctype.split(";")[0], body) == (409, "text/x.tlog.size", "1\n")
    status, _, _ = post(w.url, add_checkpoint_body(note5, 1, good_proof))
    assert status == 200
    assert w.witness.state(ORIGIN).size == 5  # type: ignore[union-attr]
    # the same size with another root: a fork, 409 (not a size the client can retry from)
    forked = ledger.key.release(P0, ledger.state, T0 + 10).sign(5, b"\x07" * 32)
    status, ctype, _ = post(w.url, add_checkpoint_body(forked, 5, []))
    assert status == 409
    assert not ctype.startswith("text/x.tlog.size")
    assert w.witness.state(ORIGIN).size == 5  # type: ignore[union-attr]


def test_client_retries_a_409_and_the_quorum_publishes(ledger: Ledger,
                                                        witnesses: list[Served]) -> None:
    policy = parse_policy(policy_text(ledger.vkey, [(w.name, w.cosigner, w.url)
                                                    for w in witnesses], "all"))
    first = witness_ledger(ledger, policy)
    assert first.quorum_met
    assert [o.status for o in first.outcomes] == [200, 200]
    grow(ledger, 3)
    (ledger.folder / "witness-sizes.json").unlink()  # the client forgot: it believes 0
    again = witness_ledger(ledger, policy)
    assert again.quorum_met
    assert again.size == 4
    witnessed = ledger.witnessed_checkpoint()
    assert witnessed is not None
    assert parse_checkpoint_note(witnessed).size == 4
    assert check_quorum(witnessed, policy).cosigned == ("w1.example", "w2.example")
    # an LP's offline proof of entry 2, with the quorum
    proof = tlog_proof_for(list(ledger.entry_bytes), 2, witnessed)
    data = format_tlog_proof(proof)
    assert data.startswith(b"c2sp.org/tlog-proof@v1\nextra ")
    entry, checkpoint = verify_tlog_proof(data, ledger.vkey, policy)
    assert (entry.index, checkpoint.size) == (2, 4)
    assert parse_tlog_proof(data) == proof
    broken = data.replace(b"index 2", b"index 3")
    with pytest.raises(LedgerVerificationError) as info:
        verify_tlog_proof(broken, ledger.vkey, policy)
    assert info.value.check == "inclusion"
    unwitnessed = format_tlog_proof(tlog_proof_for(list(ledger.entry_bytes), 2,
                                                   ledger.latest_checkpoint()))
    with pytest.raises(LedgerVerificationError) as info:
        verify_tlog_proof(unwitnessed, ledger.vkey, policy)
    assert info.value.check == "quorum"
    for garbage in (b"", b"c2sp.org/tlog-proof@v1\n", b"c2sp.org/tlog-proof@v1\nindex x\n\nc\n"):
        with pytest.raises(LedgerFormatError):
            parse_tlog_proof(garbage)


def test_split_view_never_gets_a_quorum(tmp_path: Path, ledger: Ledger,
                                        witnesses: list[Served]) -> None:
    """The fund keeps two copies of the ledger (same key, same origin) and shows witness 1 one
    history, witness 2 another: each cosigns what it saw first, neither history gets the
    quorum of both, and each witness refuses the other history."""
    ledger.close()
    shutil.copytree(tmp_path / "ledger", tmp_path / "fork")
    view_a = Ledger.open(tmp_path / "ledger")
    view_b = Ledger.open(tmp_path / "fork")
    grow(view_a, 2, start=1)
    grow(view_b, 2, start=10)
    w1, w2 = witnesses
    everyone = policy_text(view_a.vkey, [(w.name, w.cosigner, w.url) for w in witnesses], "all")
    only1 = parse_policy(policy_text(view_a.vkey, [(w1.name, w1.cosigner, w1.url)], "all"))
    only2 = parse_policy(policy_text(view_a.vkey, [(w2.name, w2.cosigner, w2.url)], "all"))
    assert witness_ledger(view_a, only1).quorum_met
    assert witness_ledger(view_b, only2).quorum_met
    both = parse_policy(everyone)
    report_a = witness_ledger(view_a, both)
    report_b = witness_ledger(view_b, both)
    assert not report_a.quorum_met
    assert not report_b.quorum_met
    assert [o.status for o in report_a.outcomes] == [200, 409]  # same size, another root
    assert [o.status for o in report_b.outcomes] == [409, 200]
    # the fund grows one view to get past the size: the proof from the other view fails
    grow(view_b, 1, start=20)
    report = witness_ledger(view_b, both)
    assert not report.quorum_met
    assert [o.status for o in report.outcomes] == [422, 200]
    view_a.close()
    view_b.close()


def test_server_survives_garbage_and_huge_bodies(ledger: Ledger, witnesses: list[Served]) -> None:
    w = witnesses[0]
    assert post(w.url, b"\xff" * 100)[0] == 400
    assert post(w.url, b"old 0\n\n" + b"x" * 70_000)[0] == 400
    assert post(w.url, b"old 0\n" + b"AAAA\n" * 70 + b"\n" + ledger.latest_checkpoint())[0] == 400
    client = WitnessClient(w.url)
    try:
        assert client.add_checkpoint(ledger.latest_checkpoint(), 0, []).startswith("— ".encode())
        with pytest.raises(WitnessHTTPError) as info:
            client.add_checkpoint(ledger.latest_checkpoint(), 0, [])  # now it holds 1: 409
        assert (info.value.status, info.value.size) == (409, 1)
    finally:
        client.close()


def test_policy_parsing_is_strict(ledger: Ledger) -> None:
    key = Cosigner("w.example", Ed25519PrivateKey.generate())
    good = policy_text(ledger.vkey, [("w", key, None)], 1)
    assert parse_policy(good).quorum == "quorum"
    for bad in (
        good.replace("quorum quorum", ""),                       # no quorum
        good + "quorum none\n",                                  # two quorums
        good.replace("group quorum 1 w", "group quorum 2 w"),    # k above the members
        good.replace("group quorum 1 w", "group quorum 1 nobody"),
        good.replace(key.vkey, ledger.vkey),                     # a log key as a witness key
        "frobnicate\n" + good,
        good.replace(f"log {ledger.vkey}\n", ""),
    ):
        with pytest.raises(LedgerFormatError):
            parse_policy(bad)


def test_log_list_format(ledger: Ledger) -> None:
    from zcbench.auditlog import LogFormatError
    from zcbench.ledger.witness_server import parse_log_list

    text = f"logs/v0\nvkey {ledger.vkey}\norigin {ORIGIN}\nqpd 86400\ncontact ops@acme.example\n"
    assert [log.vkey for log in parse_log_list(text)] == [ledger.vkey]
    for bad in (text.replace("logs/v0", "logs/v9"), text.replace(f"origin {ORIGIN}",
                                                                 "origin other/zcbench/x"),
                text + "frob 1\n"):
        with pytest.raises(LogFormatError):
            parse_log_list(bad)


def test_witnessing_a_grown_ledger_reads_only_what_it_grew_by(
        ledger: Ledger, witnesses: list[Served]) -> None:
    policy = parse_policy(policy_text(ledger.vkey, [(w.name, w.cosigner, w.url)
                                                    for w in witnesses], "all"))
    grow(ledger, 160)
    assert witness_ledger(ledger, policy).quorum_met  # the witnesses hold 161
    ledger.close()
    folder = ledger.folder
    segment = folder / "log" / "seg-00000000.zlog"

    def witnessed(size: int, *, bounded: bool = True) -> None:
        """Witness the ledger as a new process does; check what it read from the segments."""
        with pytest.MonkeyPatch.context() as patched:
            reads = count_reads(patched)
            with Ledger.open(folder) as again:
                report = witness_ledger(again, policy)
        with Ledger.open(folder) as again:
            grown = sum(len(d) + 36 for d in again.entry_bytes[size - 3:])
        assert (report.quorum_met, report.size) == (True, size)
        for w in witnesses:  # each proof verified at the real server
            assert w.witness.state(ORIGIN).size == size  # type: ignore[union-attr]
        if bounded:  # the entries it grew by (once to recover, once to hash) and a frame
            assert reads.segment_bytes <= 2 * grown + 512, (reads.segment_bytes, grown)
            assert reads.segment_bytes < segment.stat().st_size // 8
        else:
            assert reads.segment_bytes > segment.stat().st_size

    # the CLI's way: one process appends (its close keeps the verified record at 164), the
    # next witnesses from the size the witnesses hold, below that record
    with Ledger.open(folder) as appending:
        grow(appending, 3, start=161)
    witnessed(164)
    # the run hook's way: the open that witnesses reads the entries after the record itself
    kept = (folder / VERIFIED_FILE).read_bytes()  # at 164, what the witnesses hold
    with Ledger.open(folder) as appending:
        grow(appending, 3, start=164)
    (folder / VERIFIED_FILE).write_bytes(kept)
    witnessed(167)
    # a remembered mark that does not hold (another offset) costs a whole read, not a bad proof
    with Ledger.open(folder) as appending:
        grow(appending, 3, start=167)
    sizes = json.loads((folder / "witness-sizes.json").read_text())
    for held in sizes.values():
        held["offset"] += 1
    (folder / "witness-sizes.json").write_text(json.dumps(sizes))
    witnessed(170, bounded=False)


def _flipped(kept: dict[str, Any]) -> dict[str, Any]:
    """The marks the client kept, each with another compact range hash."""
    for held in kept.values():
        held["compact"] = ["11" * 32 for _ in held["compact"]]
    return kept


@pytest.mark.parametrize("remembered", [
    lambda kept: {"w1.example": 1, "w2.example": 3},  # sizes only, as kept before marks
    lambda kept: {"w1.example": {"size": 1, "compact": ["zz"], "segment": 0, "offset": 0},
                  "w2.example": {"size": 1, "compact": ["00" * 32], "segment": -1,
                                 "offset": 0}},
    lambda kept: {name: {**held, "offset": 10**9} for name, held in kept.items()},
    _flipped,
    lambda kept: "not a map",
])
def test_a_remembered_size_or_mark_that_is_wrong_costs_a_retry_not_a_refusal(
        ledger: Ledger, witnesses: list[Served],
        remembered: Callable[[dict[str, Any]], object]) -> None:
    policy = parse_policy(policy_text(ledger.vkey, [(w.name, w.cosigner, w.url)
                                                    for w in witnesses], "all"))
    grow(ledger, 2)
    assert witness_ledger(ledger, policy).quorum_met  # both hold 3 (its proofs need [2, 3))
    grow(ledger, 4, start=3)
    ledger.close()  # its record at 7: the next open holds none of the entries before
    sizes = ledger.folder / "witness-sizes.json"
    sizes.write_text(json.dumps(remembered(json.loads(sizes.read_text()))))
    with Ledger.open(ledger.folder) as again:
        assert again.read_from == 7
        report = witness_ledger(again, policy)
    assert (report.quorum_met, report.size) == (True, 7), report.outcomes
    for w in witnesses:
        assert w.witness.state(ORIGIN).size == 7  # type: ignore[union-attr]
    kept = json.loads(sizes.read_text())
    assert {held["size"] for held in kept.values()} == {7}
