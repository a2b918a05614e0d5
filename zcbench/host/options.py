"""What a live run's settings (:class:`zcbench.runsettings.RunSettings`) make: the venue, the
clock source and the operator they name, and :func:`run_options`, the keyword arguments of
:func:`zcbench.host.live.run_live` they come to. ``zcbench run`` and the live panel both start
their runs through it, so a setting means one thing wherever it is given.

Opening a FIX venue checks first that something listens at its address
(:class:`~zcbench.errors.EnvError` naming the command that starts one); a ClockBound clock is
read once, so a missing daemon is refused before the run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zcbench.errors import EnvError, UsageError
from zcbench.runsettings import RunSettings

__all__ = ["new_run_id", "open_clock", "open_venue", "operator_name", "reachable", "run_options"]


def new_run_id() -> str:
    """A fresh run id, ``run-`` and 16 hex digits (a FIX session is named after its first 12)."""
    import secrets

    return f"run-{secrets.token_hex(8)}"


def run_options(settings: RunSettings, run_dir: Path, run_id: str, continuation: Any = None
                ) -> dict[str, Any]:
    """The keyword arguments of :func:`~zcbench.host.live.run_live` that ``settings`` make for
    the run ``run_id`` in ``run_dir`` (``continuation``: the run it continues, whose FIX session
    a FIX venue resumes); the capital, which needs the source's account, is
    :meth:`RunSettings.capital`'s."""
    return {
        "venue": open_venue(settings.venue, run_dir, run_id, continuation),
        "feedback": settings.feedback,
        "max_delay_s": settings.max_delay_ms / 1000,
        "snapshot_every_s": settings.snapshot_every_s,
        "clock_source": open_clock(settings.clock),
        "operator": settings.operator or operator_name(),
    }


def open_venue(spec: str, run_dir: Path, run_id: str, continuation: Any = None) -> Any:
    """The venue ``spec`` names (``paper`` or ``fix://HOST:PORT``) for the run ``run_id``."""
    from zcbench.venue import PaperVenue

    if spec == "paper":
        return PaperVenue()
    from zcbench.venue.fix import FixVenue, parse_venue_url

    host, port = parse_venue_url(spec)
    reachable(host, port)
    end = continuation.end if continuation is not None else None
    if end is not None and end.fix_sender:
        # a continuing run resumes the previous run's session: same SenderCompID, the
        # sequence numbers and stored messages carried from its session folders
        return FixVenue(host, port, state_dir=run_dir / "fix", sender=end.fix_sender,
                        carried=end.fix_folders)
    # one FIX session per chain of runs: its SenderCompID is named after its first run
    return FixVenue(host, port, state_dir=run_dir / "fix", sender=f"ZCB-{run_id[4:16]}")


def reachable(host: str, port: int) -> None:
    """Refuse before the run starts when nothing listens at the venue's address."""
    import socket

    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise EnvError(
            f"no FIX venue at {host}:{port} ({exc.strerror or exc}); start one with "
            f"'zcbench venue sim --port {port} --drop-copy FILE'"
        ) from None


def open_clock(spec: str) -> Any:
    """The clock source ``spec`` names: ``host`` (the host's kernel discipline) or
    ``clockbound[:PATH]`` (AWS ClockBound's segment, read once here so a missing daemon is
    refused before the run starts)."""
    from zcbench.evidence.clock import CLOCKBOUND_PATH, ClockBoundSource, HostClock

    name, _, path = spec.partition(":")
    if name == "host" and not path:
        return HostClock()
    if name == "clockbound":
        source = ClockBoundSource(Path(path) if path else CLOCKBOUND_PATH)
        source.read()
        return source
    raise UsageError(f"--clock {spec}: give host, clockbound or clockbound:PATH")


def operator_name() -> str:
    """The login name, for a run whose operator nobody named (``unnamed`` when this uid has
    none, as in a container)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unnamed"
