"""Progress bars for anything that may take over a second (sweeps, verification, runs).

One place decides how progress is shown so every part looks the same: a tqdm bar on stderr when
it is a terminal, nothing otherwise unless asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["progress"]

T = TypeVar("T")


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
) -> Iterator[T]:
    """Iterate ``items`` with a progress bar; ``enabled=None`` shows it only on a terminal."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield from items
        return
    yield from tqdm(items, total=total, desc=desc, file=sys.stderr, leave=False)
