"""Signed notes, checkpoints and cosignatures against the C2SP and Go vectors, byte for byte,
and the ways a note or checkpoint must be refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zcbench.auditlog._errors import LogFormatError, NoteError
from zcbench.auditlog.checkpoint import (
    Checkpoint,
    LogSigner,
    format_checkpoint,
    log_origin,
    parse_checkpoint,
    parse_checkpoint_note,
    verify_checkpoint,
)
from zcbench.auditlog.merkle import leaf_hash
from zcbench.auditlog.note import (
    Cosigner,
    NoteSigner,
    cosignature_message,
    open_note,
    parse_note,
    parse_skey,
    parse_vkey,
    sign_note,
)
from zcbench.errors import VerificationError


@pytest.fixture
def notes(tlog_vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (tlog_vectors / "signed_note_vectors.json").read_text(encoding="utf-8")
    )
    return data


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def test_c2sp_example_verifies(notes: dict[str, Any]) -> None:
    case = notes["c2sp_signed_note_example"]
    verifier = parse_vkey(case["vkey"])
    assert verifier.vkey == case["vkey"]
    note, good = open_note(case["note"].encode(), [verifier])
    assert note.text == "This is an example message.\n"
    assert good == [verifier]
    assert note.to_bytes() == case["note"].encode()


def test_go_sumdb_example_byte_for_byte(notes: dict[str, Any]) -> None:
    case = notes["go_sumdb_note_example"]
    signer = parse_skey(case["skey"])
    assert signer.verifier.vkey == case["vkey"]
    assert sign_note(case["text"], [signer]) == case["note"].encode()
    note, _ = open_note(case["note"].encode(), [parse_vkey(case["vkey"])])
    assert note.text == case["text"]


def test_c2sp_checkpoint_example_parses(notes: dict[str, Any]) -> None:
    case = notes["c2sp_checkpoint_example"]
    want = case["expect"]
    note = parse_note(case["note"].encode())
    checkpoint = parse_checkpoint(note.text)
    assert checkpoint.origin == want["origin"]
    assert checkpoint.size == want["tree_size"]
    assert base64.b64encode(checkpoint.root).decode() == want["root_hash_b64"]
    assert format_checkpoint(checkpoint) == note.text
    assert parse_checkpoint_note(case["note"].encode()) == checkpoint
    witness = note.signatures[1]
    assert len(witness.signature) == 72  # 8-byte timestamp then Ed25519
    timestamp = int.from_bytes(witness.signature[:8], "big")
    assert timestamp == 1679315147
    message = cosignature_message(note.text, timestamp)
    assert message.decode() == want["cosignature_v1_signed_message_for_time_1679315147"]
    # The public keys are not published: no known key, so the note must be refused.
    with pytest.raises(NoteError):
        open_note(case["note"].encode(), [NoteSigner(want["origin"], _key(1)).verifier])


def test_cosignature_timestamp_vector(notes: dict[str, Any]) -> None:
    case = notes["cosignature_v1_timestamp"]
    raw = base64.b64decode(case["sig_b64"])
    assert len(raw) == 4 + 8 + 64
    assert int.from_bytes(raw[4:12], "big") == case["expect_timestamp"]


def test_cosign_and_verify_round_trip() -> None:
    signer = LogSigner(_key(2), "zcbench/0123456789abcdef/run-1")
    note = signer.sign(5, leaf_hash(b"x"))
    witness = Cosigner("lp.example/witness", _key(3))
    text = parse_note(note).text
    line = witness.cosign(text, 1_700_000_000)
    assert Cosigner.verify(line, text, _key(3).public_key()) == 1_700_000_000
    with pytest.raises(NoteError):
        Cosigner.verify(line, text.replace("5", "6"), _key(3).public_key())
    with pytest.raises(NoteError):
        Cosigner.verify(line, text, _key(4).public_key())
    # A cosignature is an unknown signer to the log verifier: ignored, the log's own one counts.
    cosigned = note + line.line().encode()
    assert verify_checkpoint(cosigned, signer.public_key_spki_der, signer.origin).size == 5


def test_log_signer_and_verify_checkpoint() -> None:
    origin = log_origin(bytes(range(48)), "run-7")
    assert origin == "zcbench/0001020304050607/run-7"
    signer = LogSigner(_key(5), origin)
    assert len(signer.public_key_spki_der) == 44
    root = leaf_hash(b"boot")
    note = signer.sign(1, root, ["ext line"])
    cp = verify_checkpoint(note, signer.public_key_spki_der, origin)
    assert cp == Checkpoint(origin, 1, root, ("ext line",))
    assert parse_vkey(signer.vkey).name == origin

    other = LogSigner(_key(6), origin)
    with pytest.raises(VerificationError) as info:
        verify_checkpoint(other.sign(1, root), signer.public_key_spki_der, origin)
    assert info.value.check == "note_signer"
    # Same key, another run's origin: the signature binds the key name, so it is refused.
    spliced = LogSigner(_key(5), log_origin(bytes(range(48)), "run-8")).sign(1, root)
    with pytest.raises(NoteError):
        verify_checkpoint(spliced, signer.public_key_spki_der, origin)
    # A known key whose signature fails rejects the note.
    tampered = note.replace(b"\n1\n", b"\n2\n")
    with pytest.raises(NoteError) as info:
        verify_checkpoint(tampered, signer.public_key_spki_der, origin)
    assert info.value.check == "note_signature"
    with pytest.raises(NoteError):
        verify_checkpoint(note, b"\x30\x00", origin)


@pytest.mark.parametrize(
    "text",
    [
        "origin\n01\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n1\n" + base64.b64encode(bytes(31)).decode() + "\n",
        "origin\n1\n" + base64.b64encode(bytes(32)).decode(),
        "origin\n1\n\n",
        "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n",
        "origin\n1\n" + base64.b64encode(bytes(32)).decode().rstrip("=") + "\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(LogFormatError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    "data",
    [
        b"text\n",
        b"text\n\n",
        b"text\n\n- name AAAAAAA=\n",
        b"text\n\n\xe2\x80\x94 name !!!\n",
        b"text\n\n\xe2\x80\x94 name AAAA\n",
        b"text\n\n\xe2\x80\x94 na+me AAAAAAA=\n",
        b"te\x01xt\n\n\xe2\x80\x94 name AAAAAAA=\n",
        b"\xff\n\n\xe2\x80\x94 name AAAAAAA=\n",
    ],
)
def test_malformed_notes_are_refused(data: bytes) -> None:
    with pytest.raises(LogFormatError):
        parse_note(data)


def test_note_with_many_signatures_and_empty_lines_in_text() -> None:
    signers = [NoteSigner(f"k{i}", _key(10 + i)) for i in range(16)]
    text = "line one\n\nline three\n"
    data = sign_note(text, signers)
    note, good = open_note(data, [s.verifier for s in signers])
    assert note.text == text
    assert len(good) == 16
    with pytest.raises(NoteError):
        open_note(data, [])
