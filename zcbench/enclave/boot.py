"""Enclave boot: load the image, measure the bytes actually loaded, unseal, build the strategy.

The local enclave measures what it loads and the NSM emulator's PCR0-2 come from that
measurement (DESIGN.md, "local PCRs"): no PCR value is ever passed in from outside.

Image kinds:

- **build folder** (``zcbench package`` output; local): the image sections ``image/kernel``,
  ``image/cmdline``, ``image/ramdisk0``, ``image/ramdisk1`` are read once, measured with the EIF
  algorithm, and ramdisk 1 (a tar of the measured ``manifest.json``) is opened from those same
  bytes.
- **bundle folder** (inside a Nitro enclave): ``manifest.json`` as the EIF's entrypoint finds
  it; the PCRs are the hardware's, read through ``/dev/nsm``.

In both, the sealed payload is not part of the image: it is delivered at boot (a file the host
names, or the boot message's ``config["sealed_payload"]``), so no measurement depends on the data
key. :func:`unseal_image` asks the key broker for the data key with this enclave's attestation
document (relayed by the host; the RSA key never leaves here), opens the payload, and refuses it
unless the module hashes to the manifest's ``strategy_sha256`` and the plaintext (module and
parameters) to its ``sealed_content_sha256``: a payload of another build, even one the same key
opens, never runs under this measurement.
- **module image** (development and tests; unsealed): one strategy module file and its
  parameters. Sections, in EIF order: kernel = :data:`MODULE_IMAGE_DESCRIPTOR`, cmdline = the
  parameters as canonical JSON, ramdisk = the module's bytes. :func:`module_image_pcrs` gives the
  PCRs a verifier should expect; the host computes them from the same file.

This module runs inside the enclave, so it uses only the runtime parts (channel, keys, nitro,
strategy) and the standard library. Boot failures raise :class:`BootError` with a short reason
that is safe to show outside the enclave.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import zcbench
from zcbench.enclave.manifest import BundleManifest
from zcbench.errors import DataError, EnvError, UsageError, ZcbenchError
from zcbench.nitro.eif import SectionType, pcrs_for_sections
from zcbench.strategy import Strategy, find_strategy, make_strategy

__all__ = [
    "IMAGE_SECTIONS",
    "MODULE_IMAGE_DESCRIPTOR",
    "BootError",
    "KeyRelay",
    "LoadedImage",
    "SealedImage",
    "check_runtime_matches",
    "load_build_image",
    "load_bundle",
    "load_module_image",
    "module_image_pcrs",
    "module_image_sections",
    "read_app_image",
    "read_payload",
    "strategy_from_source",
    "unseal_image",
]

IMAGE_SECTIONS: Final = (
    (SectionType.KERNEL, "image/kernel"),
    (SectionType.CMDLINE, "image/cmdline"),
    (SectionType.RAMDISK, "image/ramdisk0"),
    (SectionType.RAMDISK, "image/ramdisk1"),
)
"""The local image's section files in EIF order (the packager's build folder layout)."""
_MAX_MANIFEST: Final = 1 << 20
_MAX_SEALED: Final = 16 << 20

KeyRelay = Callable[[bytes, bytes, str], bytes]
"""``(attestation document, ciphertext blob, key id) -> CMS CiphertextForRecipient``: the host
relays a KMS ``Decrypt`` with ``Recipient`` to the key broker and returns its answer."""

MODULE_IMAGE_DESCRIPTOR: Final = b"zcbench local runtime/1: unsealed module image\n"


class BootError(EnvError):
    """The enclave could not boot; the message is short and carries no strategy internals."""


@dataclass(frozen=True)
class LoadedImage:
    """A loaded strategy and the measurement of the bytes it was loaded from."""

    strategy: Strategy
    pcrs: Mapping[int, bytes]
    kind: str
    ledger: Any = None  # the measured LedgerRequirement, if any


@dataclass(frozen=True)
class SealedImage:
    """A measured image whose strategy arrives sealed at boot: the manifest it measures and its
    PCRs (None when the hardware measured it)."""

    manifest: BundleManifest
    pcrs: Mapping[int, bytes] | None


def read_app_image(ramdisk1: bytes) -> BundleManifest:
    """The manifest in ramdisk 1 (a tar holding exactly ``manifest.json``); :class:`DataError`."""
    raw: bytes | None = None
    try:
        with tarfile.open(fileobj=io.BytesIO(ramdisk1), mode="r:") as tar:
            for info in tar:
                if not info.isfile() or info.name != "manifest.json" or raw is not None:
                    raise DataError(
                        f"the app image must hold only manifest.json, not {info.name!r}"
                    )
                if info.size > _MAX_MANIFEST:
                    raise DataError("the app image's manifest.json is too big")
                handle = tar.extractfile(info)
                assert handle is not None
                raw = handle.read()
    except tarfile.TarError:
        raise DataError("the app image (ramdisk 1) is not a tar archive") from None
    if raw is None:
        raise DataError("the app image must hold manifest.json")
    return BundleManifest.from_json(raw, source="the app image's manifest.json")


def load_build_image(build_dir: Path) -> SealedImage:
    """Read the local image sections once, measure those bytes, open ramdisk 1 from them."""
    sections: list[tuple[SectionType, bytes]] = []
    for kind, rel in IMAGE_SECTIONS:
        try:
            sections.append((kind, (build_dir / rel).read_bytes()))
        except OSError as exc:
            raise BootError(f"cannot read image section {rel}: {exc.strerror}") from None
    pcrs = pcrs_for_sections(sections)
    check_runtime_matches(sections[2][1], Path(zcbench.__file__).resolve().parent)
    try:
        manifest = read_app_image(sections[-1][1])
    except DataError as exc:
        raise BootError(str(exc)) from None
    return SealedImage(manifest, pcrs)


def read_payload(path: Path) -> bytes:
    """The sealed payload delivered as a file (not measured: checked after unsealing)."""
    try:
        with open(path, "rb") as fh:
            sealed = fh.read(_MAX_SEALED + 1)
    except OSError as exc:
        raise BootError(f"cannot read the sealed payload {path.name}: {exc.strerror}") from None
    if len(sealed) > _MAX_SEALED:
        raise BootError("the sealed payload is too big")
    return sealed


def check_runtime_matches(ramdisk0: bytes, package_dir: Path) -> None:
    """Refuse to boot unless the zcbench code running here is the runtime in ramdisk 0.

    The local enclave executes the installed package, so its PCR1 would be a claim about code
    that is not running unless the two are the same bytes: every ``runtime/zcbench/...`` file of
    the image must equal the installed file, and no installed ``.py`` file of those parts may be
    missing from the image.
    """
    prefix = "runtime/zcbench/"
    image: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(ramdisk0), mode="r:") as tar:
            for info in tar:
                if info.isfile() and info.name.startswith(prefix):
                    handle = tar.extractfile(info)
                    assert handle is not None
                    image[info.name[len(prefix) :]] = handle.read()
    except tarfile.TarError:
        raise BootError("the runtime image (ramdisk 0) is not a tar archive") from None
    if not image:
        raise BootError("the runtime image (ramdisk 0) holds no zcbench runtime")
    for rel, data in sorted(image.items()):
        try:
            same = (package_dir / rel).read_bytes() == data
        except OSError:
            same = False
        if not same:
            raise BootError(
                f"the running zcbench differs from the image's runtime at zcbench/{rel}; "
                "package the build again with this zcbench"
            )
    parts = {rel.split("/", 1)[0] for rel in image if "/" in rel}
    for part in sorted(parts):
        for path in sorted((package_dir / part).rglob("*.py")):
            rel = path.relative_to(package_dir).as_posix()
            hidden = any(p.startswith(".") or p == "__pycache__" for p in rel.split("/"))
            if not hidden and rel not in image:
                raise BootError(
                    f"zcbench/{rel} runs here but is not in the image's runtime; package again"
                )


def load_bundle(bundle_dir: Path) -> SealedImage:
    """The manifest of an unpacked bundle (inside a Nitro enclave, measured by the hardware)."""
    try:
        manifest = BundleManifest.load(bundle_dir / "manifest.json")
    except ZcbenchError as exc:
        raise BootError(f"cannot read the bundle: {exc}") from None
    return SealedImage(manifest, None)


def unseal_image(
    image: SealedImage, sealed: bytes, attester: Any, relay: KeyRelay, *, rsa_bits: int = 2048
) -> Strategy:
    """Ask for the data key with a fresh RSA key bound into an attestation document, unwrap
    the broker's answer, unseal ``sealed`` (delivered at boot), hold what it opens to the
    manifest's hashes, and build the strategy. Failures are opaque on purpose."""
    return _unseal(image, sealed, attester, relay, rsa_bits=rsa_bits)[0]


def _unseal(
    image: SealedImage, sealed: bytes, attester: Any, relay: KeyRelay, *, rsa_bits: int = 2048
) -> tuple[Strategy, bytes]:
    """:func:`unseal_image`, and the released data key: the secret the runtime derives its
    snapshot key from (it never leaves the enclave)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from zcbench.keys import read_sealed_header, unseal_strategy, unwrap_recipient

    manifest = image.manifest
    try:
        header = read_sealed_header(sealed)
    except DataError:
        raise BootError("the sealed payload delivered at boot is malformed") from None
    if header.strategy != manifest.strategy:
        raise BootError("the sealed payload is for another strategy than the image measures")
    key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    document = attester.attestation(user_data=None, nonce=None, public_key=spki)
    answer = relay(document, header.data_key_blob, header.key_id)
    try:
        data_key = unwrap_recipient(answer, key)
        unsealed = unseal_strategy(sealed, data_key)
    except ZcbenchError:
        raise BootError("the strategy could not be unsealed with the released key") from None
    source = unsealed.module_source.encode()
    if (
        unsealed.content_sha256 != manifest.sealed_content_sha256
        or hashlib.sha256(source).hexdigest() != manifest.strategy_sha256
    ):
        raise BootError(
            "the sealed payload is not the strategy and parameters the image measures; refused"
        )
    strategy = strategy_from_source(source, unsealed.parameters, tag=header.strategy)
    if strategy.name != manifest.strategy:
        raise BootError("the unsealed strategy is not the one the manifest names")
    return strategy, data_key


def strategy_from_source(source: bytes, params: Mapping[str, Any], *, tag: str) -> Strategy:
    """Execute a strategy module's source in a fresh module and instantiate its strategy."""
    digest = hashlib.sha256(source).hexdigest()[:12]
    namespace = types.ModuleType(f"zcbench_strategy_{digest}")
    # dataclasses and typing resolve names through sys.modules, as for any imported module
    sys.modules[namespace.__name__] = namespace
    try:
        code = compile(source, f"<strategy {tag}>", "exec")
        exec(code, namespace.__dict__)  # noqa: S102 - loading the measured strategy is the point
        return make_strategy(find_strategy(namespace), params)
    except UsageError as exc:
        raise BootError(f"the image has no usable strategy: {exc}") from None
    except Exception as exc:  # what the module raised stays inside: type only
        raise BootError(f"the strategy module failed to load ({type(exc).__name__})") from None


def _params_bytes(params: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":")).encode()


def module_image_sections(
    module: bytes, params: Mapping[str, Any], ledger: bytes | None = None
) -> list[tuple[SectionType, bytes]]:
    """The sections of a module image, in order; ``ledger``: the ledger requirement
    (:class:`zcbench.enclave.ledger.LedgerRequirement` bytes) as a second ramdisk."""
    sections = [
        (SectionType.KERNEL, MODULE_IMAGE_DESCRIPTOR),
        (SectionType.CMDLINE, _params_bytes(params)),
        (SectionType.RAMDISK, module),
    ]
    if ledger is not None:
        sections.append((SectionType.RAMDISK, ledger))
    return sections


def module_image_pcrs(
    path: Path, params: Mapping[str, Any], ledger: bytes | None = None
) -> dict[int, bytes]:
    """PCR0/1/2 of the module image made of ``path``, ``params`` and the ledger requirement
    (what a verifier expects)."""
    return pcrs_for_sections(module_image_sections(path.read_bytes(), params, ledger))


def load_module_image(
    path: Path, params: Mapping[str, Any], ledger_path: Path | None = None
) -> LoadedImage:
    """Load a strategy module file (and the ledger requirement at ``ledger_path``), measuring
    exactly the bytes that are executed and required."""
    from zcbench.enclave.ledger import LedgerRequirement
    from zcbench.ledger import LedgerFormatError

    try:
        source = path.read_bytes()
        ledger = ledger_path.read_bytes() if ledger_path is not None else None
    except OSError as exc:
        raise BootError(f"cannot read the module image: {exc.strerror}") from None
    requirement = None
    if ledger is not None:
        try:
            requirement = LedgerRequirement.from_bytes(ledger)
        except LedgerFormatError as exc:
            raise BootError(str(exc)) from None
    pcrs = pcrs_for_sections(module_image_sections(source, params, ledger))
    strategy = strategy_from_source(source, params, tag=path.name)
    return LoadedImage(strategy=strategy, pcrs=pcrs, kind="module", ledger=requirement)
