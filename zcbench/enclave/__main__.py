"""``python -m zcbench.enclave``: the enclave process (local, or the EIF's entrypoint on Nitro).

Loads and measures the image, makes the NSM (emulator locally, ``/dev/nsm`` on Nitro), listens
on the given address, serves one host connection until shutdown or disconnect, and exits. The
sealed payload is not part of the measured image: it is delivered at boot, as the file
``--payload`` names (default for ``--build``: the build folder's ``payload.sealed``) or, with
``--payload boot`` (the default for ``--bundle``), in the boot message's
``config["sealed_payload"]``.
It prints one line ``ready <address>`` on stdout once listening; diagnostics go to stderr and
never carry strategy internals.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from zcbench.channel import VMADDR_CID_ANY, Connection, FrameError, Message, error_message, listen
from zcbench.enclave.boot import (
    BootError,
    KeyRelay,
    SealedImage,
    _unseal,
    load_build_image,
    load_bundle,
    load_module_image,
    read_payload,
)
from zcbench.enclave.ledger import LedgerRequirement
from zcbench.enclave.runtime import Attester, EnclaveRuntime, boot_reply, serve
from zcbench.errors import ZcbenchError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m zcbench.enclave", description=__doc__)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", help="unix:/path or vsock:CID:PORT")
    where.add_argument("--vsock", type=int, metavar="PORT", help="listen on vsock, any CID")
    image = p.add_mutually_exclusive_group(required=True)
    image.add_argument("--build", type=Path, help="a zcbench build folder (local image)")
    image.add_argument("--bundle", type=Path, help="an unpacked bundle (inside a Nitro enclave)")
    image.add_argument("--module", type=Path, help="an unsealed strategy module (development)")
    p.add_argument("--params", default="{}", help="--module's parameters as a JSON object")
    p.add_argument(
        "--ledger-requirement",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --module: the ledger requirement the image measures (a second ramdisk); the "
        "enclave then serves only once the ledger's gate passed",
    )
    p.add_argument(
        "--payload",
        default=None,
        metavar="FILE|boot",
        help="the sealed payload (not measured; checked after unsealing): a file, or 'boot' for "
        "the boot message's config; default: BUILD/payload.sealed, or boot with --bundle",
    )
    p.add_argument(
        "--nsm",
        choices=("emulator", "device"),
        default=None,
        help="emulator: local, SIMULATED (default except with --bundle); device: /dev/nsm",
    )
    p.add_argument("--accept-timeout", type=float, default=60.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the enclave; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ZcbenchError as exc:
        sys.stderr.write(f"zcbench enclave: {exc}\n")
        return 3
    except KeyboardInterrupt:
        return 130


def _make_nsm(kind: str, pcrs: Mapping[int, bytes] | None) -> Attester:
    if kind == "device":
        from zcbench.nitro import NsmDevice

        return NsmDevice()
    from zcbench.nitro import DevCA, NsmEmulator

    if pcrs is None:
        raise BootError("the NSM emulator needs a measured image (use --build or --module)")
    ca = DevCA.load_or_create(now=dt.datetime.now(dt.UTC))
    return NsmEmulator(pcrs={i: pcrs[i] for i in (0, 1, 2)}, ca=ca)


def _manifest_requirement(sealed: SealedImage) -> LedgerRequirement | None:
    """The ledger requirement the measured manifest carries, or None."""
    text = sealed.manifest.ledger_requirement
    return None if text is None else LedgerRequirement.from_bytes(text.encode())


def _pcr0(nsm: Attester, pcrs: Mapping[int, bytes] | None) -> bytes:
    if pcrs is not None:
        return pcrs[0]
    describe = getattr(nsm, "describe_pcr", None)
    if describe is None:
        raise BootError("cannot read PCR0 from this NSM")
    return bytes(describe(0).data)


def _delivered_payload(args: argparse.Namespace) -> bytes | None:
    """The sealed payload given as a file, or None when it comes with the boot message."""
    if args.module is not None:
        if args.payload is not None:
            raise BootError("--payload goes with --build or --bundle, not --module")
        return None
    if args.payload == "boot" or (args.payload is None and args.bundle is not None):
        return None
    return read_payload(Path(args.payload) if args.payload else args.build / "payload.sealed")


def _payload_from_boot(boot: Message) -> bytes:
    sealed = boot["config"].get("sealed_payload")
    if not isinstance(sealed, bytes) or not sealed:
        raise BootError("the boot message carries no sealed payload (config.sealed_payload)")
    return sealed


def _relay_over(conn: Connection) -> KeyRelay:
    def relay(document: bytes, blob: bytes, key_id: str) -> bytes:
        conn.send(
            Message(
                "key_request", {"document": document, "ciphertext_blob": blob, "key_id": key_id}
            )
        )
        reply = conn.recv(timeout=120)
        if reply.type != "key_release":
            raise BootError("the host did not relay a released key")
        ciphertext: bytes = reply["ciphertext"]
        return ciphertext

    return relay


def _first_boot(conn: Connection) -> Message:
    while True:
        try:
            msg = conn.recv(timeout=120)
        except FrameError as exc:
            if exc.fatal:
                raise BootError(f"the host sent a broken frame: {exc}") from None
            conn.reject(exc)
            continue
        if msg.type == "boot":
            return msg
        conn.send(error_message("not_booted", f"boot first, not {msg.type}"))


def _run(args: argparse.Namespace) -> int:
    address = args.listen or f"vsock:{VMADDR_CID_ANY}:{args.vsock}"
    nsm_kind = args.nsm or ("device" if args.bundle else "emulator")
    strategy = None
    secret: bytes | None = None  # the data key a sealed image was opened with
    requirement = None
    sealed: SealedImage | None = None
    pcrs: Mapping[int, bytes] | None
    if args.module is not None:
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError:
            raise BootError("--params is not JSON") from None
        if not isinstance(params, dict):
            raise BootError("--params must be a JSON object")
        loaded = load_module_image(args.module, params, args.ledger_requirement)
        strategy, pcrs, requirement = loaded.strategy, loaded.pcrs, loaded.ledger
    else:
        if args.ledger_requirement is not None:
            raise BootError("--ledger-requirement goes with --module")
        sealed = load_build_image(args.build) if args.build else load_bundle(args.bundle)
        pcrs = sealed.pcrs
        requirement = _manifest_requirement(sealed)
    payload = _delivered_payload(args)
    nsm = _make_nsm(nsm_kind, pcrs)
    listener = listen(address)
    try:
        sys.stdout.write(f"ready {address}\n")
        sys.stdout.flush()
        # the launcher reads stdout only up to "ready": anything printed later (a strategy's
        # print, say) goes to the diagnostics stream instead of filling an unread pipe
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        try:
            conn = listener.accept(timeout=args.accept_timeout)
        except TimeoutError:
            sys.stderr.write("zcbench enclave: no host connected; exiting\n")
            return 3
        try:
            boot = _first_boot(conn)
            if strategy is None:
                assert sealed is not None
                if payload is None:
                    payload = _payload_from_boot(boot)
                strategy, secret = _unseal(sealed, payload, nsm, _relay_over(conn))
            runtime = EnclaveRuntime(
                strategy, nsm, pcr0=_pcr0(nsm, pcrs), relay=_relay_over(conn), ledger=requirement,
                state_secret=secret,
            )
            conn.send(boot_reply(runtime, boot))
        except (ZcbenchError, TimeoutError) as exc:
            reason = str(exc) if isinstance(exc, BootError) else type(exc).__name__
            with contextlib.suppress(ZcbenchError):
                conn.send(error_message("boot_failed", reason))
            raise BootError(f"boot failed: {reason}") from None
        reason = serve(conn, runtime)
        sys.stderr.write(f"zcbench enclave: stopped ({reason})\n")
        return 0
    finally:
        listener.close()


if __name__ == "__main__":
    raise SystemExit(main())
