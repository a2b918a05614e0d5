"""Enclave boot: load the image, measure the bytes actually loaded, make the NSM, start serving.

The local enclave measures what it loads and the NSM emulator's PCR0-2 come from that
measurement (DESIGN.md, "local PCRs"): no PCR value is ever passed in from outside.

Image kinds:

- **module image** (development and tests; unsealed): one strategy module file and its
  parameters. Sections, in EIF order: kernel = :data:`MODULE_IMAGE_DESCRIPTOR`, cmdline = the
  parameters as canonical JSON, ramdisk = the module's bytes. :func:`module_image_pcrs` gives the
  PCRs a verifier should expect; the host computes them from the same file.
- **sealed build folder**: the packager's bundle, unsealed through the key broker relayed by the
  host. Not wired yet: that needs the packager's ``measure_local_image`` and the key broker's
  release; :func:`load_image` says so plainly.

The module is executed in a fresh namespace; its Strategy class is found with
:func:`zcbench.strategy.find_strategy`. Boot failures raise :class:`BootError` with a short
reason that is safe to show outside the enclave.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from zcbench.errors import EnvError, UsageError
from zcbench.nitro.eif import SectionType, pcrs_for_sections
from zcbench.strategy import Strategy, find_strategy, make_strategy

__all__ = [
    "MODULE_IMAGE_DESCRIPTOR",
    "BootError",
    "LoadedImage",
    "load_module_image",
    "module_image_pcrs",
    "module_image_sections",
]

MODULE_IMAGE_DESCRIPTOR: Final = b"zcbench local runtime/1: unsealed module image\n"


class BootError(EnvError):
    """The enclave could not boot; the message is short and carries no strategy internals."""


@dataclass(frozen=True)
class LoadedImage:
    """A loaded strategy and the measurement of the bytes it was loaded from."""

    strategy: Strategy
    pcrs: Mapping[int, bytes]
    kind: str


def _params_bytes(params: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":")).encode()


def module_image_sections(
    module: bytes, params: Mapping[str, Any]
) -> list[tuple[SectionType, bytes]]:
    """The sections of a module image, in order."""
    return [
        (SectionType.KERNEL, MODULE_IMAGE_DESCRIPTOR),
        (SectionType.CMDLINE, _params_bytes(params)),
        (SectionType.RAMDISK, module),
    ]


def module_image_pcrs(path: Path, params: Mapping[str, Any]) -> dict[int, bytes]:
    """PCR0/1/2 of the module image made of ``path`` and ``params`` (what a verifier expects)."""
    return pcrs_for_sections(module_image_sections(path.read_bytes(), params))


def load_module_image(path: Path, params: Mapping[str, Any]) -> LoadedImage:
    """Load a strategy module file, measuring exactly the bytes that are executed."""
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise BootError(f"cannot read the module image {path.name}: {exc.strerror}") from None
    pcrs = pcrs_for_sections(module_image_sections(source, params))
    namespace = types.ModuleType(f"zcbench_strategy_{pcrs[0].hex()[:12]}")
    # dataclasses and typing resolve names through sys.modules, as for any imported module
    sys.modules[namespace.__name__] = namespace
    try:
        code = compile(source, path.name, "exec")
        exec(code, namespace.__dict__)  # noqa: S102 - loading the measured strategy is the point
        strategy = make_strategy(find_strategy(namespace), params)
    except UsageError as exc:
        raise BootError(f"the module image has no usable strategy: {exc}") from None
    except Exception as exc:  # what the module raised stays inside: type only
        raise BootError(f"the strategy module failed to load ({type(exc).__name__})") from None
    return LoadedImage(strategy=strategy, pcrs=pcrs, kind="module")
