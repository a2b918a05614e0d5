"""How the host boots an enclave: the boot request, the key release it relays to the broker,
and the checks of the boot reply against the boot document and the build. Called by the one
enclave session (zcbench.host.session) that live runs and replays share, so both boot exactly
alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zcbench.auditlog.link import RunLink, encode_link
from zcbench.auditlog.verify import nitro_boot_verifier
from zcbench.channel import ChannelClosed, Connection, FrameError, Message
from zcbench.errors import EnvError, VerificationError
from zcbench.host.launcher import EnclaveProcess

if TYPE_CHECKING:
    from zcbench.host.images import EnclaveImage
    from zcbench.keys import KeyBroker

__all__ = ["boot_enclave", "release_key"]


def boot_enclave(
    conn: Connection,
    run_id: str,
    image: EnclaveImage,
    trust: str,
    enclave: EnclaveProcess,
    broker: KeyBroker | None,
    *,
    timeout: float = 60.0,
    previous: RunLink | None = None,
) -> Message:
    """Boot the enclave on ``conn`` as run ``run_id``; the verified ``booted`` reply.
    ``previous``: the run this one continues, which the boot document must name."""
    config = {} if previous is None else {"previous": encode_link(previous)}
    try:
        conn.send(Message("boot", {"run_id": run_id, "config": config}))
        reply = conn.recv(timeout=timeout)
        if reply.type == "key_request":
            conn.send(release_key(reply, broker))
            reply = conn.recv(timeout=timeout)
    except (ChannelClosed, FrameError, TimeoutError) as exc:
        raise EnvError(f"the enclave did not boot: {exc}; {enclave.diagnostics()}") from None
    if reply.type != "booted":
        raise EnvError(f"the enclave did not boot: {reply.fields.get('reason', reply.type)}")
    identity = nitro_boot_verifier(image.expected_pcrs())(reply["document"], trust)
    declared = image.declared_fields()
    checks: list[tuple[str, object, object]] = [
        ("run id", identity.run_id, run_id),
        ("public key", reply["public_key"], identity.public_key),
        ("origin", reply["origin"], identity.origin),
        ("previous run", identity.previous, previous),
    ]
    if declared is not None:
        checks.append(("fields", tuple(reply["fields"]), declared))
    for what, got, want in checks:
        if got != want:
            raise VerificationError(
                f"the boot reply's {what} does not match the boot document or the build",
                check=f"boot_{what.replace(' ', '_')}",
                expected=want,
                actual=got,
            )
    return reply


def release_key(request: Message, broker: KeyBroker | None) -> Message:
    """Relay the enclave's KMS-shaped ``Decrypt`` with ``Recipient`` to the key broker."""
    from zcbench.keys import KEY_ENCRYPTION_ALGORITHM, LocalKeyBroker

    broker = broker or LocalKeyBroker()
    answer = broker.decrypt(
        {
            "CiphertextBlob": request["ciphertext_blob"],
            "KeyId": request["key_id"],
            "Recipient": {
                "AttestationDocument": request["document"],
                "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM,
            },
        }
    )
    return Message("key_release", {"ciphertext": answer["CiphertextForRecipient"]})
