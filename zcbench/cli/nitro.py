"""``zcbench nitro``: local stand-ins for Nitro hardware: ``emulate`` and ``export-root``.

``emulate`` asks the NSM emulator for one attestation document signed by the development CA in
the zcbench home (created on first use). Such documents verify only against that CA's root and
are SIMULATED. ``export-root`` writes that root for an LP, who verifies the fund's SIMULATED
documents with ``--trust FILE`` (still SIMULATED). Thin over :class:`zcbench.nitro.NsmEmulator`
and :func:`zcbench.nitro.export_dev_root`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import sys

from zcbench.durable import write_output
from zcbench.errors import EXIT_OK, EnvError, UsageError, describe_os_error

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "nitro",
        help="local Nitro stand-ins: emulated attestation documents",
        description="Local stand-ins for Nitro hardware (SIMULATED, development CA).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    emu = actions.add_parser(
        "emulate",
        help="write an emulated attestation document (development CA; SIMULATED)",
        description=(
            "Write an attestation document from the NSM emulator, signed by the development CA "
            "in the zcbench home. It verifies only with 'zcbench verify attestation --trust dev'."
        ),
    )
    emu.add_argument("--nonce", required=True, metavar="HEX", help="nonce to bind (hex)")
    emu.add_argument("--out", required=True, metavar="PATH", help="where to write the document")
    emu.add_argument(
        "--pcr",
        action="append",
        default=[],
        metavar="N=HEX",
        help="set PCR N (48 bytes hex) before attesting; PCR0/1/2 default to fixed labels",
    )
    emu.add_argument("--user-data", metavar="HEX", help="user_data to bind (hex)")
    emu.add_argument(
        "--public-key", metavar="FILE", help="file whose bytes go in public_key (e.g. DER SPKI)"
    )
    emu.add_argument(
        "--indefinite",
        action="store_true",
        help="write the payload map with indefinite length, like real documents since mid-2025",
    )
    emu.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    emu.set_defaults(handler=_emulate)
    export = actions.add_parser(
        "export-root",
        help="write the development CA root for an LP (SIMULATED documents verify against it)",
        description=(
            "Write this zcbench home's development CA root certificate (public, PEM) to a file "
            "to hand to an LP with the run. They verify with "
            "'zcbench verify attestation DOC --trust FILE'; every verdict under it says "
            "SIMULATED."
        ),
    )
    export.add_argument("--out", required=True, metavar="FILE", help="where to write the PEM")
    export.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    export.set_defaults(handler=_export_root)


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError as exc:
        raise UsageError(f"{what} is not hex digits") from exc


def _default_pcr(index: int) -> bytes:
    # Recognisable, non-zero stand-ins so the document is not taken for a debug one.
    from zcbench.nitro.emulator import extend

    return extend(bytes(48), f"zcbench nitro emulate PCR{index}".encode())


def _emulate(args: argparse.Namespace) -> int:
    import datetime as dt

    from zcbench.nitro import DevCA, NsmEmulator, parse_document
    from zcbench.nitro.commitment import pcr_index

    pcrs = {i: _default_pcr(i) for i in (0, 1, 2)}
    for item in args.pcr:
        index_text, sep, value_text = item.partition("=")
        index = pcr_index(index_text)
        if not sep or index is None:
            raise UsageError("--pcr: write N=HEX with N a decimal 0..31 in ASCII digits")
        value = _hex(value_text, f"--pcr {index}")
        if len(value) != 48:
            raise UsageError(f"--pcr {index}: a PCR is 48 bytes (96 hex digits)")
        pcrs[index] = value
    nonce = _hex(args.nonce, "--nonce")
    user_data = _hex(args.user_data, "--user-data") if args.user_data is not None else None
    public_key: bytes | None = None
    if args.public_key is not None:
        try:
            public_key = pathlib.Path(args.public_key).read_bytes()
        except OSError as exc:
            raise UsageError(f"--public-key: {describe_os_error(exc)}") from exc
    for name, field in (("nonce", nonce), ("user-data", user_data), ("public-key", public_key)):
        if field is not None and len(field) > 1024:
            raise UsageError(f"--{name} is {len(field)} bytes; the NSM takes at most 1024")

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    ca = DevCA.load_or_create(now=clock())
    emulator = NsmEmulator(pcrs, ca, clock=clock, indefinite_payload=args.indefinite)
    document = emulator.attestation(nonce=nonce, user_data=user_data, public_key=public_key)
    out = pathlib.Path(args.out)
    try:
        write_output(out, document)
    except OSError as exc:  # an unwritable output is the environment's (exit 3), not usage
        raise EnvError(describe_os_error(exc, writing=True) + "; choose another --out") from exc
    parsed = parse_document(document)
    sys.stderr.write(
        "SIMULATED: signed by the development CA; verify with "
        f"'zcbench verify attestation {out} --trust dev'\n"
    )
    if args.json:
        sys.stdout.write(
            json.dumps(
                {
                    "path": str(out),
                    "simulated": True,
                    "module_id": parsed.module_id,
                    "timestamp": parsed.time.isoformat(timespec="milliseconds").replace(
                        "+00:00", "Z"
                    ),
                    "pcrs": {str(i): v.hex() for i, v in parsed.pcrs.items()},
                    "sha256": hashlib.sha256(document).hexdigest(),
                    "document_id": parsed.document_id,
                    "dev_root": str(ca.root_pem),
                }
            )
            + "\n"
        )
    else:
        sys.stdout.write(f"wrote {out} ({len(document)} bytes, SIMULATED)\n")
        for index in sorted(pcrs):
            sys.stdout.write(f"  PCR{index:<2} {parsed.pcrs[index].hex()}\n")
    return EXIT_OK


def _export_root(args: argparse.Namespace) -> int:
    from zcbench.nitro import export_dev_root

    out = pathlib.Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name, e.g. {out}/dev-root.pem")
    root = export_dev_root(out)
    sys.stderr.write(
        "SIMULATED: this is the development CA root, not AWS's; documents verified against it "
        "prove nothing about real hardware\n"
    )
    if args.json:
        sys.stdout.write(json.dumps({"path": str(out), **root.to_dict()}) + "\n")
    else:
        sys.stdout.write(
            f"wrote {out} (development CA root, SHA-256 {root.fingerprint})\n"
            f"  an LP verifies with: zcbench verify attestation DOC --trust {out.name}\n"
        )
    return EXIT_OK
