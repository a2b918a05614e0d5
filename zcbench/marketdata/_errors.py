"""The one error of malformed market data (a prices file or frame, an instruments file)."""

from __future__ import annotations

from zcbench.errors import DataError

__all__ = ["MarketDataError"]


class MarketDataError(DataError):
    """A market data file or frame is malformed; names the file, row and column.

    ``row`` is the 1-based data row (None when the whole file or column is at fault) and
    ``column`` the column name (None when no single column is).
    """

    def __init__(self, problem: str, *, source: str, row: int | None, column: str | None) -> None:
        where = source
        if row is not None:
            where += f": row {row}"
        if column is not None:
            where += f", column {column!r}" if row is not None else f": column {column!r}"
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.row = row
        self.column = column
