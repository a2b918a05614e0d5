"""Progress for anything that may take over a second (verification, export, sweeps, runs).

One place decides how progress is shown so every part looks the same:

* standard error is a terminal: a tqdm bar there (it disappears when done); in a Jupyter
  kernel, tqdm's notebook bar (``tqdm.auto``);
* otherwise (a pipe, a file, CI, papermill: standard output is then usually not a terminal
  either): plain lines on standard error, ``zcbench: <what>: 1,200 of 5,000 (24%), 3.1 s``, at
  most one every ``interval`` seconds, the first only once ``interval`` has passed (so quick
  work prints nothing), and a closing ``done`` line when any was printed;
* ``enabled=False``: nothing.

:func:`progress` wraps an iterable; :func:`reporter` gives a :class:`Reporter` for work that is
not one loop (a live run reports its batches, a packager its steps). Time comes in as a
parameter (``clock``), like everywhere in zcbench, so tests need no sleeping.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Protocol, TypeVar

__all__ = ["LineReporter", "Reporter", "progress", "reporter"]

T = TypeVar("T")

DEFAULT_INTERVAL = 5.0
"""Seconds between progress lines (and before the first)."""


class Reporter(Protocol):
    """Something to tell how far the work has got."""

    def advance(self, n: int = 1) -> None:
        """``n`` more items are done."""

    def close(self) -> None:
        """The work ended (done or not)."""


class LineReporter:
    """Progress as plain lines (see the module docstring)."""

    def __init__(self, desc: str, *, total: int | None = None, unit: str = "items",
                 stream: IO[str] | None = None, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.desc = desc or "working"
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.done = 0
        self.lines = 0
        self._start = clock()
        self._last = self._start
        self._closed = False

    def _elapsed(self) -> str:
        return f"{self.clock() - self._start:.1f} s"

    def _write(self, text: str) -> None:
        self.stream.write(f"zcbench: {self.desc}: {text}\n")
        self.stream.flush()
        self.lines += 1

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self._last < self.interval:
            return
        self._last = now
        if self.total:
            share = min(100, self.done * 100 // self.total)
            self._write(f"{self.done:,} of {self.total:,} {self.unit} ({share}%), "
                        f"{self._elapsed()}")
        else:
            self._write(f"{self.done:,} {self.unit}, {self._elapsed()}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.lines:
            self._write(f"done, {self.done:,} {self.unit} in {self._elapsed()}")


class _BarReporter:
    def __init__(self, desc: str, total: int | None, unit: str) -> None:
        from tqdm.auto import tqdm

        self._bar: Any = tqdm(total=total, desc=desc, unit=f" {unit}", file=sys.stderr,
                              leave=False)

    def advance(self, n: int = 1) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where standard error is no terminal, but a bar
    renders)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def reporter(desc: str, *, total: int | None = None, unit: str = "items",
             enabled: bool | None = None, stream: IO[str] | None = None,
             interval: float = DEFAULT_INTERVAL,
             clock: Callable[[], float] = time.monotonic) -> Reporter:
    """A :class:`Reporter`: a bar on a terminal, lines elsewhere, nothing when disabled.

    ``enabled=None`` and ``True`` both show progress (``None`` is the default for every
    command; a caller that must stay quiet passes ``False``). ``stream`` forces lines into it.
    """
    if enabled is False:
        return _Silent()
    if stream is None and (sys.stderr.isatty() or _in_kernel()):
        return _BarReporter(desc, total, unit)
    return LineReporter(desc, total=total, unit=unit, stream=stream, interval=interval,
                        clock=clock)


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
    unit: str = "items",
    stream: IO[str] | None = None,
    interval: float = DEFAULT_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[T]:
    """Iterate ``items``, reporting progress as :func:`reporter` says."""
    if enabled is False:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    report = reporter(desc, total=total, unit=unit, enabled=enabled, stream=stream,
                      interval=interval, clock=clock)
    try:
        for item in items:
            yield item
            report.advance()
    finally:
        report.close()
