"""The strategy contract: Strategy, Signal, Batch, the event schema and their wire codecs.

This part imports nothing else of zcbench but the error tree: a sealed strategy module depends on
it alone (DESIGN.md, "The strategy contract").
"""

from zcbench.strategy._contract import (
    Batch,
    HintValue,
    Side,
    Signal,
    Strategy,
    StrategyError,
    apply_strategy,
    find_strategy,
    make_strategy,
    takes_context,
)
from zcbench.strategy._feedback import (
    OUTCOME_STATUSES,
    Context,
    Outcome,
    decode_context,
    encode_context,
    is_context,
)
from zcbench.strategy._schema import (
    EVENT_SCHEMA,
    KINDS,
    PRICE_SCALE,
    REQUIRED_FIELDS,
    price_to_ticks,
)
from zcbench.strategy._start import (
    StartExecution,
    StartOrder,
    StartState,
    decode_start,
    encode_start,
    is_start,
)
from zcbench.strategy._wire import (
    BATCH_VERSION,
    MAX_BATCH_EVENTS,
    WIRE_VERSION,
    decode_batch,
    decode_signals,
    encode_batch,
    encode_signals,
    select_fields,
)

__all__ = [
    "BATCH_VERSION",
    "EVENT_SCHEMA",
    "KINDS",
    "MAX_BATCH_EVENTS",
    "OUTCOME_STATUSES",
    "PRICE_SCALE",
    "REQUIRED_FIELDS",
    "WIRE_VERSION",
    "Batch",
    "Context",
    "HintValue",
    "Outcome",
    "Side",
    "Signal",
    "StartExecution",
    "StartOrder",
    "StartState",
    "Strategy",
    "StrategyError",
    "apply_strategy",
    "decode_batch",
    "decode_context",
    "decode_signals",
    "decode_start",
    "encode_batch",
    "encode_context",
    "encode_signals",
    "encode_start",
    "find_strategy",
    "is_context",
    "is_start",
    "make_strategy",
    "price_to_ticks",
    "select_fields",
    "takes_context",
]
