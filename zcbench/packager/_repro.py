"""The reproducibility check: build again in other processes and environments, compare bytes.

Each extra build runs ``zcbench package`` in a fresh interpreter with its own folder (at a
different depth), umask, time zone (``TZ``), ``PYTHONHASHSEED``, locale and notebook file mtime:
two machines' worth of variation. A variant with ``own_home`` also builds under a new, empty
zcbench home, hence another key broker and data key, as another machine would. Every file of
every build folder must be byte-identical, so the PCRs are too; the one exception is
``payload.sealed`` (ciphertext under the data key), compared only between builds that share a
home, since the measured image does not depend on it (DESIGN.md, promotion).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from zcbench.errors import DataError, EnvError, VerificationError
from zcbench.nitro.commitment import Commitment
from zcbench.progress import progress

__all__ = [
    "BUILD_VARIANTS",
    "BuildVariant",
    "ReproducibilityReport",
    "check_reproducible",
    "verify_reproducible",
]


@dataclass(frozen=True, slots=True)
class BuildVariant:
    """One environment to build in."""

    label: str
    tz: str
    hash_seed: str
    umask: int
    mtime: int
    depth: int
    locale: str
    own_home: bool = False


BUILD_VARIANTS: Final = (
    BuildVariant("utc-seed0-umask022", "UTC", "0", 0o022, 1_000_000_000, 1, "C"),
    BuildVariant(
        "chatham-seed4242-umask077-newhome",
        "Pacific/Chatham",
        "4242",
        0o077,
        2_000_000_000,
        3,
        "C.UTF-8",
        own_home=True,
    ),
)
_KEYED: Final = "payload.sealed"  # the one file that depends on the data key

_CHILD: Final = (
    "import os, sys; os.umask(int(sys.argv[1], 8)); "
    "from zcbench.cli import main; sys.exit(main(sys.argv[2:]))"
)


@dataclass(frozen=True, slots=True)
class ReproducibilityReport:
    """What the check found: one entry per build, and every file that differed."""

    identical: bool
    builds: tuple[str, ...]
    pcrs: tuple[Mapping[str, str], ...]
    bundle_sha256: tuple[str, ...]
    differences: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "builds": list(self.builds),
            "pcrs": [dict(p) for p in self.pcrs],
            "bundle_sha256": list(self.bundle_sha256),
            "differences": list(self.differences),
        }


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _build_in_child(
    notebook: Path,
    work: Path,
    variant: BuildVariant,
    args: Sequence[str],
    python: str,
) -> tuple[Path, dict[str, Any]]:
    src = work / variant.label / "src"
    src.mkdir(parents=True)
    copy = src / notebook.name
    shutil.copyfile(notebook, copy)
    os.utime(copy, (variant.mtime, variant.mtime))
    out = work / variant.label / Path(*["d"] * variant.depth) / "build"
    env = dict(os.environ)
    env.update(
        TZ=variant.tz,
        PYTHONHASHSEED=variant.hash_seed,
        LC_ALL=variant.locale,
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("SOURCE_DATE_EPOCH", None)  # passed explicitly in args
    if variant.own_home:
        home = work / variant.label / "home"
        home.mkdir()
        env["ZCBENCH_HOME"] = str(home)
    cmd = [
        python,
        "-c",
        _CHILD,
        f"{variant.umask:o}",
        "package",
        str(copy),
        "-o",
        str(out),
        "--json",
        *args,
    ]
    done = subprocess.run(cmd, env=env, cwd=src, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise EnvError(f"reproducibility build {variant.label} failed ({done.returncode}): {tail}")
    return out, json.loads(done.stdout)


def check_reproducible(
    notebook: str | Path,
    *,
    reference_dir: str | Path | None = None,
    package_args: Sequence[str] = (),
    source_date_epoch: int | None = None,
    variants: Sequence[BuildVariant] = BUILD_VARIANTS,
    python: str = sys.executable,
) -> ReproducibilityReport:
    """Build ``notebook`` in each of ``variants`` (subprocesses) and compare every byte.

    ``reference_dir`` is a build already made (e.g. by this process) to include in the
    comparison; ``package_args`` are extra ``zcbench package`` arguments (parameters, lock)
    that every build must share, and ``source_date_epoch`` the reference build's.
    """
    nb = Path(notebook).resolve()
    if source_date_epoch is not None:
        package_args = [*package_args, f"--source-date-epoch={int(source_date_epoch)}"]
    builds: list[tuple[str, Path, str]] = []  # label, folder, home
    if reference_dir is not None:
        builds.append(("reference", Path(reference_dir), "shared"))
    with tempfile.TemporaryDirectory(prefix="zcbench-repro-") as tmp:
        for variant in progress(variants, total=len(variants), desc="reproducibility builds"):
            out, _summary = _build_in_child(nb, Path(tmp), variant, package_args, python)
            builds.append((variant.label, out, variant.label if variant.own_home else "shared"))
        trees = [_files(path) for _label, path, _home in builds]
        names = sorted(set().union(*trees))
        differences = []
        for name in names:
            groups: dict[str, set[bytes | None]] = {}
            for tree, (_label, _path, home) in zip(trees, builds, strict=True):
                groups.setdefault(home if name == _KEYED else "all", set()).add(tree.get(name))
            if name == _KEYED and None in set().union(*groups.values()):
                differences.append(name)  # every build has a sealed payload
            elif any(len(found) != 1 for found in groups.values()):
                differences.append(name)
        pcrs: list[dict[str, str]] = []
        bundles: list[str] = []
        for tree in trees:
            try:
                commitment = Commitment.from_json(tree.get("commitment.json", b"{}"))
            except DataError:
                pcrs.append({})
                bundles.append("")
                continue
            pcrs.append({str(k): v.hex() for k, v in commitment.pcrs.items()})
            bundles.append(str(commitment.bundle_sha256 or ""))
    return ReproducibilityReport(
        identical=not differences and len(trees) >= 2,
        builds=tuple(label for label, _p, _h in builds),
        pcrs=tuple(pcrs),
        bundle_sha256=tuple(bundles),
        differences=tuple(differences),
    )


def verify_reproducible(
    notebook: str | Path,
    *,
    reference_dir: str | Path | None = None,
    package_args: Sequence[str] = (),
    source_date_epoch: int | None = None,
    variants: Sequence[BuildVariant] = BUILD_VARIANTS,
) -> ReproducibilityReport:
    """:func:`check_reproducible`, raising :class:`VerificationError` on any difference."""
    report = check_reproducible(
        notebook,
        reference_dir=reference_dir,
        package_args=package_args,
        source_date_epoch=source_date_epoch,
        variants=variants,
    )
    if not report.identical:
        raise VerificationError(
            f"builds differ in {', '.join(report.differences) or 'count'}: the build is not "
            "reproducible; look for host data (time, paths, ordering) in those files",
            check="reproducible",
            expected=report.bundle_sha256[0] if report.bundle_sha256 else None,
            actual=list(report.bundle_sha256[1:]),
        )
    return report
