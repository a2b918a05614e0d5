"""``python -m zcbench.enclave``: the enclave process (local, or the EIF's entrypoint on Nitro).

Loads and measures the image, makes the NSM (emulator locally, ``/dev/nsm`` on Nitro), listens
on the given address, serves one host connection until shutdown or disconnect, and exits.
It prints one line ``ready <address>`` on stdout once listening; diagnostics go to stderr and
never carry strategy internals.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from zcbench.errors import ZcbenchError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m zcbench.enclave", description=__doc__)
    p.add_argument("--listen", required=True, help="unix:/path or vsock:CID:PORT")
    p.add_argument("--module", type=Path, required=True, help="strategy module image (unsealed)")
    p.add_argument("--params", default="{}", help="strategy parameters as a JSON object")
    p.add_argument(
        "--nsm",
        choices=("emulator", "device"),
        default="emulator",
        help="emulator: local, SIMULATED; device: /dev/nsm inside a Nitro enclave",
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


def _run(args: argparse.Namespace) -> int:
    from zcbench.channel import listen
    from zcbench.enclave.boot import BootError, load_module_image
    from zcbench.enclave.runtime import Attester, EnclaveRuntime, serve

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError:
        raise BootError("--params is not JSON") from None
    if not isinstance(params, dict):
        raise BootError("--params must be a JSON object")
    image = load_module_image(args.module, params)
    nsm: Attester
    if args.nsm == "device":
        from zcbench.nitro import NsmDevice

        nsm = NsmDevice()
    else:
        from zcbench.nitro import DevCA, NsmEmulator

        ca = DevCA.load_or_create(now=dt.datetime.now(dt.UTC))
        nsm = NsmEmulator(pcrs={i: image.pcrs[i] for i in (0, 1, 2)}, ca=ca)
    runtime = EnclaveRuntime(image.strategy, nsm, pcr0=image.pcrs[0])
    listener = listen(args.listen)
    try:
        sys.stdout.write(f"ready {args.listen}\n")
        sys.stdout.flush()
        try:
            conn = listener.accept(timeout=args.accept_timeout)
        except TimeoutError:
            sys.stderr.write("zcbench enclave: no host connected; exiting\n")
            return 3
        reason = serve(conn, runtime)
        sys.stderr.write(f"zcbench enclave: stopped ({reason})\n")
        return 0
    finally:
        listener.close()


if __name__ == "__main__":
    raise SystemExit(main())
