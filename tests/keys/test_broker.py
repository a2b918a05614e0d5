"""Local key broker: data keys, per-build (PCR0) policies, attested release in the KMS Recipient
shape, refusals, and the operator's list/revoke."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from zcbench.errors import EnvError, UsageError, VerificationError
from zcbench.keys import (
    AttestedRecipient,
    KeyReleaseRefused,
    LocalKeyBroker,
    nitro_document_verifier,
    unwrap_recipient,
)
from zcbench.nitro import DevCA, NsmEmulator

PCR0 = bytes(range(48))
OTHER = bytes(range(1, 49))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _spki(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _fake_verifier(pcrs: Mapping[int, bytes], public_key: bytes, *, fail: str | None = None):  # type: ignore[no-untyped-def]
    calls: list[Mapping[int, bytes]] = []

    def verify(document: bytes, expected: Mapping[int, bytes]) -> AttestedRecipient:
        calls.append(expected)
        if fail:
            raise VerificationError(fail, check="fake")
        return AttestedRecipient(pcrs=pcrs, public_key=public_key)

    verify.calls = calls  # type: ignore[attr-defined]
    return verify


def _request(blob: bytes, document: bytes | None = None) -> dict[str, object]:
    """A Decrypt request; the default document is a genuine one claiming PCR0 (the broker picks
    the policy by the claimed PCR0, then holds the verifier to it)."""
    if document is None:
        document = _emulated_document(PCR0, b"spki")
    return {
        "CiphertextBlob": blob,
        "Recipient": {
            "AttestationDocument": document,
            "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
        },
    }


def test_data_key_created_once_and_reused(tmp_path: Path) -> None:
    broker = LocalKeyBroker(tmp_path / "kb")
    a = broker.generate_data_key("alpha")
    b = LocalKeyBroker(tmp_path / "kb").generate_data_key("alpha")
    assert a == b
    assert len(a.plaintext) == 32
    assert broker.generate_data_key("beta").plaintext != a.plaintext
    assert a.plaintext.hex() not in repr(a)
    assert a.plaintext not in a.ciphertext_blob


def test_state_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        broker = LocalKeyBroker(tmp_path / "kb")
        broker.generate_data_key("alpha")
        broker.set_policy("alpha", pcr0=PCR0)
    finally:
        os.umask(old)
    for path in [broker.root, *broker.root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_default_root_is_in_zcbench_home(zcbench_home: Path) -> None:
    assert LocalKeyBroker().root == zcbench_home / "keybroker"


def test_loose_permissions_refused(tmp_path: Path) -> None:
    broker = LocalKeyBroker(tmp_path / "kb")
    broker.generate_data_key("alpha")
    os.chmod(broker.root / "master.key", 0o644)
    with pytest.raises(EnvError, match="chmod"):
        LocalKeyBroker(tmp_path / "kb")


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "a/b", "x" * 65, "-x"])
def test_bad_strategy_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError):
        LocalKeyBroker(tmp_path / "kb").generate_data_key(name)


def test_release_to_matching_pcr0(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = _fake_verifier({0: PCR0}, _spki(rsa_key))
    broker = LocalKeyBroker(tmp_path / "kb", verifier=verifier)
    key = broker.generate_data_key("alpha")
    broker.set_policy("alpha", pcr0=PCR0)
    answer = broker.decrypt(_request(key.ciphertext_blob))
    assert set(answer) == {"CiphertextForRecipient", "KeyId", "EncryptionAlgorithm"}
    assert answer["KeyId"] == key.key_id
    assert key.plaintext not in answer["CiphertextForRecipient"]
    assert unwrap_recipient(answer["CiphertextForRecipient"], rsa_key) == key.plaintext
    assert verifier.calls == [{0: PCR0}]  # the policy is handed to the verifier too
    assert broker.diagnostics == []


def _assert_refused(broker: LocalKeyBroker, request: object, reason: str) -> None:
    before = len(broker.diagnostics)
    with pytest.raises(KeyReleaseRefused) as info:
        broker.decrypt(request)  # type: ignore[arg-type]
    # the requester's answer is the one word; the operator's message says only where the
    # reason is, never the reason
    assert info.value.answer == "refused"
    assert str(info.value).startswith("refused (the key broker wrote the reason to ")
    assert str(broker.diagnostics_path) in str(info.value)
    assert reason not in str(info.value) or reason == "refused"
    assert info.value.diagnostics == broker.diagnostics_path
    assert info.value.expected is None
    assert info.value.actual is None
    assert len(broker.diagnostics) == before + 1
    assert reason in broker.diagnostics[-1].reason, broker.diagnostics[-1]
    logged = (broker.root / "diagnostics.jsonl").read_text().splitlines()
    assert reason in json.loads(logged[-1])["reason"]


def test_refusals_say_only_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    spki = _spki(rsa_key)
    good = LocalKeyBroker(tmp_path / "kb", verifier=_fake_verifier({0: PCR0}, spki))
    key = good.generate_data_key("alpha")
    blob = key.ciphertext_blob
    # no policy yet
    _assert_refused(good, _request(blob), "no PCR0 policy")
    good.set_policy("alpha", pcr0=PCR0)
    # wrong PCR0
    wrong = LocalKeyBroker(tmp_path / "kb", verifier=_fake_verifier({0: OTHER}, spki))
    _assert_refused(wrong, _request(blob), "does not match the policy")
    # PCR0 missing from the document
    missing = LocalKeyBroker(tmp_path / "kb", verifier=_fake_verifier({1: PCR0}, spki))
    _assert_refused(missing, _request(blob), "PCR0 missing")
    # the verifier refuses (debug, expired, untrusted root all end here)
    bad = LocalKeyBroker(tmp_path / "kb", verifier=_fake_verifier({0: PCR0}, spki, fail="expired"))
    _assert_refused(bad, _request(blob), "expired")
    # a public key that is not RSA, or too small
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak = LocalKeyBroker(tmp_path / "kb", verifier=_fake_verifier({0: PCR0}, _spki(small)))
    _assert_refused(weak, _request(blob), "at least 2048")
    junk = LocalKeyBroker(tmp_path / "kb", verifier=_fake_verifier({0: PCR0}, b"not der"))
    _assert_refused(junk, _request(blob), "SubjectPublicKeyInfo")
    # malformed requests
    _assert_refused(good, {"CiphertextBlob": blob}, "no Recipient")
    req = _request(blob)
    req["Recipient"] = {"AttestationDocument": b"d", "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_1"}
    _assert_refused(good, req, "KeyEncryptionAlgorithm")
    _assert_refused(good, _request(blob, b""), "1..262144")
    _assert_refused(good, _request(blob, b"x" * 262_145), "1..262144")
    _assert_refused(good, {**_request(blob), "KeyId": "arn:other"}, "not this broker's key")
    _assert_refused(good, {**_request(blob), "GrantTokens": []}, "unsupported")
    _assert_refused(good, _request(blob[:-1] + bytes([blob[-1] ^ 1])), "not made by this broker")
    _assert_refused(good, _request(b"\x01\x02"), "CiphertextBlob")
    _assert_refused(good, "not a mapping", "not a mapping")


def test_blob_from_another_broker_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = _fake_verifier({0: PCR0}, _spki(rsa_key))
    other = LocalKeyBroker(tmp_path / "other").generate_data_key("alpha")
    broker = LocalKeyBroker(tmp_path / "kb", verifier=verifier)
    broker.generate_data_key("alpha")
    broker.set_policy("alpha", pcr0=PCR0)
    _assert_refused(broker, _request(other.ciphertext_blob), "not made by this broker")


def test_policy_rejects_debug_zero_pcr(tmp_path: Path) -> None:
    broker = LocalKeyBroker(tmp_path / "kb")
    with pytest.raises(UsageError, match="debug"):
        broker.set_policy("alpha", pcr0=bytes(48))
    with pytest.raises(UsageError):
        broker.set_policy("alpha", pcr0=b"short")
    assert broker.policies("alpha") == []
    broker.set_policy("alpha", pcr0=PCR0)
    assert [p.pcr0 for p in broker.policies("alpha")] == [PCR0]


# --- with the real attestation verifier and the NSM emulator (dev CA) ---------------------------

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _emulated_document(pcr0: bytes, public_key: bytes, *, at: dt.datetime = NOW) -> bytes:
    ca = DevCA.load_or_create(now=at)
    nsm = NsmEmulator(pcrs={0: pcr0, 1: OTHER, 2: OTHER}, ca=ca, clock=lambda: at)
    return nsm.attestation(user_data=None, nonce=None, public_key=public_key)


def test_real_verifier_release_and_refusals(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    spki = _spki(rsa_key)
    clock = [NOW]
    broker = LocalKeyBroker(
        tmp_path / "kb",
        verifier=nitro_document_verifier(trust="dev", clock=lambda: clock[0]),
        clock=lambda: clock[0],
    )
    key = broker.generate_data_key("alpha")
    broker.set_policy("alpha", pcr0=PCR0)

    answer = broker.decrypt(_request(key.ciphertext_blob, _emulated_document(PCR0, spki)))
    assert unwrap_recipient(answer["CiphertextForRecipient"], rsa_key) == key.plaintext

    # a PCR0 without a policy
    _assert_refused(
        broker, _request(key.ciphertext_blob, _emulated_document(OTHER, spki)), "no PCR0 policy"
    )
    # debug enclave: PCR0 all zero
    debug = _emulated_document(bytes(48), spki)
    _assert_refused(broker, _request(key.ciphertext_blob, debug), "(debug)")
    # expired / stale: the same good document three hours later
    good = _emulated_document(PCR0, spki)
    clock[0] = NOW + dt.timedelta(hours=4)
    _assert_refused(broker, _request(key.ciphertext_blob, good), "(validity)")
    clock[0] = NOW + dt.timedelta(minutes=10)
    _assert_refused(broker, _request(key.ciphertext_blob, good), "(max_age)")
    clock[0] = NOW
    # a flipped byte in the document
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 1
    _assert_refused(broker, _request(key.ciphertext_blob, bytes(flipped)), "refused")


def test_real_verifier_untrusted_root(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    spki = _spki(rsa_key)
    # a document from another development CA: a root this broker does not trust
    foreign_ca = DevCA.load_or_create(tmp_path / "foreign-ca", now=NOW)
    nsm = NsmEmulator(pcrs={0: PCR0, 1: OTHER, 2: OTHER}, ca=foreign_ca, clock=lambda: NOW)
    document = nsm.attestation(user_data=None, nonce=None, public_key=spki)
    DevCA.load_or_create(now=NOW)  # the broker's own dev root exists, and is not the signer
    broker = LocalKeyBroker(
        tmp_path / "kb", verifier=nitro_document_verifier(trust="dev", clock=lambda: NOW)
    )
    key = broker.generate_data_key("alpha")
    broker.set_policy("alpha", pcr0=PCR0)
    _assert_refused(broker, _request(key.ciphertext_blob, document), "(root)")
    # and the AWS root never trusts a dev document
    aws = LocalKeyBroker(
        tmp_path / "kb", verifier=nitro_document_verifier(trust="aws", clock=lambda: NOW)
    )
    _assert_refused(aws, _request(key.ciphertext_blob, _emulated_document(PCR0, spki)), "(root)")


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from zcbench.keys import LocalKeyBroker; "
        "print(LocalKeyBroker(sys.argv[1]).generate_data_key('alpha').plaintext.hex())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "kb")], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    keys = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(keys) == 1
    assert keys == {LocalKeyBroker(tmp_path / "kb").generate_data_key("alpha").plaintext.hex()}
    assert not [p for p in (tmp_path / "kb").rglob(".*")]  # no temporary files left behind


# --- one policy per build (PCR0): list, revoke, and what the operator is told --------------------


def test_a_second_build_of_a_strategy_keeps_the_first_releasable(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """Packaging a variant (another parameter, another PCR0) used to replace the strategy's one
    policy, silently locking out every earlier build."""
    spki = _spki(rsa_key)
    broker = LocalKeyBroker(tmp_path / "kb", verifier=nitro_document_verifier(clock=lambda: NOW))
    key = broker.generate_data_key("alpha")
    broker.set_policy("alpha", pcr0=PCR0, facts={"build_dir": "one"})
    broker.set_policy("alpha", pcr0=OTHER, facts={"build_dir": "two"})
    for pcr0 in (PCR0, OTHER):
        answer = broker.decrypt(_request(key.ciphertext_blob, _emulated_document(pcr0, spki)))
        assert unwrap_recipient(answer["CiphertextForRecipient"], rsa_key) == key.plaintext
    listed = broker.policies("alpha")
    assert [(p.pcr0, p.facts["build_dir"]) for p in listed] == [(PCR0, "one"), (OTHER, "two")]
    assert LocalKeyBroker(tmp_path / "kb").policies() == listed  # kept on disk

    assert broker.revoke(PCR0).pcr0 == PCR0
    _assert_refused(
        broker, _request(key.ciphertext_blob, _emulated_document(PCR0, spki)), "no PCR0 policy"
    )
    answer = broker.decrypt(_request(key.ciphertext_blob, _emulated_document(OTHER, spki)))
    assert unwrap_recipient(answer["CiphertextForRecipient"], rsa_key) == key.plaintext
    revoked = (broker.root / "revocations.jsonl").read_text().splitlines()
    assert json.loads(revoked[-1])["pcr0"] == PCR0.hex()
    with pytest.raises(UsageError, match="no key policy has PCR0"):
        broker.revoke(PCR0)


def test_a_policy_of_another_strategy_releases_nothing(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    spki = _spki(rsa_key)
    broker = LocalKeyBroker(tmp_path / "kb", verifier=nitro_document_verifier(clock=lambda: NOW))
    alpha = broker.generate_data_key("alpha")
    broker.generate_data_key("beta")
    broker.set_policy("beta", pcr0=OTHER)
    request = _request(alpha.ciphertext_blob, _emulated_document(OTHER, spki))
    _assert_refused(broker, request, "is the build of 'beta', not of this key")
    with pytest.raises(UsageError, match="bound to strategy 'beta'"):
        broker.set_policy("alpha", pcr0=OTHER)


def test_the_claimed_pcr0_only_picks_the_policy(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    """The verifier is held to the policy the claim picked: a claim it does not attest fails."""
    verifier = _fake_verifier({0: OTHER}, _spki(rsa_key))
    broker = LocalKeyBroker(tmp_path / "kb", verifier=verifier)
    key = broker.generate_data_key("alpha")
    broker.set_policy("alpha", pcr0=PCR0)
    _assert_refused(broker, _request(key.ciphertext_blob), "does not match the policy")
    assert verifier.calls == [{0: PCR0}]
    _assert_refused(broker, _request(key.ciphertext_blob, b"\xa0"), "malformed")


def test_policies_of_the_old_per_strategy_layout_are_kept(tmp_path: Path) -> None:
    broker = LocalKeyBroker(tmp_path / "kb")
    old = broker.root / "policies" / "alpha.json"
    old.write_text(json.dumps({"strategy": "alpha", "pcr0": PCR0.hex()}))
    os.chmod(old, 0o600)
    again = LocalKeyBroker(tmp_path / "kb")
    assert [(p.strategy, p.pcr0) for p in again.policies()] == [("alpha", PCR0)]
    assert not old.exists()


def test_damaged_policy_is_named(tmp_path: Path) -> None:
    broker = LocalKeyBroker(tmp_path / "kb")
    broker.set_policy("alpha", pcr0=PCR0)
    path = broker.root / "policies" / f"{PCR0.hex()}.json"
    path.write_text('{"schema": "zcbench.keypolicy/1"}')
    with pytest.raises(EnvError, match="is damaged"):
        broker.policies()


def test_keys_cli_list_revoke_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    from zcbench.cli import main

    broker = LocalKeyBroker()
    key = broker.generate_data_key("alpha")
    broker.set_policy("alpha", pcr0=PCR0, facts={"build_dir": "b1"})
    broker.set_policy("alpha", pcr0=OTHER, facts={"build_dir": "b2"})
    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "2 key policies" in out
    assert PCR0.hex() in out
    assert OTHER.hex() in out
    assert main(["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["policies"]
    assert [p["pcr0"] for p in listed] == [PCR0.hex(), OTHER.hex()]

    assert main(["keys", "revoke", PCR0.hex().upper()]) == 0
    assert "1 other build(s) of alpha keep theirs" in capsys.readouterr().out
    assert [p.pcr0 for p in LocalKeyBroker().policies()] == [OTHER]
    assert main(["keys", "revoke", PCR0.hex()]) == 2
    assert "no key policy has PCR0" in capsys.readouterr().err
    assert main(["keys", "revoke", "abc"]) == 2
    assert "96 hex digits" in capsys.readouterr().err
    assert main(["keys", "revoke", "٠" * 96]) == 2  # Arabic-Indic digits are not hex
    capsys.readouterr()

    # a refusal: the operator is pointed at the file, and 'keys refusals' shows the reason
    with pytest.raises(KeyReleaseRefused) as info:
        LocalKeyBroker().decrypt(_request(key.ciphertext_blob, _emulated_document(PCR0, b"k")))
    assert str(LocalKeyBroker().diagnostics_path) in str(info.value)
    assert "no PCR0 policy" not in str(info.value)
    assert main(["keys", "refusals"]) == 0
    out = capsys.readouterr().out
    assert "showing 1 of 1 refusals" in out
    assert "no PCR0 policy" in out
    assert main(["keys", "refusals", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 1
    assert main(["keys", "refusals", "--limit", "0"]) == 2


# -- the wrapped data key: written and read by zcbench._cbor, the format byte for byte --------

# The CiphertextBlob of the first data key of a broker whose random source is _counting_rng,
# as the broker wrote it when it used cbor2 directly: the format may not change by a byte.
_GOLDEN_BLOB = bytes.fromhex(
    "a4617601626374583061da26331cc960408ded388b122b2398c12ea3ef8afa685211f409e23d3b87f54ea8df"
    "ea55765ee430124343a03c7029656e6f6e63654c9b2c311a0db21785152ac06c6873747261746567796c6d61"
    "5f63726f73736f766572"
)


def _counting_rng():  # type: ignore[no-untyped-def]
    calls = [0]

    def rng(n: int) -> bytes:
        calls[0] += 1
        return bytes((calls[0] * 7 + i) % 256 for i in range(n))

    return rng


def test_the_wrapped_data_key_format_is_unchanged(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    import cbor2

    broker = LocalKeyBroker(tmp_path / "kb", rng=_counting_rng(),
                            verifier=_fake_verifier({0: PCR0}, _spki(rsa_key)))  # fmt: skip
    key = broker.generate_data_key("ma_crossover")
    assert key.ciphertext_blob == _GOLDEN_BLOB
    assert key.ciphertext_blob == cbor2.dumps(cbor2.loads(_GOLDEN_BLOB), canonical=True)
    broker.set_policy("ma_crossover", pcr0=PCR0)
    answer = broker.decrypt(_request(_GOLDEN_BLOB))  # a blob written before still opens
    assert unwrap_recipient(answer["CiphertextForRecipient"], rsa_key) == key.plaintext


def test_a_wrapped_data_key_in_any_other_encoding_is_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    import cbor2

    broker = LocalKeyBroker(tmp_path / "kb", rng=_counting_rng(),
                            verifier=_fake_verifier({0: PCR0}, _spki(rsa_key)))  # fmt: skip
    broker.generate_data_key("ma_crossover")
    broker.set_policy("ma_crossover", pcr0=PCR0)
    fields = cbor2.loads(_GOLDEN_BLOB)
    unsorted = cbor2.dumps(dict(reversed(list(fields.items()))))  # same map, keys out of order
    indefinite = b"\xbf" + _GOLDEN_BLOB[1:] + b"\xff"
    for blob in (unsorted, indefinite, _GOLDEN_BLOB + b"\x00"):
        _assert_refused(broker, _request(blob), "CiphertextBlob")
