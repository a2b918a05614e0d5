"""What a live run is made with when nobody says otherwise: one definition for every front end
that starts one (``zcbench run`` and the live panel), so the panel's run is the run the CLI
would make.

:class:`RunSettings` holds the settings a front end chooses (where orders go, feedback, the
capital, the batch flush delay, the snapshot interval, the clock source, the operator);
:data:`RUN_DEFAULTS` is their defaults: the paper venue, feedback on, 1,000,000 currency units
of cash (:data:`zcbench.risk.DEFAULT_INITIAL_CASH`), 50 ms, 1 s, the host's clock, the login
name. :func:`zcbench.host.options.run_options` turns them into the keyword arguments of
:func:`zcbench.host.live.run_live`, the one translation both front ends use.

:func:`~zcbench.host.live.run_live` itself keeps the plainest defaults (no venue: the built-in
last-price fills; no feedback) for the tests and benchmarks that call it directly; a front end
passes these instead. This module imports no part (a command line reads its defaults here
without loading the host).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from zcbench.risk import DEFAULT_INITIAL_CASH

__all__ = ["RUN_DEFAULTS", "RunSettings"]


class _Account(Protocol):
    @property
    def money_scale(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RunSettings:
    """A live run's settings as a front end chooses them (the defaults: :data:`RUN_DEFAULTS`).

    ``venue``: ``"paper"`` (the paper venue, :class:`zcbench.venue.PaperVenue`) or
    ``fix://HOST:PORT`` (a FIX 4.4 venue, its session state in ``RUN_DIR/fix``); ``feedback``:
    log the outcomes of the strategy's signals, its positions and the limits before each batch
    and hand them to the strategy; ``initial_cash``: capital in whole currency units (None:
    capital does not bind); ``max_delay_ms``: the live batch flush delay;
    ``snapshot_every_s``: how often a strategy that keeps snapshots seals its state (0: after
    every batch); ``clock``: ``host`` or ``clockbound[:PATH]``; ``operator``: who starts the
    run, named in its signed record of the limits in force (None: the login name)."""

    venue: str = "paper"
    feedback: bool = True
    initial_cash: float | None = float(DEFAULT_INITIAL_CASH)
    max_delay_ms: float = 50.0
    snapshot_every_s: float = 1.0
    clock: str = "host"
    operator: str | None = None

    def capital(self, account: _Account) -> int | None:
        """``initial_cash`` in the run's account unit (``MarketSource.account``: the committed
        instruments of the data's symbols, as the backtest counts them); None: does not bind."""
        from zcbench.money import ticks_of

        if self.initial_cash is None:
            return None
        return ticks_of(self.initial_cash, scale=account.money_scale)


RUN_DEFAULTS: Final = RunSettings()
