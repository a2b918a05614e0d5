"""Where the committed real dataset lives (data/SOURCES.md tells its origin and licence)."""

from __future__ import annotations

from pathlib import Path

from zcbench.errors import EnvError

__all__ = ["sample_daily_path"]

_DATA = Path(__file__).resolve().parents[2] / "data"


def sample_daily_path() -> Path:
    """The committed daily OHLCV file (MSFT, 1986-2017, CC0) in the repository's ``data/``."""
    path = _DATA / "msft_daily.csv"
    if not path.is_file():
        raise EnvError(
            f"the sample dataset is not at {path}; zcbench must run from a source checkout "
            "(pip install -e .) to find data/"
        )
    return path
