"""Checking a build folder: measure its image again and hold it to its commitment and manifest.

The one reader of a build folder's documents: ``commitment.json`` through
:class:`~zcbench.nitro.commitment.Commitment`, ``manifest.json`` through
:class:`~zcbench.enclave.manifest.BundleManifest`; a missing one is a usage error (exit 2),
a malformed one a :class:`~zcbench.errors.DataError` (exit 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from zcbench.enclave.manifest import BundleManifest
from zcbench.errors import DataError, UsageError, VerificationError
from zcbench.nitro.commitment import Commitment
from zcbench.packager._build import Build
from zcbench.packager._image import measure_local_image, read_app_image
from zcbench.packager._layout import BuildPaths

__all__ = ["BuildCheck", "BuildFailure", "check_build", "load_build"]


@dataclass(frozen=True, slots=True)
class BuildFailure:
    """One failed check of a build folder: its name, what went wrong, expected and actual."""

    check: str
    message: str
    expected: str | None = None
    actual: str | None = None


@dataclass(frozen=True, slots=True)
class BuildCheck:
    """What :func:`check_build` found: committed and re-measured PCRs and every failure."""

    committed: Mapping[int, bytes]
    measured: Mapping[int, bytes]
    failures: tuple[BuildFailure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures


def _read_documents(paths: BuildPaths) -> tuple[Commitment, BundleManifest]:
    if not paths.root.is_dir():
        raise UsageError(f"build folder {paths.root} does not exist; run zcbench package")
    commitment = Commitment.load(paths.commitment)
    manifest = BundleManifest.load(paths.manifest)
    return commitment, manifest


def check_build(build_dir: str | Path) -> BuildCheck:
    """Measure the local image of ``build_dir`` again and compare it with what was committed.

    Never raises because a check failed (see :attr:`BuildCheck.failures`); raises
    :class:`UsageError` or :class:`DataError` only when the folder cannot be read as a build.
    """
    paths = BuildPaths(Path(build_dir))
    commitment, manifest = _read_documents(paths)
    committed = commitment.pcrs
    measured = measure_local_image(paths.root)
    failures: list[BuildFailure] = []
    for index in sorted(committed):
        if committed[index] != measured.get(index):
            failures.append(
                BuildFailure(
                    f"pcr{index}",
                    f"{build_dir}: PCR{index} of the image does not match commitment.json; the "
                    "build folder was changed after packaging, package again",
                    committed[index].hex(),
                    measured[index].hex() if index in measured else None,
                )
            )
    bundle = paths.bundle.read_bytes() if paths.bundle.is_file() else None
    bundle_sha = hashlib.sha256(bundle).hexdigest() if bundle is not None else None
    if bundle_sha != commitment.bundle_sha256:
        failures.append(
            BuildFailure(
                "bundle_sha256",
                f"{build_dir}: bundle.tar does not match commitment.json",
                str(commitment.bundle_sha256),
                bundle_sha,
            )
        )
    try:
        inner = read_app_image(paths.ramdisks[1].read_bytes())
    except DataError as exc:
        failures.append(BuildFailure("app_image", f"{build_dir}: image ramdisk 1: {exc}"))
    else:
        if inner != manifest:
            failures.append(
                BuildFailure(
                    "manifest", f"{build_dir}: manifest.json differs from the one inside the image"
                )
            )
    return BuildCheck(committed, measured, tuple(failures))


def load_build(build_dir: str | Path, *, verify: bool = True) -> Build:
    """The build in ``build_dir``: manifest, commitment, paths and PCRs.

    With ``verify`` (the default) the local image is measured again (:func:`check_build`) and
    every committed PCR, the bundle digest and the manifest must match, else
    :class:`VerificationError` naming the first failed check with expected and actual values.
    The PCRs returned are then the measured ones.
    """
    paths = BuildPaths(Path(build_dir))
    commitment, manifest = _read_documents(paths)
    pcrs: Mapping[int, bytes] = commitment.pcrs
    if verify:
        report = check_build(paths.root)
        if report.failures:
            first = report.failures[0]
            raise VerificationError(
                first.message, check=first.check, expected=first.expected, actual=first.actual
            )
        pcrs = report.measured
    return Build(paths=paths, pcrs=pcrs, manifest=manifest, commitment=commitment)
