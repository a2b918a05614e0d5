"""Market data: strict loaders, the seeded synthetic tick generator and event-time batching.

Sources become event frames in :data:`zcbench.strategy.EVENT_SCHEMA` (integer price ticks); the
batching here is the one the backtest and the live proxy share. This part knows nothing of
enclaves.

- :func:`load_events`, :func:`load_ohlcv`: CSV or parquet into validated polars frames; bad input
  raises :class:`MarketDataError` naming the file, row and column.
- :class:`Instruments` (:func:`load_instruments`, :func:`default_instruments`): tick size, lot
  size and currency per symbol, and each one's exact integer price unit.
- :func:`generate_ticks` / :func:`write_ticks` with :class:`SyntheticConfig`: trades and quotes.
- :func:`marks`, :func:`last_marks`, :func:`mark_expr`: an event's market price (its mark), the
  one rule live PnL, the backtest's equity and the tear sheet value positions by.
- :func:`batches`, :class:`EventTimeBatcher`: batches by event-time bucket width or event count.
"""

from zcbench.marketdata._batching import (
    BatchSpec,
    EventTimeBatcher,
    batch_bounds,
    batch_ends,
    batches,
)
from zcbench.marketdata._errors import MarketDataError
from zcbench.marketdata._instruments import (
    DEFAULT_INSTRUMENT,
    Account,
    Instrument,
    Instruments,
    default_instruments,
    load_instruments,
)
from zcbench.marketdata._load import (
    check_ticks,
    load_events,
    load_market_data,
    load_ohlcv,
    normalise_events,
    ohlcv_to_events,
    validate_events,
    write_events,
)
from zcbench.marketdata._marks import MARK_FIELDS, last_marks, mark_expr, marks
from zcbench.marketdata._sample import sample_daily_path
from zcbench.marketdata._synthetic import SyntheticConfig, generate_ticks, write_ticks

__all__ = [
    "DEFAULT_INSTRUMENT",
    "MARK_FIELDS",
    "Account",
    "BatchSpec",
    "EventTimeBatcher",
    "Instrument",
    "Instruments",
    "MarketDataError",
    "SyntheticConfig",
    "batch_bounds",
    "batch_ends",
    "batches",
    "check_ticks",
    "default_instruments",
    "generate_ticks",
    "last_marks",
    "load_events",
    "load_instruments",
    "load_market_data",
    "load_ohlcv",
    "mark_expr",
    "marks",
    "normalise_events",
    "ohlcv_to_events",
    "sample_daily_path",
    "validate_events",
    "write_events",
    "write_ticks",
]
