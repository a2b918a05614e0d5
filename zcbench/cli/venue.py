"""``zcbench venue sim``: the FIX 4.4 venue simulator on localhost (thin over zcbench.venue.fix)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from zcbench.errors import UsageError

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("venue", help="venues: the FIX venue simulator")
    venue_sub = p.add_subparsers(dest="venue_command", metavar="COMMAND", required=True)
    s = venue_sub.add_parser(
        "sim",
        help="run a FIX 4.4 venue simulator (acceptor) on localhost",
        description=(
            "Accept FIX 4.4 sessions on 127.0.0.1:PORT and fill their orders with the paper "
            "venue over the same market data as the run (--data, or the seeded synthetic "
            "ticks 'zcbench run' uses): acknowledgements, partial fills, rejects, cancels, "
            "expiries. Every ExecutionReport is appended to the drop copy FILE (raw FIX, "
            "fsynced) before it is sent. Runs until interrupted (Ctrl-C or SIGTERM)."
        ),
    )
    s.add_argument("--port", type=int, required=True, metavar="N", help="TCP port (0: any free)")
    s.add_argument("--drop-copy", type=Path, required=True, metavar="FILE",
                   help="the drop copy to append every ExecutionReport to")
    s.add_argument("--data", type=Path, default=None, metavar="PATH",
                   help="event file or daily OHLCV file (default: synthetic ticks)")
    s.add_argument("--seed", type=int, default=7, help="synthetic generator seed")
    s.add_argument("--state", type=Path, default=None, metavar="DIR",
                   help="session state folder (default: DROP_COPY.sessions beside the drop copy)")
    s.add_argument("--heartbeat", type=int, default=30, metavar="S", help="HeartBtInt seconds")
    s.set_defaults(handler=_sim, check_values=_check)


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    if not 1 <= args.heartbeat <= 3600:
        raise UsageError(f"--heartbeat must be 1..3600 seconds, got {args.heartbeat}")


def _sim(args: argparse.Namespace) -> int:
    from zcbench.marketdata import SyntheticConfig, generate_ticks, load_market_data
    from zcbench.venue.fix import VenueSimulator

    if args.data is not None:
        events = load_market_data(args.data.expanduser())
    else:
        events = generate_ticks(SyntheticConfig(), seed=args.seed)
    drop = Path(args.drop_copy)
    state = args.state or drop.with_name(drop.name + ".sessions")
    sim = VenueSimulator(events, drop, state, heartbeat_s=args.heartbeat)
    port = sim.listen("127.0.0.1", args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = threading.Thread(target=sim.serve_forever, daemon=True)
    server.start()
    sys.stderr.write(f"zcbench venue sim: listening on 127.0.0.1:{port}, drop copy {drop}\n")
    sys.stderr.flush()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    sys.stderr.write(f"zcbench venue sim: stopped; {len(sim.events)} session events\n")
    return 0
