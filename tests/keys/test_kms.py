"""The KMS Recipient adapter against botocore's Stubber (it cannot reach AWS here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from zcbench.errors import EnvError
from zcbench.keys import (
    KeyReleaseRefused,
    KmsRecipientBroker,
    kms_key_policy_statement,
    read_sealed_header,
)

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DOC = b"\x84attestation"
RECIPIENT = {"AttestationDocument": DOC, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}


@pytest.fixture
def kms() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "kms",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_generate_then_reuse_data_key(kms: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stub = kms
    broker = KmsRecipientBroker(client, key_id=KEY_ARN, store=tmp_path / "kms")
    stub.add_response(
        "generate_data_key",
        {"CiphertextBlob": b"blob-1", "Plaintext": b"\x01" * 32, "KeyId": KEY_ARN},
        {"KeyId": KEY_ARN, "KeySpec": "AES_256"},
    )
    first = broker.generate_data_key("alpha")
    assert (first.plaintext, first.ciphertext_blob, first.key_id) == (
        b"\x01" * 32,
        b"blob-1",
        KEY_ARN,
    )
    assert (tmp_path / "kms" / "alpha.blob").read_bytes() == b"blob-1"
    assert (tmp_path / "kms" / "alpha.blob").stat().st_mode & 0o077 == 0
    # a rebuild asks KMS to decrypt the kept blob: same key, same sealed bytes
    stub.add_response(
        "decrypt",
        {"Plaintext": b"\x01" * 32, "KeyId": KEY_ARN, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"},
        {"CiphertextBlob": b"blob-1", "KeyId": KEY_ARN},
    )
    assert broker.generate_data_key("alpha") == first


def test_generate_errors_are_env_errors(kms: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stub = kms
    stub.add_client_error("generate_data_key", "AccessDeniedException", "no")
    with pytest.raises(EnvError, match="AWS KMS"):
        KmsRecipientBroker(client, key_id=KEY_ARN, store=tmp_path).generate_data_key("alpha")


def test_decrypt_with_recipient(kms: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stub = kms
    stub.add_response(
        "decrypt",
        {"CiphertextForRecipient": b"\x30\x80cms", "KeyId": KEY_ARN},
        {"CiphertextBlob": b"blob-1", "KeyId": KEY_ARN, "Recipient": RECIPIENT},
    )
    broker = KmsRecipientBroker(client, key_id=KEY_ARN, store=tmp_path)
    answer = broker.decrypt({"CiphertextBlob": b"blob-1", "Recipient": RECIPIENT})
    assert answer == {"CiphertextForRecipient": b"\x30\x80cms", "KeyId": KEY_ARN}


def test_decrypt_refusals_are_opaque(kms: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stub = kms
    broker = KmsRecipientBroker(client, key_id=KEY_ARN, store=tmp_path)
    stub.add_client_error(
        "decrypt", "AccessDeniedException", "attestation PCR0 mismatch for ImageSha384 ..."
    )
    with pytest.raises(KeyReleaseRefused) as info:
        broker.decrypt({"CiphertextBlob": b"b", "Recipient": RECIPIENT})
    assert str(info.value) == "refused"
    # KMS answering with plaintext (no Recipient honoured) is refused too
    stub.add_response("decrypt", {"Plaintext": b"\x01" * 32, "KeyId": KEY_ARN})
    with pytest.raises(KeyReleaseRefused):
        broker.decrypt({"CiphertextBlob": b"b", "Recipient": RECIPIENT})
    # no Recipient, or another algorithm: never sent
    with pytest.raises(KeyReleaseRefused):
        broker.decrypt({"CiphertextBlob": b"b"})
    with pytest.raises(KeyReleaseRefused):
        broker.decrypt(
            {"CiphertextBlob": b"b", "Recipient": {**RECIPIENT, "KeyEncryptionAlgorithm": "X"}}
        )


def test_key_policy_statement() -> None:
    pcr0 = bytes(range(48))
    statement = kms_key_policy_statement(
        principal_arn="arn:aws:iam::111122223333:role/e", pcr0=pcr0
    )
    condition = statement["Condition"]["StringEqualsIgnoreCase"]
    assert condition == {"kms:RecipientAttestation:ImageSha384": pcr0.hex()}
    with pytest.raises(ValueError, match="not all zero"):
        kms_key_policy_statement(principal_arn="a", pcr0=bytes(48))


def test_packaging_with_kms_reuses_the_data_key(kms: tuple[Any, Stubber], tmp_path: Path) -> None:
    """A rebuild under KMS decrypts the kept blob, so the sealed bytes and PCRs repeat."""
    from tests.packager.helpers import make_notebook
    from zcbench.packager import package_notebook

    client, stub = kms
    broker = KmsRecipientBroker(client, key_id=KEY_ARN, store=tmp_path / "kms")
    notebook = make_notebook(tmp_path / "r.ipynb")
    stub.add_response(
        "generate_data_key",
        {"CiphertextBlob": b"kms-blob", "Plaintext": b"\x09" * 32, "KeyId": KEY_ARN},
        {"KeyId": KEY_ARN, "KeySpec": "AES_256"},
    )
    first = package_notebook(notebook, tmp_path / "a", broker=broker)
    stub.add_response(
        "decrypt",
        {"Plaintext": b"\x09" * 32, "KeyId": KEY_ARN},
        {"CiphertextBlob": b"kms-blob", "KeyId": KEY_ARN},
    )
    second = package_notebook(notebook, tmp_path / "b", broker=broker)
    assert first.pcrs == second.pcrs
    assert first.paths.payload.read_bytes() == second.paths.payload.read_bytes()
    assert read_sealed_header(first.paths.payload.read_bytes()).key_id == KEY_ARN


def test_key_policy_statement_allows_every_build_and_survives_a_key_rotation(
    tmp_path: Path,
) -> None:
    """One PCR0 per build, as the local broker keeps them; a data-key rotation changes none."""
    from tests.packager.helpers import make_notebook
    from zcbench.keys import LocalKeyBroker
    from zcbench.packager import package_notebook

    notebook = make_notebook(tmp_path / "nb" / "research.ipynb")
    one = package_notebook(notebook, tmp_path / "one")
    two = package_notebook(notebook, tmp_path / "two", overrides={"fast": 4})
    pcr0s = [p.pcr0 for p in LocalKeyBroker().policies(one.strategy)]
    assert sorted(pcr0s) == sorted([one.pcrs[0], two.pcrs[0]])
    statement = kms_key_policy_statement(principal_arn="arn:aws:iam::1:role/e", pcr0s=pcr0s)
    condition = statement["Condition"]["StringEqualsIgnoreCase"]
    allowed = condition["kms:RecipientAttestation:ImageSha384"]
    assert allowed == sorted(p.hex() for p in pcr0s)
    rotated = package_notebook(
        notebook, tmp_path / "rotated", broker=LocalKeyBroker(tmp_path / "new-broker")
    )
    assert rotated.pcrs[0].hex() in allowed
    with pytest.raises(ValueError, match="at least one PCR0"):
        kms_key_policy_statement(principal_arn="a", pcr0s=[])
