"""``zcbench run BUILD_DIR``: a live run of a build in the local enclave (thin over run_live)."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from zcbench.cli.backtest import add_buying_power_options
from zcbench.errors import UsageError
from zcbench.runsettings import RUN_DEFAULTS, RunSettings

__all__ = ["register"]

_EXIT_BY_STATUS = {
    "completed": 0,
    "stopped": 0,
    "strategy_failed": 1,
    "verification_failed": 1,
    "enclave_error": 1,
    "enclave_died": 3,
    "host_error": 3,
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run a build live in the local enclave",
        description=(
            "Run a packaged strategy live: market data through the proxy into the local enclave "
            "(a separate process, no network where the machine allows it), signals back through "
            "the signed log into paper execution. Writes RUN_DIR with log/, boot.cbor, "
            "journal.jsonl and summary.json. Local runs are SIMULATED (development CA)."
        ),
    )
    p.add_argument("build_dir", type=Path, metavar="BUILD_DIR", help="folder from zcbench package")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="event file or daily OHLCV file (parquet or CSV) to replay",
    )
    src.add_argument(
        "--synthetic", action="store_true", help="live synthetic ticks (the default source)"
    )
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="N",
        help="--data: N x real time (default: as fast as possible); "
        "--synthetic: events per second offered (default 20000)",
    )
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: ./run-<id>)")
    p.add_argument("--seed", type=int, default=7, help="synthetic generator seed")
    p.add_argument("--max-delay-ms", type=float, default=RUN_DEFAULTS.max_delay_ms,
                   help="live batch flush delay (%(default)g)")
    risk = p.add_argument_group("risk limits (execution layer)")
    risk.add_argument("--max-position", type=int, default=None, metavar="N", help="units/symbol")
    risk.add_argument("--max-notional", type=int, default=None, metavar="N",
                      help="per order and gross, in the account's ticks (1/money_scale of "
                      "its currency: 1/10,000 when every instrument is quoted to four "
                      "decimals)")
    risk.add_argument("--max-orders-per-s", type=int, default=None, metavar="N")
    risk.add_argument("--price-collar-bps", type=int, default=None, metavar="N")
    risk.add_argument(
        "--initial-cash",
        type=float,
        default=RUN_DEFAULTS.initial_cash,
        metavar="CASH",
        help="capital in currency units: an order the account cannot carry is refused "
        "(insufficient_cash / insufficient_margin), as the backtest's --initial-cash (%(default)g)",
    )
    add_buying_power_options(risk)
    p.add_argument("--operator", default=None, metavar="NAME",
                   help="who starts the run, named in its signed record of the limits in force "
                   "(default: the login name); change them later with zcbench limits set")
    p.add_argument("--clock", default=RUN_DEFAULTS.clock, metavar="host|clockbound[:PATH]",
                   help="the clock source whose readings (with their error bounds) the run "
                   "logs: the host's kernel discipline (default) or AWS ClockBound's segment "
                   "(on EC2 and Nitro hosts; default path /var/run/clockbound/shm0)")
    p.add_argument("--ledger", type=Path, default=None, metavar="DIR",
                   help="the strategy's ledger: run-start, checkpoints and run-end go there, and "
                   "the run serves only if the ledger allows its PCR0 now")
    p.add_argument("--policy", type=Path, default=None, metavar="FILE",
                   help="with --ledger: a tlog-policy whose quorum must cosign the run-start")
    p.add_argument(
        "--venue",
        default=RUN_DEFAULTS.venue,
        metavar="paper|fix://HOST:PORT",
        help="where orders go: the paper venue (default) or a FIX 4.4 venue such as "
        "'zcbench venue sim' (session state in RUN_DIR/fix)",
    )
    p.add_argument(
        "--continue",
        dest="continue_dir",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR (ended or killed): the boot names its final "
        "checkpoint and positions, the venue's state at start is the first IN record, a FIX "
        "session resumes with its sequence numbers, and --data resumes after its last batch",
    )
    p.add_argument(
        "--no-feedback",
        dest="feedback",
        action="store_false",
        help="do not log the outcomes of the strategy's signals, its positions and the limits "
        "as IN records before each batch (feedback is on by default; without it batches are "
        "pipelined and a strategy taking a context gets None)",
    )
    p.add_argument(
        "--snapshot-every",
        type=float,
        default=RUN_DEFAULTS.snapshot_every_s,
        metavar="S",
        help="for a strategy that keeps snapshots: seal and log its state at most every S "
        "seconds (0: after every batch) and after the last batch, for --continue and range "
        "replays (%(default)g)",
    )
    p.add_argument("--json", action="store_true", help="print the run summary as one JSON object")
    p.set_defaults(handler=_handle, check_values=_check_flags, feedback=RUN_DEFAULTS.feedback)


def _check_flags(args: argparse.Namespace) -> None:
    """Every numeric flag within its range, named by the flag: never replaced by a default."""

    def positive(flag: str, value: float | None, what: str) -> None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag} must be a positive number ({what}), got {value:g}")

    positive("--duration", args.duration, "seconds")
    positive("--rate", args.rate, "events per second" if args.data is None else "x real time")
    if not (math.isfinite(args.snapshot_every) and args.snapshot_every >= 0):
        raise UsageError(
            f"--snapshot-every must be 0 or more seconds, got {args.snapshot_every:g}"
        )
    if not (math.isfinite(args.max_delay_ms) and args.max_delay_ms >= 0):
        raise UsageError(
            f"--max-delay-ms must be 0 or more milliseconds, got {args.max_delay_ms:g}"
        )
    if args.venue != "paper":
        from zcbench.venue.fix import parse_venue_url

        parse_venue_url(args.venue)
    for name in _RISK_FLAGS:
        value = getattr(args, name)
        if value is not None and value < 0:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be 0 or more, got {value}")
    if not (math.isfinite(args.initial_cash) and 0 < args.initial_cash < 1e11):
        raise UsageError(f"--initial-cash must be a positive amount of currency units below "
                         f"10^11, got {args.initial_cash:g}")
    try:
        _buying_power(args)
    except UsageError as exc:
        raise UsageError(f"--leverage / --short-margin: {exc}") from None


def _buying_power(args: argparse.Namespace) -> Any:
    from zcbench.risk import BuyingPower

    return BuyingPower(leverage=args.leverage, short_margin=args.short_margin)


_RISK_FLAGS = ("max_position", "max_notional", "max_orders_per_s", "price_collar_bps")


def _source(args: argparse.Namespace, spec: Any, after_ns: int | None = None) -> Any:
    """The run's :class:`~zcbench.host.sources.MarketSource` (its source and its account)."""
    from zcbench.host.sources import market_source

    if args.data is not None:
        return market_source(
            spec, data=args.data, speed=args.rate, duration_s=args.duration, after_ns=after_ns
        )
    return market_source(spec, rate=args.rate, duration_s=args.duration, seed=args.seed, live=True)


def _settings(args: argparse.Namespace) -> RunSettings:
    """The run's settings from the flags (whose defaults are :data:`RUN_DEFAULTS`)."""
    return RunSettings(venue=args.venue, feedback=args.feedback, initial_cash=args.initial_cash,
                       max_delay_ms=args.max_delay_ms, snapshot_every_s=args.snapshot_every,
                       clock=args.clock, operator=args.operator)


class _Progress:
    """The live progress: one redrawn line on a terminal, else a line every few seconds."""

    def __init__(self, terminal: bool, every_s: float = 2.0) -> None:
        self.terminal = terminal
        self.every_s = every_s
        self.last = float("-inf")
        self.shown = False

    def __call__(self, p: Any) -> None:
        from zcbench.money import format_money

        text = (
            f"{p.batches} batches  {p.events_per_s:,.0f} events/s  freshness p50 "
            f"{p.freshness_p50_ms:.1f} ms p99 {p.freshness_p99_ms:.1f} ms  signals {p.signals}  "
            f"PnL {format_money(p.pnl, signed=True, scale=p.money_scale, currency=p.currency)}"
        )
        if self.terminal:
            sys.stderr.write(f"\r{text}   ")
        else:
            now = time.monotonic()
            if now - self.last < self.every_s:
                return
            self.last = now
            sys.stderr.write(f"zcbench: live run: {text}\n")  # as zcbench.progress's lines
        self.shown = True
        sys.stderr.flush()

    def end(self) -> None:
        if self.terminal and self.shown:
            sys.stderr.write("\n")


def _handle(args: argparse.Namespace) -> int:
    from zcbench.host.execution import RiskLimits
    from zcbench.host.live import BuildImage, run_live
    from zcbench.host.options import new_run_id, run_options

    _check_flags(args)
    given = {name: getattr(args, name) for name in _RISK_FLAGS if getattr(args, name) is not None}
    limits = RiskLimits(**given)
    image = BuildImage(args.build_dir)
    spec = image.batching()  # also checks the build folder before anything starts
    run_id = new_run_id()
    run_dir = args.run_dir or Path.cwd() / run_id
    continuation = None
    if args.continue_dir is not None:
        from zcbench.host.restart import continue_run

        continuation = continue_run(args.continue_dir)
    after = continuation.end.newest_event_ns if continuation is not None else None
    market = _source(args, spec, after)
    settings = _settings(args)
    options = run_options(settings, run_dir, run_id, continuation)
    progress = _Progress(terminal=sys.stderr.isatty())
    hook = _ledger_hook(args, run_dir)
    from zcbench.serve.control import ControlSocket  # attestations for `zcbench serve`

    control = ControlSocket(run_dir, on_error=lambda text: sys.stderr.write(f"{text}\n"))

    def booted(handle: Any) -> None:
        control.attach(handle)  # the ledger's gate (in the enclave) passed before this

    try:
        summary = run_live(
            image,
            run_dir,
            market.source,
            account=market.account,
            run_id=run_id,
            limits=limits,
            capital=settings.capital(market.account),
            buying_power=_buying_power(args),
            on_progress=progress,
            on_booted=booted,
            ledger=hook,
            continuation=continuation,
            **options,
        )
    finally:
        control.close()
    progress.end()
    if args.json:
        print(json.dumps(summary.to_json(), sort_keys=True))
    else:
        _print_summary(summary)
    return _exit_code(summary.status, summary.reason)




def _exit_code(status: str, reason: str) -> int:
    """The run's exit code: by its status, and for a run ended by a signal the shell's
    128 + signal number (130 for Ctrl-C, 143 for SIGTERM), as when the signal had killed it."""
    if status == "interrupted":
        by_sigterm = reason.startswith("interrupted by SIGTERM")
        return 128 + (signal.SIGTERM if by_sigterm else signal.SIGINT)
    return _EXIT_BY_STATUS.get(status, 1)


def _ledger_hook(args: argparse.Namespace, run_dir: Path) -> Any:
    if args.ledger is None:
        if args.policy is not None:
            raise UsageError("--policy needs --ledger")
        return None
    from zcbench.ledger import load_policy
    from zcbench.ledger.runs import LedgerRunHook

    policy = load_policy(args.policy) if args.policy is not None else None
    return LedgerRunHook(args.ledger, run_dir, policy=policy)




def _print_summary(s: Any) -> None:
    from zcbench.money import format_money

    label = "SIMULATED (development CA) " if s.simulated else ""
    print(f"{label}run {s.run_id}: {s.status} ({s.reason})")
    print(f"  {s.batches} batches, {s.events} events, {s.events_per_s:,.0f} events/s")
    print(f"  freshness p50 {s.freshness_p50_ms} ms, p99 {s.freshness_p99_ms} ms")
    print(f"  signals {s.signals}, orders {s.orders}, fills {s.fills}, rejects {s.rejects}")
    held = ", ".join(f"{k} {v:+,}" for k, v in sorted(s.positions.items())) or "none"
    pnl = format_money(s.pnl, signed=True, scale=s.money_scale, currency=s.currency)
    print(f"  PnL {pnl}; positions {held}")
    print(f"  {s.capital_text()}")
    if s.dropped_batches:
        print(f"  DROPPED by the proxy: {s.dropped_batches} batches, {s.dropped_events} events")
    print(f"  network isolation: {'yes (new namespace)' if s.isolated_network else 'NO'}")
    print(f"  log: {s.log_size} durable records, origin {s.origin}")
    run = Path(s.run_dir)
    for name in ("log", "boot.cbor", "journal.jsonl", "summary.json"):
        print(f"  {run / name}")
    trust = " --trust dev" if s.simulated else ""
    print("next: the LP report of this run, then its log checked alone:")
    print(f"  zcbench report {shlex.quote(str(run))}{trust}")
    print(f"  zcbench log verify {shlex.quote(str(run))}{trust}")
