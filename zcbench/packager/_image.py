"""The local enclave image: the runtime it carries, its sections, and their PCRs.

Sections, in EIF order: kernel = the runtime descriptor, cmdline, ramdisk 0 = tar of the zcbench
runtime sources and the pinned lock, ramdisk 1 = tar of the measured manifest. PCRs come from
the EIF algorithm (:mod:`zcbench.nitro.eif`), so PCR1 names the runtime and PCR2 the manifest:
the strategy by its hashes, never the sealed payload, whose bytes depend on the data key.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

import zcbench
from zcbench.enclave.boot import read_app_image
from zcbench.errors import EnvError
from zcbench.nitro.eif import SectionType, pcrs_for_sections
from zcbench.packager._layout import BuildPaths

__all__ = [
    "RUNTIME_PARTS",
    "measure_image",
    "measure_local_image",
    "read_app_image",
    "runtime_files",
]

# The parts of zcbench the enclave runs (DESIGN.md): nothing of host, cli, widgets, backtest.
RUNTIME_PARTS: Final = ("auditlog", "channel", "enclave", "keys", "ledger", "nitro", "strategy")
RUNTIME_TOP: Final = ("__init__.py", "__main__.py", "errors.py", "py.typed")
RUNTIME_SUFFIXES: Final = (".py", ".pem", ".json", ".typed")


def runtime_files(package_dir: Path | None = None) -> dict[str, bytes]:
    """The zcbench sources the enclave runs, as ``runtime/zcbench/<path>`` -> bytes, sorted.

    Read from the installed package (``package_dir`` defaults to it); only file contents are
    used, never their times or modes.
    """
    root = package_dir or Path(zcbench.__file__).resolve().parent
    found: dict[str, bytes] = {}
    for name in RUNTIME_TOP:
        path = root / name
        if path.is_file():
            found[f"runtime/zcbench/{name}"] = path.read_bytes()
    for part in RUNTIME_PARTS:
        base = root / part
        if not base.is_dir():
            raise EnvError(f"the enclave runtime needs zcbench/{part}/, missing under {root}")
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(root)
            if (
                not path.is_file()
                or path.suffix not in RUNTIME_SUFFIXES
                or any(p.startswith(".") or p == "__pycache__" for p in rel.parts)
            ):
                continue
            found[f"runtime/zcbench/{rel.as_posix()}"] = path.read_bytes()
    return dict(sorted(found.items()))


def measure_image(kernel: bytes, cmdline: bytes, ramdisks: Iterable[bytes]) -> dict[int, bytes]:
    """PCR0/1/2 of local image sections given as bytes (what the enclave loaded)."""
    sections = [(SectionType.KERNEL, kernel), (SectionType.CMDLINE, cmdline)]
    sections += [(SectionType.RAMDISK, r) for r in ramdisks]
    return pcrs_for_sections(sections)


def measure_local_image(build_dir: str | Path) -> dict[int, bytes]:
    """PCR0/1/2 of the local image in ``build_dir``, from the section files' bytes."""
    paths = BuildPaths(Path(build_dir))
    try:
        return measure_image(
            paths.kernel.read_bytes(),
            paths.cmdline.read_bytes(),
            [p.read_bytes() for p in paths.ramdisks],
        )
    except FileNotFoundError as exc:
        raise EnvError(
            f"{build_dir} is not a complete build folder: {exc.filename} missing"
        ) from None
