"""The two example strategies: one on daily bars, one on ticks.

Both keep to integer arithmetic and import only the strategy contract, polars and the standard
library, so either can be promoted into an enclave as it is.
"""

from zcbench.examples.ma_crossover import MACrossover, MACrossoverParams
from zcbench.examples.order_flow import OrderFlowImbalance, OrderFlowParams

__all__ = ["EXAMPLES", "MACrossover", "MACrossoverParams", "OrderFlowImbalance", "OrderFlowParams"]

EXAMPLES = {cls.name: cls for cls in (MACrossover, OrderFlowImbalance)}
"""The example strategy classes by their ``name``."""
