"""A strategy that does nothing: the live benchmark's measure of the infrastructure alone."""

from __future__ import annotations

import dataclasses

from zcbench.strategy import Batch, Signal, Strategy


@dataclasses.dataclass(frozen=True)
class NoopParams:
    """No parameters."""


class Noop(Strategy):
    """Reads every batch, emits no signal."""

    name = "noop"
    params_type = NoopParams
    input_fields = ("price",)

    def on_batch(self, batch: Batch) -> list[Signal]:
        return []
