"""Promotion: notebook → sealed payload → deterministic bundle and local image → PCRs → commitment.

Build folder (every file a pure function of the inputs, the broker's data key and
``SOURCE_DATE_EPOCH``; no path, time, user or host name is recorded)::

    bundle.tar          runtime/zcbench/..., requirements.lock, manifest.json, payload.sealed
    manifest.json       what the bundle holds (strategy, strategy_sha256, inputs, batching, ...)
    payload.sealed      the strategy module and parameters, sealed (zcbench.keys)
    commitment.json     the measurement commitment (DESIGN.md contracts table)
    image/kernel        local image section: the runtime descriptor
    image/cmdline       local image section: the runtime's command line
    image/ramdisk0      local image section: tar of the runtime sources and the lock
    image/ramdisk1      local image section: tar of manifest.json and payload.sealed
    nitro/Dockerfile    for nitro-cli build-enclave (base image pinned by digest)
    nitro/entrypoint.sh starts the enclave runtime on vsock

The plaintext strategy module exists only in memory while building; it is never written here.
PCRs of the local image are computed with the EIF algorithm (:mod:`zcbench.nitro.eif`), so PCR1
(kernel, cmdline, ramdisk 0) names the runtime and PCR2 (ramdisk 1) the sealed strategy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import string
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import zcbench
from zcbench.errors import DataError, EnvError, UsageError, VerificationError
from zcbench.keys import KeyBroker, LocalKeyBroker, read_sealed_header, seal_strategy
from zcbench.nitro.eif import SectionType, format_pcrs, pcrs_for_sections
from zcbench.packager._extract import DEFAULT_ALLOWED_IMPORTS, ExtractedStrategy, extract_strategy
from zcbench.packager._tar import deterministic_tar, read_tar_members

__all__ = [
    "COMMITMENT_SCHEMA",
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_SOURCE_DATE_EPOCH",
    "MANIFEST_SCHEMA",
    "AppImage",
    "Build",
    "BuildCheck",
    "BuildFailure",
    "BuildPaths",
    "check_build",
    "load_build",
    "measure_image",
    "measure_local_image",
    "package_notebook",
    "read_app_image",
    "runtime_files",
]

COMMITMENT_SCHEMA: Final = "zcbench.commitment/1"
MANIFEST_SCHEMA: Final = "zcbench.manifest/1"
DEFAULT_SOURCE_DATE_EPOCH: Final = 0
# Public pin of python:3.11-slim-bookworm; confirm with `docker buildx imagetools inspect`.
DEFAULT_BASE_IMAGE: Final = (
    "python:3.11-slim-bookworm@sha256:"
    "2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91"
)
DEFAULT_VSOCK_PORT: Final = 5005

# The parts of zcbench the enclave runs (DESIGN.md): nothing of host, cli, widgets, backtest.
RUNTIME_PARTS: Final = ("auditlog", "channel", "enclave", "keys", "nitro", "strategy")
RUNTIME_TOP: Final = ("__init__.py", "__main__.py", "errors.py", "py.typed")
RUNTIME_SUFFIXES: Final = (".py", ".pem", ".json", ".typed")
_BUILD_FILES: Final = (
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


@dataclass(frozen=True, slots=True)
class Build:
    """A build folder as written or loaded: its PCRs, digests, manifest and commitment."""

    paths: BuildPaths
    strategy: str
    pcrs: Mapping[int, bytes]
    strategy_sha256: str
    bundle_sha256: str
    manifest: Mapping[str, Any]
    commitment: Mapping[str, Any]

    @property
    def build_dir(self) -> Path:
        return self.paths.root

    def summary(self) -> dict[str, Any]:
        """The JSON-able facts ``zcbench package --json`` prints."""
        return {
            "strategy": self.strategy,
            "pcrs": format_pcrs(self.pcrs),
            "strategy_sha256": self.strategy_sha256,
            "bundle_sha256": self.bundle_sha256,
            "lock_sha256": self.commitment["lock_sha256"],
            "source_date_epoch": self.commitment["source_date_epoch"],
            "build_dir": str(self.paths.root),
        }


@dataclass(frozen=True, slots=True)
class AppImage:
    """Ramdisk 1 of a local image, opened: the manifest and the sealed payload."""

    manifest: Mapping[str, Any]
    sealed: bytes


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(value: object) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode()


def _repo_root() -> Path:
    return Path(zcbench.__file__).resolve().parent.parent


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


def _render(template: Path, values: Mapping[str, str]) -> bytes:
    try:
        text = template.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnvError(
            f"enclave template {template.name} not found in {template.parent}; pass "
            "templates_dir= the enclave_templates folder"
        ) from None
    try:
        return string.Template(text).substitute(values).encode()
    except (KeyError, ValueError) as exc:
        raise EnvError(f"enclave template {template} has an unknown placeholder: {exc}") from None


@dataclass(frozen=True, slots=True)
class _StrategyFacts:
    name: str
    class_name: str
    input_fields: tuple[str, ...]
    params: dict[str, Any]


def _inspect_strategy(extracted: ExtractedStrategy) -> _StrategyFacts:
    """Load the extracted module once (in memory) to read the class's declarations."""
    from zcbench.strategy import find_strategy, make_strategy

    module_name = f"_zcbench_promoting_{extracted.strategy_sha256[:16]}"
    module = types.ModuleType(module_name)
    sys.modules[module_name] = module  # dataclasses resolve string annotations through it
    try:
        code = compile(
            extracted.source, f"<strategy from {extracted.notebook}>", "exec", dont_inherit=True
        )
        exec(code, module.__dict__)  # noqa: S102 - the linted strategy, to read its declarations
        cls = find_strategy(module)
        fields = {f.name for f in dataclasses.fields(cls.params_type)}
        params = {k: v for k, v in extracted.parameters.items() if k in fields}
        make_strategy(cls, params)  # the parameters must construct the strategy
    except UsageError as exc:
        raise DataError(f"{extracted.notebook}: {exc}") from None
    except Exception as exc:
        raise DataError(
            f"{extracted.notebook}: the strategy cells fail to load: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        sys.modules.pop(module_name, None)
    return _StrategyFacts(cls.name, cls.__name__, tuple(cls.fields()), params)


def _batching(parameters: Mapping[str, Any], batching: Mapping[str, int] | None) -> dict[str, int]:
    if batching is None:
        batching = {
            key: parameters[name]
            for name, key in (("batch_count", "count"), ("batch_width_ns", "width_ns"))
            if name in parameters
        }
    rule = dict(batching)
    if len(rule) != 1 or next(iter(rule)) not in ("count", "width_ns"):
        raise UsageError(
            "batching: give exactly one of count or width_ns (the parameters cell may set "
            "batch_count or batch_width_ns)"
        )
    (value,) = rule.values()
    if type(value) is not int or value <= 0:
        raise UsageError(f"batching: {next(iter(rule))} must be a positive int, got {value!r}")
    return rule


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


def read_app_image(ramdisk1: bytes) -> AppImage:
    """Open ramdisk 1 (the app tar): its manifest and sealed payload, strictly."""
    members = read_tar_members(ramdisk1)
    if set(members) != {"manifest.json", "payload.sealed"}:
        raise DataError(
            f"app image must hold manifest.json and payload.sealed, has {sorted(members)}"
        )
    try:
        manifest = json.loads(members["manifest.json"])
    except ValueError as exc:
        raise DataError(f"app image manifest.json is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise DataError(f"app image manifest.json is not a {MANIFEST_SCHEMA} manifest")
    sealed = members["payload.sealed"]
    if manifest.get("payload_sha256") != _sha256(sealed):
        raise DataError("app image payload.sealed does not match the manifest's payload_sha256")
    return AppImage(manifest, sealed)


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise UsageError(f"{out_dir} exists and is not a folder")
        entries = {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()}
        strangers = sorted(entries - set(_BUILD_FILES))
        if strangers:
            raise UsageError(
                f"{out_dir} holds files that are not part of a build ({strangers[:3]}); "
                "choose an empty or new folder"
            )
    for sub in ("", "image", "nitro"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def package_notebook(
    notebook: str | Path,
    out_dir: str | Path,
    *,
    source_date_epoch: int | None = None,
    broker: KeyBroker | None = None,
    overrides: Mapping[str, Any] | None = None,
    allowed_imports: Iterable[str] = DEFAULT_ALLOWED_IMPORTS,
    batching: Mapping[str, int] | None = None,
    lock_path: str | Path | None = None,
    templates_dir: str | Path | None = None,
    base_image: str = DEFAULT_BASE_IMAGE,
    vsock_port: int = DEFAULT_VSOCK_PORT,
) -> Build:
    """Promote the strategy of ``notebook`` into the build folder ``out_dir``.

    Extracts and lints the strategy cells, seals them with the strategy's data key from
    ``broker`` (default: the local key broker in the zcbench home), writes the deterministic
    bundle, the local image sections, the rendered enclave templates and ``commitment.json``,
    and binds the data key to the image's PCR0 when the broker keeps policies. The same inputs
    give the same bytes in any folder, time zone or umask.
    """
    sde = DEFAULT_SOURCE_DATE_EPOCH if source_date_epoch is None else source_date_epoch
    if type(sde) is not int or sde < 0:
        raise UsageError(f"source_date_epoch must be a non-negative int, got {sde!r}")
    repo = _repo_root()
    lock_file = Path(lock_path) if lock_path is not None else repo / "requirements.lock"
    templates = Path(templates_dir) if templates_dir is not None else repo / "enclave_templates"
    if not lock_file.is_file():
        raise EnvError(f"pinned lock {lock_file} not found; pass lock_path= the requirements.lock")

    extracted = extract_strategy(notebook, allowed_imports=allowed_imports, overrides=overrides)
    facts = _inspect_strategy(extracted)
    rule = _batching(extracted.parameters, batching)
    broker = broker if broker is not None else LocalKeyBroker()
    data_key = broker.generate_data_key(facts.name)
    sealed = seal_strategy(extracted.source, facts.params, strategy=facts.name, data_key=data_key)
    header = read_sealed_header(sealed)

    lock = lock_file.read_bytes()
    runtime = runtime_files()
    ramdisk0 = deterministic_tar({**runtime, "requirements.lock": lock}, source_date_epoch=sde)
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "strategy": facts.name,
        "strategy_class": facts.class_name,
        "strategy_sha256": extracted.strategy_sha256,
        "input_fields": list(facts.input_fields),
        "batching": rule,
        "parameters": sorted(facts.params),
        "zcbench_version": zcbench.__version__,
        "lock_sha256": _sha256(lock),
        "runtime_sha256": _sha256(ramdisk0),
        "payload": "payload.sealed",
        "payload_sha256": _sha256(sealed),
        "seal": {"alg": "AES-256-GCM-SIV", "key_id": header.key_id},
        "source_date_epoch": sde,
    }
    manifest_bytes = _json_bytes(manifest)
    python = f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}"
    values = {
        "python": python,
        "zcbench_version": zcbench.__version__,
        "strategy": facts.name,
        "strategy_short": extracted.strategy_sha256[:12],
        "source_date_epoch": str(sde),
        "base_image": base_image,
        "vsock_port": str(int(vsock_port)),
    }
    kernel = _render(templates / "local" / "runtime.json.tmpl", values)
    cmdline = _render(templates / "local" / "cmdline.tmpl", values)
    ramdisk1 = deterministic_tar(
        {"manifest.json": manifest_bytes, "payload.sealed": sealed}, source_date_epoch=sde
    )
    pcrs = measure_image(kernel, cmdline, [ramdisk0, ramdisk1])
    bundle = deterministic_tar(
        {
            **runtime,
            "requirements.lock": lock,
            "manifest.json": manifest_bytes,
            "payload.sealed": sealed,
        },
        source_date_epoch=sde,
    )
    commitment: dict[str, Any] = {
        "schema": COMMITMENT_SCHEMA,
        "strategy": facts.name,
        "pcrs": {k: v for k, v in format_pcrs(pcrs).items() if k in ("0", "1", "2")},
        "strategy_sha256": extracted.strategy_sha256,
        "lock_sha256": manifest["lock_sha256"],
        "zcbench_version": zcbench.__version__,
        "source_date_epoch": sde,
        "bundle_sha256": _sha256(bundle),
        "image": "zcbench-local",
        "measurement": "EIF PCR algorithm over kernel, cmdline, ramdisk0, ramdisk1",
        "builder": {"python": python, "seal_key_id": header.key_id},
    }
    dockerfile = _render(templates / "nitro" / "Dockerfile.tmpl", values)
    entrypoint = _render(templates / "nitro" / "entrypoint.sh.tmpl", values)

    out = Path(out_dir)
    _prepare_out_dir(out)
    paths = BuildPaths(out)
    _write(paths.bundle, bundle)
    _write(paths.manifest, manifest_bytes)
    _write(paths.payload, sealed)
    _write(paths.kernel, kernel)
    _write(paths.cmdline, cmdline)
    _write(paths.ramdisks[0], ramdisk0)
    _write(paths.ramdisks[1], ramdisk1)
    _write(paths.dockerfile, dockerfile)
    _write(paths.entrypoint, entrypoint, 0o755)
    _write(paths.commitment, _json_bytes(commitment))

    set_policy = getattr(broker, "set_policy", None)
    if callable(set_policy):
        set_policy(facts.name, pcr0=pcrs[0])
    return Build(
        paths=paths,
        strategy=facts.name,
        pcrs=pcrs,
        strategy_sha256=extracted.strategy_sha256,
        bundle_sha256=commitment["bundle_sha256"],
        manifest=manifest,
        commitment=commitment,
    )


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


def _read_documents(paths: BuildPaths) -> tuple[dict[str, Any], dict[str, Any], dict[int, bytes]]:
    build_dir = paths.root
    try:
        commitment = json.loads(paths.commitment.read_text())
        manifest = json.loads(paths.manifest.read_text())
    except FileNotFoundError as exc:
        raise EnvError(f"{build_dir} is not a build folder: {exc.filename} missing") from None
    except ValueError as exc:
        raise DataError(f"{build_dir}: commitment or manifest is not JSON: {exc}") from None
    if not isinstance(commitment, dict) or commitment.get("schema") != COMMITMENT_SCHEMA:
        raise DataError(f"{paths.commitment} is not a {COMMITMENT_SCHEMA} document")
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise DataError(f"{paths.manifest} is not a {MANIFEST_SCHEMA} document")
    try:
        committed = {int(k): bytes.fromhex(v) for k, v in commitment["pcrs"].items()}
    except (AttributeError, KeyError, TypeError, ValueError):
        raise DataError(f"{paths.commitment}: 'pcrs' must map indices to hex") from None
    return commitment, manifest, committed


def check_build(build_dir: str | Path) -> BuildCheck:
    """Measure the local image of ``build_dir`` again and compare it with what was committed.

    Never raises because a check failed (see :attr:`BuildCheck.failures`); raises
    :class:`EnvError` or :class:`DataError` only when the folder cannot be read as a build.
    """
    paths = BuildPaths(Path(build_dir))
    commitment, manifest, committed = _read_documents(paths)
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
    bundle_sha = _sha256(paths.bundle.read_bytes()) if paths.bundle.is_file() else None
    if bundle_sha != commitment.get("bundle_sha256"):
        failures.append(
            BuildFailure(
                "bundle_sha256",
                f"{build_dir}: bundle.tar does not match commitment.json",
                str(commitment.get("bundle_sha256")),
                bundle_sha,
            )
        )
    try:
        inner = dict(read_app_image(paths.ramdisks[1].read_bytes()).manifest)
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
    commitment, manifest, committed = _read_documents(paths)
    pcrs: Mapping[int, bytes] = committed
    if verify:
        report = check_build(paths.root)
        if report.failures:
            first = report.failures[0]
            raise VerificationError(
                first.message, check=first.check, expected=first.expected, actual=first.actual
            )
        pcrs = report.measured
    return Build(
        paths=paths,
        strategy=str(commitment.get("strategy")),
        pcrs=pcrs,
        strategy_sha256=str(commitment.get("strategy_sha256")),
        bundle_sha256=str(commitment.get("bundle_sha256")),
        manifest=manifest,
        commitment=commitment,
    )
