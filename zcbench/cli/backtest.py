"""``zcbench backtest``: backtest an example strategy on a data file, the sample, or ticks."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = [
    "add_buying_power_options",
    "add_capital_options",
    "backtest_inputs",
    "register",
    "tick_scale_note",
]

_DEFAULT_TICK_WIDTH_MS = 100.0


def register(sub: Any) -> None:
    """Add the ``backtest`` subcommand."""
    p = sub.add_parser(
        "backtest",
        help="backtest a strategy on market data",
        description=(
            "Replay market data through an example strategy, on the same encode/decode path "
            "as the enclave, and report fills, PnL and metrics. Without --data or "
            "--synthetic it runs the daily moving-average crossover on the committed MSFT "
            "sample (data/SOURCES.md)."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="PATH", help="event or daily OHLCV file (.csv, .parquet)")
    src.add_argument("--synthetic", action="store_true", help="seeded synthetic ticks")
    p.add_argument("--symbol", help="symbol for an OHLCV file (default: from its name)")
    src.add_argument(
        "--synthetic-config",
        metavar="JSON",
        help="seeded synthetic ticks from a settings file (e.g. data/synthetic.json)",
    )
    p.add_argument("--seed", type=int, default=7, help="synthetic: seed (default 7)")
    p.add_argument("--rate", type=float, help="synthetic: events/s (default 20000)")
    p.add_argument("--duration", type=float, help="synthetic: seconds (default 10)")
    p.add_argument("--symbols", help="synthetic: comma-separated (default AAA,BBB,CCC)")
    p.add_argument(
        "--strategy",
        help="example strategy name (default: ma_crossover for bars, order_flow_imbalance "
        "for ticks)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="strategy parameter (VALUE read as JSON, else text); repeatable",
    )
    batching = p.add_mutually_exclusive_group()
    batching.add_argument("--count", type=int, help="batch every N events (default 1 for bars)")
    batching.add_argument(
        "--width-ms",
        type=float,
        help=f"event-time bucket width (default {_DEFAULT_TICK_WIDTH_MS} ms for ticks)",
    )
    p.add_argument("--slippage-ticks", type=int, default=0, help="ticks against each fill (0)")
    p.add_argument("--fee-bps", type=float, default=0.0, help="fee in basis points (0)")
    p.add_argument("--initial-cash", type=float, default=1_000_000.0, help="(1000000)")
    add_capital_options(p)
    p.add_argument("--periods-per-year", type=float, help="annualisation (default: measured)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write the result tables, summary.json and equity.png (equity, drawdown, trades)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_run)


def add_capital_options(p: Any) -> None:
    """The options for what binds capital, the same on ``backtest``, ``sweep`` and
    ``walkforward`` (:func:`backtest_inputs` reads them)."""
    add_buying_power_options(p)
    p.add_argument(
        "--instruments",
        metavar="CSV",
        help="symbol, currency, tick_size, lot_size per instrument (default data/instruments.csv; "
        "a file given here must list every symbol)",
    )


def add_buying_power_options(p: Any) -> None:
    """``--leverage`` and ``--short-margin`` (:class:`zcbench.risk.BuyingPower`), the same on
    the backtests and on ``run``, so both hold orders to one rule."""
    p.add_argument(
        "--leverage", type=float, default=1.0, help="buying power on longs (1: a cash account)"
    )
    p.add_argument(
        "--short-margin",
        type=float,
        default=1.0,
        help="share of a short's notional equity must cover (1.0)",
    )


def _param(text: str) -> tuple[str, Any]:
    from zcbench.errors import UsageError

    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--param {text!r}: expected NAME=VALUE")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


def _run(args: argparse.Namespace) -> int:
    """Handler: load data, build the strategy, run, print."""
    from zcbench.backtest import run_backtest
    from zcbench.errors import UsageError
    from zcbench.examples import EXAMPLES
    from zcbench.strategy import make_strategy

    name, events, config, source = backtest_inputs(args)
    try:
        strategy = make_strategy(EXAMPLES[name], dict(_param(p) for p in args.param))
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None
    if args.out:  # a folder that cannot be made fails now, not after the whole backtest
        from pathlib import Path

        from zcbench.errors import EnvError

        if not Path(args.out).exists():  # what exists is written into, and judged, later
            try:
                Path(args.out).mkdir(parents=True)
            except OSError as exc:
                raise EnvError(
                    f"cannot write the backtest result to {args.out}: "
                    f"{exc.strerror or type(exc).__name__}"
                ) from None
    # a progress bar on a terminal's stderr for long runs; none with --json
    result = run_backtest(strategy, events, config, show_progress=False if args.json else None)
    summary = {**result.summary(), "data": source}
    if args.out:
        summary["out"] = str(result.write(args.out, plot=True))
    summary["next"] = _NEXT
    if args.json:
        sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
        return 0
    sys.stdout.write(_table(result, summary, source, config) + "\n")
    return 0


_NEXT = "zcbench package notebooks/01_research.ipynb -o build"
_TICK_SCALE = 10_000  # periods per year above which annualised figures are extrapolations


def tick_scale_note(periods_per_year: float | None, years: float | None) -> str | None:
    """What an annualised figure means when the batches are ticks (as notebook 01 says it),
    or None for daily-scale data; the same words under ``backtest``, ``sweep`` and
    ``walkforward``."""
    if periods_per_year is None or periods_per_year <= _TICK_SCALE:
        return None
    seconds = (years or 0.0) * 365.25 * 86_400
    return (
        "Sharpe, Sortino, volatility and CAGR are annualised from "
        f"{periods_per_year:,.0f} batches a year of event time: on {seconds:,.1f} s of data "
        "that is a large extrapolation. Compare strategies on the same data by them; do not "
        "read them as yearly figures."
    )


def _amounts(result: Any, config: Any) -> dict[str, int]:
    """The table's money as exact integers of the account's unit (``result.money_scale`` of
    them a currency unit), taken from the ledger rather than from the float metrics; the
    expectancy, a mean, to the nearest unit."""
    from fractions import Fraction

    scale = result.money_scale
    initial = round(Fraction(str(config.initial_cash)) * scale)
    equity = result.equity.get_column("equity")
    final = int(equity[-1]) if equity.len() else initial
    expectancy = result.metrics_dict()["expectancy"]
    return {
        "initial": initial,
        "final": final,
        "pnl": final - initial,
        "fees": int(result.fills.get_column("fee").sum() or 0),
        "expectancy": round(Fraction(expectancy) * scale) if expectancy is not None else 0,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(result: Any, summary: dict[str, Any], source: dict[str, Any], config: Any) -> str:
    """The readable result: what ran, then every metric with its unit, then the benchmark."""
    from zcbench.money import format_money

    m = result.metrics_dict()
    ccy = result.currency
    amounts = _amounts(result, config)

    def money(name: str, *, signed: bool = False) -> str:
        return format_money(amounts[name], signed=signed, scale=result.money_scale, currency=ccy)
    ppy = m["periods_per_year"]
    days = m["max_drawdown_duration_s"] / 86_400
    lines = [
        f"strategy        {result.strategy} {json.dumps(result.params, sort_keys=True)}",
        f"data            {json.dumps(source['path']) if 'path' in source else 'synthetic'}"
        f" ({result.n_events} events, {m['n_batches']} batches {config.spec.describe()},"
        f" {m['years']:.2f} years)",
        f"signals         {m['n_signals']}, filled {m['n_fills']}, refused {m['n_refused']}"
        f" (capital or lots), digest {result.signals_digest}",
        f"capital         {money('initial')} -> {money('final')}"
        f"   pnl {money('pnl', signed=True)}   fees {money('fees')}",
        f"return          total {_pct(m['total_return'])}   CAGR {_pct(m['cagr'])}"
        f"   volatility {_num(m['volatility'] * 100, 2)} % a year",
        f"risk-adjusted   Sharpe {_num(m['sharpe'])}   Sortino {_num(m['sortino'])}"
        f"   Calmar {_num(m['calmar'])}   ({ppy:,.0f} periods/year)",
        f"drawdown        max {m['max_drawdown']:.2%}, longest {days:,.1f} days under a peak",
        f"trades          {m['n_trades']} round trips, win rate {m['win_rate']:.1%},"
        f" profit factor {_num(m['profit_factor'], 2)}, expectancy"
        f" {money('expectancy')} a trade",
        f"activity        exposure {m['exposure']:.1%} of batches, turnover {m['turnover']:.2f}x"
        f" the capital, hit rate {m['hit_rate']:.1%} of {m['n_closing_fills']} closing fills",
    ]
    for symbol, bench in result.benchmark.items():
        lines.append(
            f"buy and hold    {symbol}: total {_pct(bench['total_return'])},"
            f" CAGR {_pct(bench['cagr'])}"
        )
    note = tick_scale_note(ppy, m["years"])
    if note is not None:
        lines.append(f"note            {note}")
    lines.append("money           in " + ccy + "; metrics defined in the README (Backtest metrics)")
    if "out" in summary:
        lines.append(f"written to      {summary['out']} (tables, summary.json, equity.png)")
    lines.append(f"next            {_NEXT}   (promote the notebook's strategy)")
    return "\n".join(lines)


def backtest_inputs(args: argparse.Namespace) -> tuple[str, Any, Any, dict[str, Any]]:
    """The example strategy's name, the events, the BacktestConfig and a description of the data,
    from the data and batching options ``backtest``, ``sweep`` and ``walkforward`` share; the
    options only ``backtest`` has (synthetic config and symbols) are taken when the command
    defines them."""
    from zcbench.backtest import BacktestConfig
    from zcbench.errors import UsageError
    from zcbench.examples import EXAMPLES
    from zcbench.marketdata import (
        SyntheticConfig,
        generate_ticks,
        load_instruments,
        load_market_data,
        sample_daily_path,
    )

    instruments_file = args.instruments
    instruments = load_instruments(instruments_file) if instruments_file else None
    synthetic_config = getattr(args, "synthetic_config", None)
    symbols = getattr(args, "symbols", None)
    source: dict[str, Any]
    if args.synthetic or synthetic_config:
        base = SyntheticConfig.from_file(synthetic_config) if synthetic_config else None
        settings = base.to_dict() if base else {}
        if symbols is not None:
            settings["symbols"] = [s.strip() for s in symbols.split(",") if s.strip()]
        if args.rate is not None:
            settings["rate"] = args.rate
        if args.duration is not None:
            settings["duration_s"] = args.duration
        cfg = SyntheticConfig.from_dict(settings)
        events = generate_ticks(cfg, seed=args.seed)
        source = {"synthetic": cfg.to_dict(), "seed": args.seed}
    else:
        path = args.data if args.data else sample_daily_path()
        events = load_market_data(path, symbol=args.symbol, instruments=instruments)
        source = {"path": str(path)}
    bars = bool((events.get_column("kind") == "bar").all())
    name = args.strategy or ("ma_crossover" if bars else "order_flow_imbalance")
    if name not in EXAMPLES:
        raise UsageError(f"unknown strategy {name!r}; known: {', '.join(sorted(EXAMPLES))}")
    if args.count is not None:
        width_ns, count = None, args.count
    elif args.width_ms is not None or not bars:
        width_ms = args.width_ms if args.width_ms is not None else _DEFAULT_TICK_WIDTH_MS
        width_ns, count = round(width_ms * 1_000_000), None
    else:
        width_ns, count = None, 1
    config = BacktestConfig(
        width_ns=width_ns,
        count=count,
        slippage_ticks=args.slippage_ticks,
        fee_bps=args.fee_bps,
        initial_cash=args.initial_cash,
        periods_per_year=args.periods_per_year,
        instruments=instruments,
        leverage=args.leverage,
        short_margin=args.short_margin,
    )
    return name, events, config, source
