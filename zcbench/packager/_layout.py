"""The build folder's layout: where each artefact lives, and writing it safely.

Build folder (every file but ``payload.sealed`` a pure function of the notebook's strategy
cells, the parameters, the runtime, the lock and ``SOURCE_DATE_EPOCH``; no path, time, user,
host name or key is recorded)::

    bundle.tar          runtime/zcbench/..., requirements.lock, manifest.json (what nitro/ builds)
    manifest.json       the measured manifest (zcbench.enclave.manifest)
    payload.sealed      the strategy module and parameters, sealed (zcbench.keys); delivered to
                        the enclave at boot, outside every measured section
    commitment.json     the measurement commitment (zcbench.nitro.commitment)
    image/kernel        local image section: the runtime descriptor
    image/cmdline       local image section: the runtime's command line
    image/ramdisk0      local image section: tar of the runtime sources and the lock
    image/ramdisk1      local image section: tar of manifest.json
    nitro/Dockerfile    for nitro-cli build-enclave (base image pinned by digest)
    nitro/entrypoint.sh starts the enclave runtime on vsock
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from zcbench.durable import write_atomically
from zcbench.errors import UsageError

__all__ = ["BUILD_FILES", "BuildPaths", "prepare_out_dir", "write_file"]

BUILD_FILES: Final = (
    "bundle.tar",
    "manifest.json",
    "payload.sealed",
    "commitment.json",
    "image/kernel",
    "image/cmdline",
    "image/ramdisk0",
    "image/ramdisk1",
    "nitro/Dockerfile",
    "nitro/entrypoint.sh",
)
"""Every file of a build folder."""


@dataclass(frozen=True, slots=True)
class BuildPaths:
    """Where each artefact of a build folder lives."""

    root: Path

    @property
    def bundle(self) -> Path:
        return self.root / "bundle.tar"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def payload(self) -> Path:
        return self.root / "payload.sealed"

    @property
    def commitment(self) -> Path:
        return self.root / "commitment.json"

    @property
    def kernel(self) -> Path:
        return self.root / "image" / "kernel"

    @property
    def cmdline(self) -> Path:
        return self.root / "image" / "cmdline"

    @property
    def ramdisks(self) -> tuple[Path, Path]:
        return self.root / "image" / "ramdisk0", self.root / "image" / "ramdisk1"

    @property
    def dockerfile(self) -> Path:
        return self.root / "nitro" / "Dockerfile"

    @property
    def entrypoint(self) -> Path:
        return self.root / "nitro" / "entrypoint.sh"


def prepare_out_dir(out_dir: Path) -> None:
    """Make ``out_dir`` ready for a build: new, empty, or holding only an earlier build."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise UsageError(f"{out_dir} exists and is not a folder")
        entries = {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()}
        strangers = sorted(entries - set(BUILD_FILES))
        if strangers:
            raise UsageError(
                f"{out_dir} holds files that are not part of a build ({strangers[:3]}); "
                "choose an empty or new folder"
            )
    for sub in ("", "image", "nitro"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)


def write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` whole (:func:`zcbench.durable.write_atomically`) with a fixed mode."""
    write_atomically(path, data, mode)
