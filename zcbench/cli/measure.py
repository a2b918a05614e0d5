"""``zcbench measure PATH.eif``: read an EIF strictly and print its PCR0/1/2 (and 8 when signed)."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "measure",
        help="compute PCR0/1/2/8 of an EIF as nitro-cli does",
        description=(
            "Read an Enclave Image Format file (v2-v4), check its header, sections and CRC, and "
            "print PCR0, PCR1, PCR2 (and PCR8 when the image is signed) as lowercase hex. Given "
            "a build folder instead, measure its local image sections the same way."
        ),
    )
    parser.add_argument(
        "eif", metavar="PATH.eif", help="the EIF file nitro-cli build-enclave wrote"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object: keys "0", "1", "2" (and "8" when signed), plus the layout',
    )
    parser.set_defaults(handler=_measure)


def _measure(args: argparse.Namespace) -> int:
    from pathlib import Path

    from zcbench.errors import UsageError
    from zcbench.nitro.eif import format_pcrs, measure_eif_file

    path = Path(args.eif)
    if path.is_dir():
        from zcbench.packager import measure_local_image

        if not (path / "image").is_dir():
            raise UsageError(f"{path} is a folder but not a build folder (no image/ in it): "
                             "pass a build folder from 'zcbench package' or an .eif file")

        pcrs = format_pcrs(measure_local_image(path))
        if args.json:
            print(json.dumps({**pcrs, "image": "zcbench-local"}, sort_keys=True))
        else:
            print(f"{path}: zcbench local image (kernel, cmdline, ramdisk0, ramdisk1)")
            for index, value in pcrs.items():
                print(f"PCR{index}: {value}")
        return 0
    if not path.is_file():
        raise UsageError(f"{path}: no such file; pass the .eif that nitro-cli build-enclave wrote")
    m = measure_eif_file(path)
    pcrs = format_pcrs(m.pcrs)
    if args.json:
        out: dict[str, Any] = dict(pcrs)
        out["eif_version"] = m.header.version
        out["signed"] = m.signed
        out["sections"] = [{"type": s.type.name.lower(), "size": s.size} for s in m.sections]
        print(json.dumps(out, sort_keys=True))
        return 0
    print(f"{path.name}: EIF v{m.header.version}, {len(m.sections)} sections")
    for index, value in pcrs.items():
        print(f"PCR{index}: {value}")
    return 0
