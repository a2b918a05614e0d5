"""A ledger's genesis, made by the first build's enclave: ``zcbench ledger init``.

The ledger key exists only inside attested enclaves. :func:`genesis` boots the genesis build's
enclave in a session of its own (the local stand-in: a separate enclave process with the NSM
emulator; on Nitro the EIF), hands it the key broker's sealing key, and the enclave makes the
ledger key, seals it to the broker (:func:`zcbench.keys.seal_to_broker`; on Nitro KMS
``Encrypt`` from inside the enclave), and signs the genesis entry (its own PCR0, valid from its
append) and the checkpoint over it. The host stores what it is handed
(:meth:`zcbench.ledger.Ledger.from_genesis`, which checks the entry and the signature) and
writes the broker's release policy of the key: the genesis PCR0 from then on. No host process
ever holds the private ledger key: the broker releases the blob only by ``Decrypt`` with
``Recipient`` to an attested enclave whose PCR0 the ledger allows.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from zcbench.channel import Message
from zcbench.errors import EnvError, UsageError
from zcbench.host._boot import ledger_exchange
from zcbench.host.images import EnclaveImage
from zcbench.host.launcher import EnclaveProcess
from zcbench.host.session import open_session
from zcbench.keys import LocalKeyBroker
from zcbench.ledger._errors import ServeRefused
from zcbench.ledger.store import Ledger, check_new_ledger

__all__ = ["genesis"]


def genesis(image: EnclaveImage, ledger_dir: Path, *, origin: str, commitment_sha256: bytes,
            trust: str = "dev", broker: LocalKeyBroker | None = None,
            launcher: Callable[[Path], EnclaveProcess] | None = None,
            reply_timeout: float = 60.0, boot_timeout: float = 60.0) -> Ledger:
    """Make the ledger ``ledger_dir`` (absent or empty) of ``origin`` whose genesis is
    ``image``'s PCR0 with ``commitment_sha256`` (of its ``commitment.json``), made by its
    enclave (see the module docstring). Raises :class:`~zcbench.ledger.ServeRefused` when the
    enclave refuses, :class:`~zcbench.errors.EnvError` when it does not boot; nothing is left
    in ``ledger_dir`` then."""
    check_new_ledger(ledger_dir, origin)
    pcr0 = image.expected_pcrs()[0]
    broker = broker or LocalKeyBroker()
    with tempfile.TemporaryDirectory(prefix="zcbench-genesis-") as scratch:
        session = open_session(image, Path(scratch), f"genesis-{secrets.token_hex(8)}",
                               trust=trust, broker=broker, launcher=launcher,
                               boot_timeout=boot_timeout)
        try:
            assert session.conn is not None
            exchange = ledger_exchange(session.conn, broker, reply_timeout)
            reply = exchange(Message("ledger_genesis", {
                "origin": origin, "commitment_sha256": commitment_sha256,
                "seal_key": broker.seal_public_key}))
            if reply.type == "error":
                code = str(reply.fields.get("code", "refused"))
                if code == "usage":
                    raise UsageError(str(reply.fields.get("reason", "")))
                raise ServeRefused(f"the genesis enclave refused: {reply.fields.get('reason')}",
                                   check=code)
            if reply.type != "ledger_made":
                raise EnvError(f"the genesis enclave answered {reply.type!r}, not ledger_made")
            ledger = Ledger.from_genesis(
                ledger_dir, origin=origin, vkey=reply["vkey"], key_blob=reply["key_blob"],
                entry=reply["entry"], checkpoint=reply["checkpoint"], genesis_pcr0=pcr0,
                commitment_sha256=commitment_sha256, broker_factory=lambda: broker)
            try:
                ledger.store_enclave_state(reply["state"])
                session.shutdown("genesis made")
            except BaseException:
                ledger.close()
                raise
            return ledger
        finally:
            session.close()
