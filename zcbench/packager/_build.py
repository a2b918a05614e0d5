"""Promotion: notebook -> sealed payload + measured manifest -> bundle, local image, commitment.

The layout of the build folder is in :mod:`zcbench.packager._layout`, the image and its PCRs in
:mod:`zcbench.packager._image`, the checks of a folder in :mod:`zcbench.packager._check`.

The measured image does not depend on the sealing key: the manifest (ramdisk 1, and the bundle
nitro-cli builds from) carries the strategy's hash and the hash of the sealed plaintext (module
and parameters), while the sealed payload is a separate file delivered to the enclave at boot,
which runs it only if it opens to those hashes. So PCR0 is a function of the notebook's strategy
cells, the parameters, the runtime and the lock alone, on any machine and under any zcbench home,
and rotating a data key changes no PCR. The plaintext strategy module exists only in memory
while building; it is never written here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import string
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import zcbench
from zcbench.enclave.manifest import MANIFEST_SCHEMA, BundleManifest
from zcbench.errors import DataError, EnvError, UsageError
from zcbench.keys import KeyBroker, LocalKeyBroker, seal_strategy, sealed_content_sha256
from zcbench.nitro.commitment import COMMITMENT_SCHEMA, Commitment
from zcbench.nitro.eif import format_pcrs
from zcbench.packager._extract import DEFAULT_ALLOWED_IMPORTS, ExtractedStrategy, extract_strategy
from zcbench.packager._image import measure_image, runtime_files
from zcbench.packager._layout import BuildPaths, prepare_out_dir, write_file
from zcbench.packager._tar import deterministic_tar

if TYPE_CHECKING:
    from zcbench.backtest import ResearchRecord

__all__ = [
    "COMMITMENT_SCHEMA",
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_SOURCE_DATE_EPOCH",
    "MANIFEST_SCHEMA",
    "Build",
    "package_notebook",
]

DEFAULT_SOURCE_DATE_EPOCH: Final = 0
# Public pin of python:3.11-slim-bookworm; confirm with `docker buildx imagetools inspect`.
DEFAULT_BASE_IMAGE: Final = (
    "python:3.11-slim-bookworm@sha256:"
    "2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91"
)
DEFAULT_VSOCK_PORT: Final = 5005
MEASUREMENT: Final = "EIF PCR algorithm over kernel, cmdline, ramdisk0, ramdisk1"


@dataclass(frozen=True, slots=True)
class Build:
    """A build folder as written or loaded: its PCRs, digests, manifest and commitment."""

    paths: BuildPaths
    pcrs: Mapping[int, bytes]
    manifest: BundleManifest
    commitment: Commitment

    @property
    def build_dir(self) -> Path:
        return self.paths.root

    @property
    def strategy(self) -> str:
        return self.manifest.strategy

    @property
    def strategy_sha256(self) -> str:
        return self.manifest.strategy_sha256

    @property
    def bundle_sha256(self) -> str:
        return str(self.commitment.bundle_sha256)

    def summary(self) -> dict[str, Any]:
        """The JSON-able facts ``zcbench package --json`` prints."""
        return {
            "strategy": self.strategy,
            "pcrs": format_pcrs(self.pcrs),
            "strategy_sha256": self.strategy_sha256,
            "sealed_content_sha256": self.manifest.sealed_content_sha256,
            "bundle_sha256": self.bundle_sha256,
            "lock_sha256": self.manifest.lock_sha256,
            "source_date_epoch": self.manifest.source_date_epoch,
            "build_dir": str(self.paths.root),
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _repo_root() -> Path:
    return Path(zcbench.__file__).resolve().parent.parent


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
    resolved: dict[str, Any]  # every parameter, defaults included


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
        # the parameters must construct the strategy
        resolved = dataclasses.asdict(make_strategy(cls, params).params)
    except UsageError as exc:
        raise DataError(f"{extracted.notebook}: {exc}") from None
    except Exception as exc:
        raise DataError(
            f"{extracted.notebook}: the strategy cells fail to load: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        sys.modules.pop(module_name, None)
    return _StrategyFacts(cls.name, cls.__name__, tuple(cls.fields()), params, resolved)


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
    research: Sequence[ResearchRecord] = (),
    ledger: bytes | None = None,
) -> Build:
    """Promote the strategy of ``notebook`` into the build folder ``out_dir``.

    Extracts and lints the strategy cells, seals them with the strategy's data key from
    ``broker`` (default: the local key broker in the zcbench home), writes the measured
    manifest, the deterministic bundle, the local image sections, the rendered enclave
    templates, ``commitment.json`` and the sealed payload beside them, and adds a key-release
    policy for this build's PCR0 when the broker keeps policies (earlier builds keep theirs).
    Every file but ``payload.sealed`` is the same for the same inputs in any folder, time zone,
    umask or zcbench home. ``research``: the research records behind the parameters; their
    digests, the trial count and the deflated Sharpe ratio go into ``commitment.json``
    (:func:`zcbench.backtest.research_summary`; the packaged parameters must be a point they
    tried). They are not measured: no PCR depends on them. ``ledger``: a ledger requirement
    (:meth:`zcbench.enclave.ledger.LedgerRequirement.to_bytes`) the manifest carries, so the
    build's enclave serves only once its ledger's gate passed.
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
    summary = None
    if research:
        from zcbench.backtest import research_summary

        summary = research_summary(research, strategy=facts.name, params=facts.resolved)
    rule = _batching(extracted.parameters, batching)

    lock = lock_file.read_bytes()
    runtime = runtime_files()
    ramdisk0 = deterministic_tar({**runtime, "requirements.lock": lock}, source_date_epoch=sde)
    manifest = BundleManifest(
        strategy=facts.name,
        strategy_class=facts.class_name,
        strategy_sha256=extracted.strategy_sha256,
        sealed_content_sha256=sealed_content_sha256(extracted.source, facts.params),
        input_fields=facts.input_fields,
        batching=rule,
        parameters=tuple(sorted(facts.params)),
        zcbench_version=zcbench.__version__,
        lock_sha256=_sha256(lock),
        runtime_sha256=_sha256(ramdisk0),
        source_date_epoch=sde,
        ledger_requirement=ledger.decode() if ledger is not None else None,
    )
    manifest_bytes = manifest.to_json()
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
    ramdisk1 = deterministic_tar({"manifest.json": manifest_bytes}, source_date_epoch=sde)
    pcrs = measure_image(kernel, cmdline, [ramdisk0, ramdisk1])
    bundle = deterministic_tar(
        {**runtime, "requirements.lock": lock, "manifest.json": manifest_bytes},
        source_date_epoch=sde,
    )
    commitment = Commitment(
        strategy=facts.name,
        pcrs={k: v for k, v in pcrs.items() if k in (0, 1, 2)},
        strategy_sha256=manifest.strategy_sha256,
        sealed_content_sha256=manifest.sealed_content_sha256,
        lock_sha256=manifest.lock_sha256,
        zcbench_version=zcbench.__version__,
        source_date_epoch=sde,
        bundle_sha256=_sha256(bundle),
        image="zcbench-local",
        measurement=MEASUREMENT,
        builder={"python": python},
        research=summary,
    )
    dockerfile = _render(templates / "nitro" / "Dockerfile.tmpl", values)
    entrypoint = _render(templates / "nitro" / "entrypoint.sh.tmpl", values)

    # the key is needed only now: nothing above depends on it
    broker = broker if broker is not None else LocalKeyBroker()
    data_key = broker.generate_data_key(facts.name)
    sealed = seal_strategy(extracted.source, facts.params, strategy=facts.name, data_key=data_key)

    out = Path(out_dir)
    prepare_out_dir(out)
    paths = BuildPaths(out)
    write_file(paths.bundle, bundle)
    write_file(paths.manifest, manifest_bytes)
    write_file(paths.payload, sealed)
    write_file(paths.kernel, kernel)
    write_file(paths.cmdline, cmdline)
    write_file(paths.ramdisks[0], ramdisk0)
    write_file(paths.ramdisks[1], ramdisk1)
    write_file(paths.dockerfile, dockerfile)
    write_file(paths.entrypoint, entrypoint, 0o755)
    write_file(paths.commitment, commitment.to_json())

    set_policy = getattr(broker, "set_policy", None)
    if callable(set_policy):
        set_policy(
            facts.name,
            pcr0=pcrs[0],
            facts={
                "strategy_sha256": manifest.strategy_sha256,
                "sealed_content_sha256": manifest.sealed_content_sha256,
                "build_dir": str(out.resolve()),
            },
        )
    return Build(paths=paths, pcrs=pcrs, manifest=manifest, commitment=commitment)
