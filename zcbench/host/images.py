"""Enclave images: what the local enclave loads, and what the host expects it to attest to.

:class:`EnclaveImage` is the protocol a live run and a replay both take; :class:`ModuleImage` is
an unsealed strategy module (development), :class:`BuildImage` a build folder from ``zcbench
package`` (sealed, measured, committed). This module only names images and their expected
PCRs; launching and booting them is :mod:`zcbench.host.session`'s.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from zcbench.enclave.boot import module_image_pcrs
from zcbench.errors import EnvError
from zcbench.marketdata import BatchSpec

__all__ = ["BuildImage", "EnclaveImage", "ModuleImage"]


class EnclaveImage(Protocol):
    """What the local enclave loads, and what the host expects of it."""

    def launch_args(self) -> list[str]:
        """Arguments to ``python -m zcbench.enclave`` naming the image."""
        ...

    def expected_pcrs(self) -> dict[int, bytes]:
        """PCRs the boot document must carry."""
        ...

    def describe(self) -> str:
        """A path or name for the run summary."""
        ...

    def declared_fields(self) -> tuple[str, ...] | None:
        """The input fields the build declares (None: whatever the enclave says)."""
        ...


@dataclass(frozen=True)
class ModuleImage:
    """An unsealed strategy module and its parameters: the local development image.

    ``ledger``: a ledger requirement file (:class:`zcbench.enclave.ledger.LedgerRequirement`)
    the image measures; its enclave serves only once the ledger's gate passed.
    """

    module: Path
    params: Mapping[str, Any] = field(default_factory=dict)
    ledger: Path | None = None

    def launch_args(self) -> list[str]:
        if not self.module.is_file():
            raise EnvError(f"strategy module image {self.module} does not exist")
        params = json.dumps(dict(self.params), sort_keys=True)
        args = ["--module", str(self.module.resolve()), "--params", params]
        if self.ledger is not None:
            args += ["--ledger-requirement", str(self.ledger.resolve())]
        return args

    def expected_pcrs(self) -> dict[int, bytes]:
        """PCR0-2 a genuine enclave loading this image reports."""
        ledger = self.ledger.read_bytes() if self.ledger is not None else None
        return module_image_pcrs(self.module, self.params, ledger)

    def describe(self) -> str:
        return str(self.module.resolve())

    def declared_fields(self) -> tuple[str, ...] | None:
        return None


@dataclass(frozen=True)
class BuildImage:
    """A build folder from ``zcbench package``: sealed, measured, committed.

    Loading it re-measures the image and checks it against ``commitment.json``; the enclave must
    then attest to exactly the committed PCRs.
    """

    build_dir: Path

    @functools.cached_property
    def _loaded(self) -> Any:
        from zcbench.packager import load_build

        if not self.build_dir.is_dir():
            raise EnvError(f"build folder {self.build_dir} does not exist; run zcbench package")
        return load_build(self.build_dir, verify=True)

    def _build(self) -> Any:
        return self._loaded

    def launch_args(self) -> list[str]:
        self._build()
        return ["--build", str(self.build_dir.resolve())]

    def expected_pcrs(self) -> dict[int, bytes]:
        return dict(self._build().commitment.pcrs)

    def describe(self) -> str:
        return str(self.build_dir.resolve())

    def declared_fields(self) -> tuple[str, ...] | None:
        return tuple(self._build().manifest.input_fields)

    def batching(self) -> BatchSpec:
        """The batching rule the build was packaged with (the backtest's)."""
        rule = self._build().manifest.batching
        return BatchSpec(width_ns=rule.get("width_ns"), count=rule.get("count"))
